"""HTTP pieces shared by everything that calls out: the connectors' fetcher (feeds, t.me, the
Bot API) and the alert sinks (webhook, Alertmanager).

Guarantees:

* :func:`guarded_session` is the one way an outgoing aiohttp session is built: every name is
  resolved through :class:`newsradar.netguard.GuardedResolver` (internal addresses refused
  after DNS, no rebinding window), no proxy settings are taken from the environment, no
  cookies are kept, and there is no session-wide timeout: each caller bounds its own
  requests (the fetcher with one total deadline per exchange, the sinks per attempt).
* :func:`parse_retry_after` reads both forms of Retry-After (delta-seconds and HTTP-date)
  and never returns more than its cap (24 h by default), so a server cannot park a caller
  for a year.

This module sits in the shared core: connectors and transforms import it, it imports neither.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from newsradar.netguard import AddressPolicy, GuardedResolver

RETRY_AFTER_CAP = 24 * 3600.0


def parse_retry_after(value: str | None, now: datetime | None = None, cap: float = RETRY_AFTER_CAP) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), capped at ``cap``.

    None when the header is missing or unreadable; 0 for a date in the past."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return min(max((when - now).total_seconds(), 0.0), cap)


def guarded_session(
    policy: AddressPolicy, *, user_agent: str, pool_size: int = 100, auto_decompress: bool = True
) -> aiohttp.ClientSession:
    """An aiohttp session behind ``policy`` (see module docstring). Call inside a running loop.

    ``auto_decompress=False`` is for callers that inflate bodies themselves under a size cap."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), limit=pool_size, ttl_dns_cache=60)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=auto_decompress,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": user_agent},
    )


__all__ = ["RETRY_AFTER_CAP", "guarded_session", "parse_retry_after"]
