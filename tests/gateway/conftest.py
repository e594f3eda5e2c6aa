"""Gateway fixtures: a real upstream process on 127.0.0.1 and apps with providers pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings
from tests.gateway.helpers import (
    free_port,
    provider_config,
    start_uvicorn,
    stop,
    wait_until_up,
)


@pytest.fixture(scope="session")
def upstream_url() -> Iterator[str]:
    """The test upstream (``tests/gateway/upstream.py``) in its own process."""
    port = free_port()
    proc = start_uvicorn("tests.gateway.upstream:app", port)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/__hits", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def providers(upstream_url: str) -> list[dict[str, Any]]:
    return [
        provider_config(upstream_url),
        provider_config(f"http://127.0.0.1:{free_port()}", name="down", headers={}),
        provider_config(upstream_url, name="free", price_micros=0, headers={}),
    ]


GatewayFactory = Callable[..., Awaitable[AsyncTestClient[Litestar]]]


@pytest.fixture
async def make_gateway(
    settings_factory: Callable[..., Settings], providers: list[dict[str, Any]]
) -> AsyncIterator[GatewayFactory]:
    """An app with the test providers (another "process" per call), settings overridable."""
    async with AsyncExitStack() as stack:

        async def build(**overrides: Any) -> AsyncTestClient[Litestar]:
            values: dict[str, Any] = {"providers": providers, "plan_free_per_minute": 100_000}
            values.update(overrides)
            app = create_app(settings_factory(**values))
            return await stack.enter_async_context(AsyncTestClient(app=app))

        yield build


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> AsyncTestClient[Litestar]:
    return await make_gateway()
