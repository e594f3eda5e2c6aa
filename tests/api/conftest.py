"""Fixtures for the HTTP API tests: extra app instances and a ready-made platform."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings
from tests.factories import create_platform

ClientFactory = Callable[..., Awaitable[AsyncTestClient[Litestar]]]


@pytest.fixture(scope="session")
async def shared_client(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """One running app per backend for the whole session.

    Building and starting an app cost more than most tests do. Sharing it is safe because
    every test makes its own agents, keys and platforms (rate limits count per key), and a
    test that needs other settings starts its own instance with ``make_client``.
    """
    async with AsyncTestClient(app=create_app(settings_factory())) as test_client:
        yield test_client


@pytest.fixture
def client(shared_client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    return shared_client


@pytest.fixture
async def make_client(settings_factory: Callable[..., Settings]) -> AsyncIterator[ClientFactory]:
    """Start another app instance (its own engine, cache and limiter: another "process")
    on the same database and Redis, with optional settings overrides."""
    async with AsyncExitStack() as stack:

        async def build(
            settings: Settings | None = None, **overrides: Any
        ) -> AsyncTestClient[Litestar]:
            app = create_app(settings or settings_factory(**overrides))
            return await stack.enter_async_context(AsyncTestClient(app=app))

        yield build


@pytest.fixture
async def platform(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str]
) -> dict[str, Any]:
    """A fresh platform: ``{"platform": {...}, "masterKey": "mk_...", "masterKeyId": ...}``."""
    return await create_platform(client, admin_headers)


@pytest.fixture
async def other_platform(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str]
) -> dict[str, Any]:
    return await create_platform(client, admin_headers)
