"""Which network addresses an outgoing fetch may reach: the internal-address policy.

Every outgoing HTTP request newsradar makes on behalf of configuration it does not control
(feeds, t.me pages, alert webhooks) goes through this policy, so a hostile feed cannot make us
read cloud metadata, a router's admin page or a local service.

Guarantees:

* :func:`is_forbidden` is true for every address that is not publicly routable: loopback,
  RFC 1918 private, link-local (169.254/16, fe80::/10), carrier-grade NAT 100.64/10,
  multicast, unspecified, broadcast, reserved and documentation ranges, IPv6 unique-local
  fc00::/7 and site-local. IPv4 addresses wrapped in IPv6 (IPv4-mapped ``::ffff:a.b.c.d``,
  NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, IPv4-compatible ``::a.b.c.d``) are unwrapped and
  judged as the IPv4 address they carry.
* :func:`literal_ip` reads a URL host the way the C resolver would, including the legacy
  spellings ``2130706433``, ``0177.0.0.1``, ``0x7f.1`` and ``127.1``, and full-width digits
  after IDNA mapping, so a literal cannot hide an internal address.
* :class:`GuardedResolver` checks every address DNS returns and refuses the whole name if
  any of them is forbidden (a name that mixes public and internal answers is an attack, not
  a mistake). aiohttp connects only to the addresses the resolver returned, so there is no
  window between the check and the connection (no DNS rebinding).

This module is shared by connectors and transforms (alert webhooks) and imports neither.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_FORBIDDEN = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes 255.255.255.255
    )
)
_V6_FORBIDDEN = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/8",  # unspecified, loopback, IPv4-compatible and other reserved forms
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo (embeds an obfuscated IPv4)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routed internally by some)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_V4_COMPAT = ipaddress.IPv6Network("::/96")


class ForbiddenAddress(OSError):
    """A fetch would reach an address the policy refuses. ``str()`` says which and why."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, compatible), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _V4_COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


def is_forbidden(ip: IPAddress | str) -> bool:
    """True when ``ip`` is not a publicly routable unicast address (see module docstring)."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_forbidden(inner)
        if any(ip in net for net in _V6_FORBIDDEN):
            return True
    elif any(ip in net for net in _V4_FORBIDDEN):
        return True
    # The standard library's view as a second opinion (it knows ranges added after this table).
    return ip.is_multicast or not ip.is_global


# What inet_aton would accept: dotted parts in decimal, octal (leading 0) or hex (0x).
_LEGACY_V4 = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")


def literal_ip(host: str) -> IPAddress | None:
    """The address a URL host denotes when it is an IP literal in any spelling, else None.

    ``host`` is the host part of a URL (brackets and an IPv6 zone are allowed). Names are not
    resolved here; that is :class:`GuardedResolver`'s job.
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%", 1)[0].rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_V4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            # Out of range for every part ("999999999999"): no address, a name lookup will fail.
            return None
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """What outgoing requests may reach.

    ``allow_private_networks`` lifts the policy entirely (tests and the demo only).
    ``exempt`` names single ``(ip, port)`` endpoints that may be reached although internal, for
    an operator's one known intranet service or a test server; everything else stays refused.
    """

    allow_private_networks: bool = False
    exempt: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def exempting(cls, endpoints: Iterable[tuple[str, int]]) -> AddressPolicy:
        return cls(exempt=frozenset((str(ipaddress.ip_address(h)), int(p)) for h, p in endpoints))

    def check_ip(self, ip: IPAddress | str, port: int, what: str = "") -> None:
        """Raise :class:`ForbiddenAddress` unless ``ip:port`` may be reached."""
        if isinstance(ip, str):
            ip = ipaddress.ip_address(ip.split("%", 1)[0])
        if self.allow_private_networks or not is_forbidden(ip):
            return
        if (str(ip), int(port)) in self.exempt:
            return
        label = f"{what} -> " if what and what != str(ip) else ""
        raise ForbiddenAddress(f"refusing internal address {label}{ip} (allow_private_networks is off)")

    def check_url(self, url: str | URL) -> URL:
        """Check scheme and, for IP literals in any spelling, the address. Returns the parsed URL.

        Names are checked after DNS by :class:`GuardedResolver`; this catches what never
        reaches a resolver (aiohttp connects to IP literals directly).
        """
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError) as exc:
            raise ForbiddenAddress(f"not a valid URL {str(url)[:200]!r}: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise ForbiddenAddress(f"refusing scheme {parsed.scheme!r}: only http and https are fetched")
        # yarl has applied IDNA mapping here, so full-width digits are already ASCII.
        host = parsed.raw_host or ""
        if not host:
            raise ForbiddenAddress(f"URL has no host: {str(parsed)[:200]!r}")
        ip = literal_ip(host)
        if ip is not None:
            self.check_ip(ip, parsed.explicit_port or parsed.port or 0, host)
        return parsed


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses a name when any address it resolves to is forbidden."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None):
        self._policy = policy
        self._inner = inner

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if self._inner is None:
            # Built lazily: aiohttp's resolvers need a running event loop.
            self._inner = DefaultResolver()
        literal = literal_ip(host)
        if literal is not None:
            # A legacy spelling (2130706433) that reached us as a "name": judge it as the address.
            self._policy.check_ip(literal, port, host)
        results = await self._inner.resolve(host, port, family)
        for result in results:
            self._policy.check_ip(result["host"], result["port"] or port, host)
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def check_peer(policy: AddressPolicy, peername: Any, what: str = "") -> None:
    """Belt and braces after connecting: the socket's peer must be allowed too."""
    if not peername:
        return
    self_ip, port = peername[0], peername[1]
    policy.check_ip(self_ip, port, what)


__all__ = [
    "AddressPolicy", "ForbiddenAddress", "GuardedResolver", "check_peer", "embedded_ipv4", "is_forbidden",
    "literal_ip",
]
