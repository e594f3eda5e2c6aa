"""A request waiting for settlement is woken through Redis after a Redis restart at once, not
by the slow safety re-check: the worker's publisher and the API's listener both reconnect."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.payments.waiter import SAFETY_RECHECK_SECONDS, SettlementWaiter
from app.redis_clients import async_client
from tests.fixtures.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
# Long enough for the listener to have subscribed again (it retries within a second).
AFTER_RESTART_SECONDS = 1.5
# Well under the safety re-check, so only a wake-up through Redis returns this fast.
WOKEN_WITHIN = SAFETY_RECHECK_SECONDS / 2


class Announcer:
    """A worker-like process that announces settlements on request (tests.payments.announcer)."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        env = os.environ | {"PASSGATE_REDIS_URL": redis_url, "PASSGATE_REDIS_PREFIX": prefix}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.payments.announcer"], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )

    async def announce(self, payment_id: str) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(payment_id + "\n")
        self.process.stdin.flush()
        answer = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), 30)
        assert answer.strip() == "sent", answer

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def announcer(restartable_redis: RedisServer) -> Iterator[tuple[Announcer, str]]:
    prefix = f"pgtest:{uuid.uuid4().hex[:8]}"
    worker = Announcer(restartable_redis.url, prefix)
    try:
        yield worker, prefix
    finally:
        worker.stop()


async def _seconds_until_woken(
    waiter: SettlementWaiter, announcer: Announcer, payment_id: str
) -> float:
    with waiter.watch(payment_id) as watch:
        started = time.monotonic()
        await announcer.announce(payment_id)
        await watch.wait(within=10)
        return time.monotonic() - started


async def _wait_until_subscribed(waiter: SettlementWaiter, announcer: Announcer) -> None:
    """The listener subscribes in the background; announce until one wakes us (bounded)."""
    deadline = time.monotonic() + 10
    while await _seconds_until_woken(waiter, announcer, f"pay_{uuid.uuid4().hex}") > WOKEN_WITHIN:
        assert time.monotonic() < deadline, "the settlement listener never subscribed"


async def test_a_settlement_announced_after_a_redis_restart_wakes_the_waiter_at_once(
    restartable_redis: RedisServer, announcer: tuple[Announcer, str]
) -> None:
    # Given an API-side waiter and a worker that have both used Redis before it restarts
    worker, prefix = announcer
    redis = async_client(restartable_redis.url)
    waiter = SettlementWaiter(redis, prefix)
    try:
        await _wait_until_subscribed(waiter, worker)

        # When Redis restarts, and a payment settles once it is back
        restartable_redis.restart()
        await asyncio.sleep(AFTER_RESTART_SECONDS)
        elapsed = await _seconds_until_woken(waiter, worker, f"pay_{uuid.uuid4().hex}")
    finally:
        await waiter.close()
        await redis.aclose()

    # Then the waiter was woken through Redis, not by its safety re-check
    assert elapsed < WOKEN_WITHIN
