"""The test client sends gathered requests together (``tests/fixtures/concurrent_requests``):
every race test in the suite relies on it."""

from __future__ import annotations

import asyncio
import time

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.factories import key_headers
from tests.gateway.helpers import signup


async def test_gathered_requests_are_served_at_the_same_time(
    gw: AsyncTestClient[Litestar],
) -> None:
    key = await signup(gw)
    started = time.monotonic()

    answers = await asyncio.gather(*(
        gw.get("/v1/gateway/echo/slow?seconds=1", headers=key_headers(key)) for _ in range(4)))

    assert [a.status_code for a in answers] == [200] * 4
    # One after another they would take at least 4 s.
    assert time.monotonic() - started < 3
