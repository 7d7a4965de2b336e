"""Would ``connect`` be allowed to fetch what a sources file names? ``sources check`` asks it
before anything runs, with the policy every fetch applies (:mod:`newsradar.netguard`).

Guarantees:

* Every URL an enabled source fetches (RSS ``url``, Telegram web ``base_url``, Bot API
  ``api_base``) is judged by :class:`newsradar.netguard.AddressPolicy`, built from the file's
  ``allow_private_networks`` or the command's opt-in exactly as ``connect`` builds it: an IP
  literal in any spelling (``2130706433``, ``0x7f.1``) and a name that resolves to an internal
  address (``localhost``) are refused with the message a fetch would log.
* A refusal is a :class:`ConfigError` naming the file, the line and the field.
* A name that does not resolve now is not refused (DNS may be down where the check runs; every
  fetch resolves again and checks what it gets); it is reported in one note.
* Resolution is bounded: all names are resolved concurrently, and the check waits at most
  ``timeout`` seconds for them altogether.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from newsradar.config.loader import ConfigError, load_yaml
from newsradar.config.sources import RssSource, Source, Sources, TelegramBotSource, TelegramWebSource
from newsradar.netguard import AddressPolicy, ForbiddenAddress, literal_ip

# The names that are loopback by definition (RFC 6761), whatever a resolver says.
_LOOPBACK_NAMES = ("localhost",)

Resolve = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Reach:
    """The answer for one file: refusals (exit 2) and notes (names not resolved now)."""

    refused: list[ConfigError]
    notes: list[str]


def fetched_urls(source: Source) -> list[tuple[str, str]]:
    """(field, URL) for every URL ``source`` fetches."""
    if isinstance(source, RssSource):
        return [("url", source.url)]
    if isinstance(source, TelegramWebSource):
        return [("base_url", source.base_url)]
    if isinstance(source, TelegramBotSource):
        return [("api_base", source.api_base)]
    return []  # an export file, or MTProto to Telegram's own data centres


def system_resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def check_reach(file: str, sources: Sources, *, allow_private_networks: bool = False, resolve: Resolve | None = system_resolve,
                timeout: float = 5.0) -> Reach:
    """Judge every URL the enabled sources of ``file`` fetch. ``resolve=None`` judges IP
    literals and loopback names only (no DNS)."""
    policy = AddressPolicy(allow_private_networks=allow_private_networks or sources.allow_private_networks)
    doc = load_yaml(file)
    refused: list[ConfigError] = []
    names: dict[tuple[str, int], list[str]] = {}  # (host, port) -> paths that fetch it
    for i, source in enumerate(sources.sources):
        if not source.enabled:
            continue
        for field, url in fetched_urls(source):
            path = f"sources[{i}].{field}"
            try:
                parsed = policy.check_url(url)
                host, port = parsed.raw_host or "", parsed.port or 0
                if literal_ip(host) is None and not policy.allow_private_networks:
                    if _is_loopback_name(host):
                        policy.check_ip("127.0.0.1", port, host)
                    names.setdefault((host, port), []).append(path)
            except ForbiddenAddress as exc:
                refused.append(doc.error(path, str(exc)))
    unresolved: dict[str, str] = {}  # host -> why
    if names and resolve is not None:
        answers = _resolve_all(list(names), resolve, timeout)
        for (host, port), paths in names.items():
            addresses = answers.get((host, port))
            if isinstance(addresses, str):
                unresolved.setdefault(host, addresses)
                continue
            for address in addresses:
                try:
                    policy.check_ip(address, port, host)
                except ForbiddenAddress as exc:
                    refused.extend(doc.error(path, str(exc)) for path in paths)
                    break
    refused.sort(key=lambda e: (e.line or 0, e.path))
    notes = []
    if unresolved:
        reasons = sorted(set(unresolved.values()))
        notes.append(f"{file}: {len(unresolved)} host names not resolved now ({'; '.join(reasons)}): "
                     f"{', '.join(sorted(unresolved))}; every fetch resolves them and checks the addresses")
    return Reach(refused, notes)


def _is_loopback_name(host: str) -> bool:
    host = host.rstrip(".").lower()
    return any(host == name or host.endswith("." + name) for name in _LOOPBACK_NAMES)


def _resolve_all(hosts: list[tuple[str, int]], resolve: Resolve, timeout: float) -> dict[tuple[str, int], list[str] | str]:
    """Addresses per (host, port), or the reason there are none."""
    pool = ThreadPoolExecutor(min(8, len(hosts)), thread_name_prefix="resolve")
    try:
        futures = {pool.submit(resolve, host, port): (host, port) for host, port in hosts}
        done, _ = wait(futures, timeout=timeout)
        answers: dict[tuple[str, int], list[str] | str] = {}
        for future, key in futures.items():
            if future not in done:
                answers[key] = f"DNS did not answer within {timeout:g}s"
            elif isinstance(future.exception(), OSError):
                answers[key] = str(future.exception().strerror or future.exception())
            else:
                answers[key] = future.result()  # another error is a bug: raised here
        return answers
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["Reach", "check_reach", "fetched_urls", "system_resolve"]
