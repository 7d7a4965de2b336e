"""The HTTP pieces shared by connectors and alert sinks: Retry-After and the guarded session."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from newsradar.httpclient import guarded_session, parse_retry_after
from newsradar.netguard import AddressPolicy, ForbiddenAddress


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0), ("0", 0.0), ("999999", 86400.0), ("Wed, 25 Nov 2026 12:10:00 GMT", 600.0),
        ("Wed, 25 Nov 2026 11:00:00 GMT", 0.0), ("Thu, 25 Nov 2027 12:00:00 GMT", 86400.0),
        ("soon", None), (None, None), ("", None), ("-5", None),
    ],
)
def test_retry_after_both_forms_capped_at_a_day(value, expected):
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == expected


def test_guarded_session_refuses_internal_names_and_keeps_no_cookies():
    async def go():
        app = web.Application()

        async def hello(request):
            response = web.Response(text=request.headers.get("Cookie", "no cookie"))
            response.set_cookie("tracker", "1")
            return response

        app.router.add_get("/", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with guarded_session(AddressPolicy(), user_agent="t") as session:
                with pytest.raises(aiohttp.ClientConnectorError) as refused:
                    await session.get(f"http://localhost:{port}/")
                assert isinstance(refused.value.os_error, ForbiddenAddress)
            allowed = AddressPolicy(allow_private_networks=True)
            async with guarded_session(allowed, user_agent="t") as session:
                bodies = []
                for _ in range(2):
                    async with session.get(f"http://localhost:{port}/") as resp:
                        bodies.append(await resp.text())
                return bodies
        finally:
            await runner.cleanup()

    assert asyncio.run(go()) == ["no cookie", "no cookie"]
