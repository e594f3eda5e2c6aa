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
from tests.fixtures.apiclient import client, shared_client

__all__ = ["client", "shared_client"]

ClientFactory = Callable[..., Awaitable[AsyncTestClient[Litestar]]]


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
