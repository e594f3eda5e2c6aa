"""The API survives its database connections dying under it (a PostgreSQL restart)."""

from __future__ import annotations

import asyncio

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from app.db import engine as db_engine
from app.main import create_app
from app.settings import Settings
from tests.fixtures.services import PG_ADMIN_DB, _pg_connect


def _kill_backends(database_url: str) -> int:
    name = database_url.rsplit("/", 1)[1]
    with _pg_connect(PG_ADMIN_DB) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


async def _register(client: AsyncTestClient[Litestar]) -> int:
    return (await client.post("/v1/agents/register", json={"name": "reconnect"})).status_code


async def test_idle_connections_killed_by_a_restart_are_replaced(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    if settings.is_sqlite:
        pytest.skip("SQLite has no server connections to lose")
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_SECONDS", 0.2)
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert await _register(client) == 201
        assert _kill_backends(settings.database_url) >= 1
        await asyncio.sleep(0.3)
        # The pooled connection is dead; its ping fails and the pool opens a fresh one, so
        # the request does not see the restart at all.
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
