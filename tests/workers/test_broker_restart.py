"""Jobs keep flowing across a Redis restart: the API's sends and a worker's consumer both
reconnect on their first use instead of failing once per pooled connection."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest

from app.jobs import Job, JobQueue, LazyBroker
from tests.conftest import SettingsFactory
from tests.fixtures.redis_server import RedisServer
from workers.broker import build_broker

QUEUE = "restart_probe"
ACTOR = "restart_probe"
AFTER_RESTART_SECONDS = 0.5
RECEIVE_WITHIN = 10.0


def _job() -> Job:
    return Job(QUEUE, ACTOR, (uuid.uuid4().hex,))


def _receive(consumer: Any) -> dramatiq.Message[Any]:
    """The next message on ``consumer`` (it polls; ``None`` means nothing yet), acknowledged."""
    deadline = time.monotonic() + RECEIVE_WITHIN
    while time.monotonic() < deadline:
        message = next(consumer)
        if message is not None:
            consumer.ack(message)
            return message
    raise AssertionError(f"nothing arrived on {QUEUE} within {RECEIVE_WITHIN:g}s")


@pytest.fixture
def worker_broker(
    settings_factory: SettingsFactory, restartable_redis: RedisServer
) -> Iterator[dramatiq.Broker]:
    """A worker's broker on the private Redis, consuming the probe queue."""
    broker = build_broker(settings_factory(redis_url=restartable_redis.url))
    broker.declare_queue(QUEUE)
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def api_jobs(
    settings_factory: SettingsFactory, restartable_redis: RedisServer
) -> Iterator[JobQueue]:
    """The job queue an API process sends through (as ``Runtime.build`` makes it)."""
    broker = LazyBroker(settings_factory(redis_url=restartable_redis.url))
    jobs = JobQueue(broker, close=broker.close)
    try:
        yield jobs
    finally:
        jobs.close()


async def test_a_job_sent_right_after_a_redis_restart_is_queued(
    api_jobs: JobQueue, worker_broker: dramatiq.Broker, restartable_redis: RedisServer
) -> None:
    # Given an API process that sent a job before Redis restarted
    assert await api_jobs.send([_job()]) == 1

    # When Redis restarts and the API sends its next job
    restartable_redis.restart()
    await asyncio.sleep(AFTER_RESTART_SECONDS)
    job = _job()
    sent = await api_jobs.send([job])

    # Then the broker took it, and a worker receives it
    assert sent == 1
    consumer = worker_broker.consume(QUEUE, timeout=100)
    try:
        assert tuple(_receive(consumer).args) == job.args
    finally:
        consumer.close()


async def test_a_worker_consumer_receives_jobs_after_a_redis_restart(
    api_jobs: JobQueue, worker_broker: dramatiq.Broker, restartable_redis: RedisServer
) -> None:
    # Given a worker's consumer that fetched from Redis before it restarted
    consumer = worker_broker.consume(QUEUE, timeout=100)
    try:
        assert await api_jobs.send([_job()]) == 1
        _receive(consumer)

        # When Redis restarts and a job is sent once it is back
        restartable_redis.restart()
        await asyncio.sleep(AFTER_RESTART_SECONDS)
        job = _job()
        assert await api_jobs.send([job]) == 1

        # Then the same consumer receives it without a connection error
        assert tuple(_receive(consumer).args) == job.args
    finally:
        consumer.close()
