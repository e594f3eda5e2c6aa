"""The database is the source of truth: lost queues and killed workers lose no delivery."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.settings import Settings
from tests.factories import create_platform_agent, master_headers
from tests.fixtures.webhook_receiver import Receiver, Reply
from tests.webhooks.conftest import (
    StackFactory,
    create_endpoint,
    deliveries,
    new_platform,
    verified,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]


async def send_test(client: AsyncTestClient[Litestar], key: str, endpoint_id: str) -> str:
    response = await client.post(f"/v1/platform/webhooks/{endpoint_id}/test",
                                 headers=master_headers(key))
    assert response.status_code == 202, response.text
    message_id: str = response.json()["messageId"]
    return message_id


def distinct_ids(receiver: Receiver, path: str) -> set[str]:
    return {r.headers["webhook-id"] for r in receiver.hits(path)}


async def test_after_redis_loses_every_queued_job_all_messages_are_still_delivered(
    stack: StackFactory, admin_headers: dict[str, str], receiver: Receiver,
    redis_db: redis.Redis,
) -> None:
    # Given events and a test message whose jobs wait in Redis (no worker is running yet)
    api, harness = await stack(start_worker=False)
    receiver.routes["/hook"] = Reply(200)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"))
    agents = [await create_platform_agent(api, platform["key"]) for _ in range(3)]
    await send_test(api, platform["key"], endpoint["id"])
    assert redis_db.dbsize() > 0

    # When Redis loses everything, then a worker and the scheduler's sweeper run
    redis_db.flushdb()
    await harness.start()
    await wait_for(lambda: len(distinct_ids(receiver, "/hook")) >= 7, tick=harness.sweep,
                   what="seven deliveries")

    # Then every event and the test message arrived, each verifying
    payloads = [verified(r, endpoint["secret"]) for r in receiver.hits("/hook")]
    registered = {p["data"]["agentId"] for p in payloads if p["type"] == "agent.registered"}
    assert registered == {a["agent"]["id"] for a in agents}
    assert sorted(p["type"] for p in payloads).count("key.created") == 3
    assert [p["type"] for p in payloads].count("webhook.test") == 1

    async def all_delivered() -> bool:
        rows = await deliveries(api, platform["key"], endpoint["id"])
        return len(rows) == 7 and all(r["status"] == "delivered" for r in rows)

    await wait_for(all_delivered, what="every message delivered")


async def test_a_retry_lost_with_redis_is_redriven_when_due(
    stack: StackFactory, admin_headers: dict[str, str], receiver: Receiver,
    redis_db: redis.Redis,
) -> None:
    # Given a message whose retry (in 2 s) waits in Redis's delay queue
    api, harness = await stack(webhook_retry_delays=[2.0])
    receiver.routes["/hook"] = [Reply(503), Reply(200)]
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"),
                                     eventTypes=["webhook.test"])
    message_id = await send_test(api, platform["key"], endpoint["id"])
    await wait_for(lambda: len(receiver.hits("/hook")) == 1, what="the first attempt")

    async def retry_scheduled() -> bool:
        rows = await deliveries(api, platform["key"], endpoint["id"])
        return bool(rows and rows[0]["attempts"])

    await wait_for(retry_scheduled, what="the failed attempt to be recorded")

    # When Redis loses the delayed retry
    redis_db.flushdb()

    # Then the sweeper re-drives it once due, not before
    await wait_for(lambda: len(receiver.hits("/hook")) >= 2, tick=harness.sweep,
                   what="the re-driven retry")
    first, second = receiver.hits("/hook")[:2]
    assert second.headers["webhook-id"] == message_id
    assert second.at - first.at >= 1.9
    verified(second, endpoint["secret"])


def worker_environment(settings: Settings) -> dict[str, str]:
    """What a ``passgate worker`` process needs to join this test's database and broker."""
    values: dict[str, Any] = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "KEY_PEPPER": settings.key_pepper.get_secret_value(),
        "WEBHOOK_ALLOWED_CIDRS": json.dumps(settings.webhook_allowed_cidrs),
        "WEBHOOK_RETRY_DELAYS": json.dumps(settings.webhook_retry_delays),
        "WEBHOOK_RETRY_JITTER": settings.webhook_retry_jitter,
        "WEBHOOK_TIMEOUT_SECONDS": settings.webhook_timeout_seconds,
        "WEBHOOK_CONNECT_TIMEOUT_SECONDS": settings.webhook_connect_timeout_seconds,
        "WEBHOOK_CLAIM_SECONDS": settings.webhook_claim_seconds,
        "WEBHOOK_SWEEP_GRACE_SECONDS": settings.webhook_sweep_grace_seconds,
        "LOG_LEVEL": "WARNING",
    }
    return {**os.environ, **{f"PASSGATE_{k}": str(v) for k, v in values.items()}}


async def test_a_worker_killed_mid_delivery_loses_nothing(
    stack: StackFactory, admin_headers: dict[str, str], receiver: Receiver,
) -> None:
    # Given a worker process, and a receiver that holds the first request for 3 s
    # (attempts may take 4 s, so the message is leased for 5 s)
    api, harness = await stack(start_worker=False, webhook_timeout_seconds=4.0,
                               webhook_claim_seconds=1.0)
    receiver.routes["/hook"] = [Reply(200, delay=3.0), Reply(200)]
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"),
                                     eventTypes=["webhook.test"])
    # Popen returns at once; the worker's start-up is awaited below through the receiver.
    process = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-c", "from workers.cli import main; main()", "worker", "--threads", "2"],
        cwd=ROOT, env=worker_environment(harness.settings),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        message_id = await send_test(api, platform["key"], endpoint["id"])
        await wait_for(lambda: len(receiver.hits("/hook")) == 1, timeout=60,
                       what="the worker process to start sending")

        # When the worker is killed while the request is in flight
        process.kill()
        await asyncio.to_thread(process.wait, 10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    # Then, once its lease runs out, another worker (via the sweeper) delivers the message
    await harness.start()

    async def delivered() -> bool:
        rows = await deliveries(api, platform["key"], endpoint["id"])
        return bool(rows and rows[0]["status"] == "delivered")

    await wait_for(delivered, tick=harness.sweep, timeout=30, what="the message delivered")
    hits = receiver.hits("/hook")
    assert len(hits) == 2
    assert {h.headers["webhook-id"] for h in hits} == {message_id}  # a duplicate, never a loss
    for hit in hits:
        verified(hit, endpoint["secret"])
