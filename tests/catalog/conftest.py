"""Catalog fixtures: an app instance with the providers a test configures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings

ClientFactory = Callable[..., Awaitable[AsyncTestClient[Litestar]]]


@pytest.fixture
async def make_client(settings_factory: Callable[..., Settings]) -> AsyncIterator[ClientFactory]:
    """Start an app instance on the session's database and Redis, with settings overrides."""
    async with AsyncExitStack() as stack:

        async def build(**overrides: Any) -> AsyncTestClient[Litestar]:
            app = create_app(settings_factory(**overrides))
            return await stack.enter_async_context(AsyncTestClient(app=app))

        yield build
