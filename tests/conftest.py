"""Shared fixtures: every API test runs once on SQLite and once on PostgreSQL, with real Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

# Nothing in the app reads the environment at import, but a developer's .env must not leak in.
os.environ.setdefault("PASSGATE_ENVIRONMENT", "test")

from app.db import migrate
from app.logs.handlers import flush_all
from app.main import create_app
from app.settings import Settings
from tests.fixtures import concurrent_requests  # noqa: F401  (requests gathered run together)

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.redis_server", "tests.fixtures.chain"]

ADMIN_TOKEN = "adm-test-" + uuid.uuid4().hex
PEPPER = "test-pepper-" + uuid.uuid4().hex


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The schema is built by the real migrations, once per backend."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "passgate.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate.upgrade(Settings(database_url=url))
    return url


SettingsFactory = Callable[..., Settings]


def delete_prefixed_keys(redis_url: str, prefix: str) -> None:
    """Delete every ``{prefix}:*`` key (a test session's queues and counters)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        batch = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(batch), 1000):
            client.delete(*batch[start : start + 1000])
    finally:
        client.close()


@pytest.fixture(scope="session")
def settings_factory(database_url: str, redis_url: str) -> Iterator[SettingsFactory]:
    session_prefix = f"pgtest:{uuid.uuid4().hex[:8]}"

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "redis_url": redis_url,
            "redis_prefix": session_prefix,
            "key_pepper": PEPPER,
            "admin_token": ADMIN_TOKEN,
            "signup_per_minute": 100_000,
            "signup_per_day": 1_000_000,
            "siwx_per_minute": 100_000,
            "siwx_per_day": 1_000_000,
            "webhook_allowed_cidrs": ["127.0.0.0/8"],
        }
        values.update(overrides)
        return Settings(**values)

    yield build
    # The API enqueues jobs (webhook fan-out) that no test worker consumes; leave the shared
    # Redis as we found it.
    delete_prefixed_keys(redis_url, session_prefix)


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> Settings:
    return settings_factory()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(autouse=True)
def _log_lines_stay_with_their_test() -> Iterator[None]:
    """passgate writes log lines from a background thread: wait for this test's before pytest
    stops capturing, so they land in its report instead of the terminal between tests."""
    yield
    flush_all()
