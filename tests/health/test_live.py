"""``/v1/health/live`` touches no dependency: it answers while the database and Redis are gone,
when ``/v1/health`` says they are."""

from __future__ import annotations

import time

from litestar.testing import AsyncTestClient

from app.main import create_app
from tests.fixtures.redis_server import RedisServer
from workers.demo.server import free_port

# Each request's own bound: a probe that waited on a dead dependency would show here.
ANSWER_WITHIN = 5.0


def _unreachable_database(database_url: str, tmp_path) -> str:
    """A database of the session's kind that cannot be reached: PostgreSQL on a port nothing
    listens on, SQLite in a directory that does not exist."""
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path}/missing/dir/passgate.db"
    return f"postgresql+asyncpg://passgate@127.0.0.1:{free_port()}/passgate"


async def test_live_answers_while_the_database_and_redis_are_down_and_health_is_degraded(
    settings_factory, database_url, restartable_redis: RedisServer, tmp_path
):
    # Given an API whose Redis (a private server) has been stopped and whose database cannot
    # be reached
    settings = settings_factory(database_url=_unreachable_database(database_url, tmp_path),
                                redis_url=restartable_redis.url)
    restartable_redis.stop()

    async with AsyncTestClient(app=create_app(settings)) as client:
        # When a probe asks whether the process is alive, twice, and then asks for health
        answers = []
        for _ in range(2):
            started = time.monotonic()
            response = await client.get("/v1/health/live")
            answers.append((response.status_code, response.json(),
                            time.monotonic() - started))
        health = await client.get("/v1/health")

    # Then liveness is 200 "ok" at once, while health is 503 degraded naming both
    assert [(status, body) for status, body, _ in answers] == [(200, {"status": "ok"})] * 2
    assert all(took < ANSWER_WITHIN for _, _, took in answers), answers
    body = health.json()
    assert health.status_code == 503, body
    assert body["status"] == "degraded"
    assert body["database"]["status"] != "ok"
    assert body["broker"]["status"] != "ok"
    assert any("database" in reason for reason in body["reasons"]), body["reasons"]
    assert any("broker" in reason.lower() or "redis" in reason.lower()
               for reason in body["reasons"]), body["reasons"]
