"""The API survives its database connections dying under it: a server that ends them (a
restart, pg_terminate_backend) or vanishes without a word (a failover, a reboot)."""

from __future__ import annotations

import asyncio

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import make_url, text

from app.db import engine as db_engine
from app.main import create_app
from app.settings import Settings
from tests.conftest import SettingsFactory
from tests.fixtures.services import PG_ADMIN_DB, _pg_connect
from tests.fixtures.tcp_proxy import vanishing_proxy

KILL_WAIT_MS = 5_000


def _kill_backends(database_url: str) -> int:
    """Terminate every server process of the test database, waiting until each has exited."""
    name = database_url.rsplit("/", 1)[1]
    with _pg_connect(PG_ADMIN_DB) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (KILL_WAIT_MS, name),
        ).fetchall()
    return len(rows)


async def _register(client: AsyncTestClient[Litestar]) -> int:
    return (await client.post("/v1/agents/register", json={"name": "reconnect"})).status_code


async def test_idle_connections_to_a_vanished_server_are_replaced(
    settings_factory: SettingsFactory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has no server connections to lose")
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 0.2)
    url = make_url(database_url)
    with vanishing_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        settings = settings_factory(
            database_url=url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        )
        async with AsyncTestClient(app=create_app(settings)) as client:
            # Given a pooled connection whose server then vanished without closing it (a
            # failover, a reboot): nothing tells the process until it sends something
            assert await _register(client) == 201
            proxy.vanish()
            await asyncio.sleep(0.3)

            # When the connection, idle, is next checked out
            status = await _register(client)

    # Then its ping met the reset, and the request went over a fresh connection
    assert status == 201


async def test_connections_killed_right_after_use_are_replaced(settings: Settings) -> None:
    if settings.is_sqlite:
        pytest.skip("SQLite has no server connections to lose")
    async with AsyncTestClient(app=create_app(settings)) as client:
        # Given a pooled connection used a moment ago (too recently to be pinged)
        assert await _register(client) == 201

        # When the server ends it (a restart, an operator's pg_terminate_backend) and the
        # process, idle, has read the server's goodbye
        assert _kill_backends(settings.database_url) >= 1
        await asyncio.sleep(0.05)

        # Then the next request gets a live connection instead of a 503
        assert await _register(client) == 201


async def test_only_idle_connections_are_pinged(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection reused within the idle window costs no extra round trip."""
    if settings.is_sqlite:
        pytest.skip("SQLite has no server connections to ping")
    pings: list[object] = []
    real_ping = db_engine._ping

    def counting_ping(dbapi_connection: object) -> None:
        pings.append(dbapi_connection)
        real_ping(dbapi_connection)

    monkeypatch.setattr(db_engine, "_ping", counting_ping)
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 0.3)
    engine = db_engine.create_engine(settings)
    try:
        for _ in range(5):
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 42"))).scalar_one() == 42
        assert pings == []
        await asyncio.sleep(0.4)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 42"))).scalar_one() == 42
        assert len(pings) == 1
    finally:
        await engine.dispose()
