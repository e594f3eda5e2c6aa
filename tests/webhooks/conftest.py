"""Webhook delivery end to end: the API, a real Dramatiq worker on a dedicated Redis database,
and HTTP receivers on 127.0.0.1.

Workers run in this process (``dramatiq.Worker``) against a ``RedisBroker`` on database 13 with
a namespace per test (its keys are deleted afterwards); only the Redis-loss test FLUSHDBs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import pytest
import redis
from litestar import Litestar
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from app.main import create_app
from app.settings import Settings
from tests.factories import create_platform, master_headers
from tests.fixtures.webhook_receiver import Received, Receiver
from webhooks.signing import parse_secret
from workers import actor_context
from workers import webhooks as actors
from workers.broker import build_broker

WEBHOOK_REDIS_DB = 13
LOOPBACK = ["127.0.0.0/8"]
# A compressed schedule: retries after 0.3 s and 0.6 s, no jitter; short timeouts; the sweeper
# re-drives anything half a second overdue.
FAST = {
    "webhook_allowed_cidrs": LOOPBACK,
    "webhook_retry_delays": [0.3, 0.6],
    "webhook_retry_jitter": 0.0,
    "webhook_timeout_seconds": 1.0,
    "webhook_connect_timeout_seconds": 0.5,
    "webhook_claim_seconds": 2.0,
    "webhook_sweep_grace_seconds": 0.5,
    "webhook_replay_per_second": 20.0,
    # Tests poll the deliveries log with a master key.
    "plan_free_per_minute": 1_000_000,
}
WAIT_SECONDS = 15.0


def redis_db_url(url: str, db: int) -> str:
    """The same Redis server, another database number."""
    if url.startswith("unix://"):
        return f"{url}{'&' if '?' in url else '?'}db={db}"
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def webhook_redis_url(redis_url: str) -> str:
    return redis_db_url(redis_url, WEBHOOK_REDIS_DB)


@pytest.fixture
def redis_db(webhook_redis_url: str) -> Iterator[redis.Redis]:
    """A client on the dedicated database (tests that simulate Redis data loss FLUSHDB it)."""
    client = redis.Redis.from_url(webhook_redis_url, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(redis_db: redis.Redis) -> Iterator[str]:
    """This test's broker namespace (queues, rate limits); its keys are deleted afterwards."""
    name = f"whtest:{uuid.uuid4().hex[:8]}"
    yield name
    keys = list(redis_db.scan_iter(match=f"{name}:*", count=500))
    if keys:
        redis_db.delete(*keys)


@pytest.fixture
def wh_settings_factory(
    settings_factory: Callable[..., Settings], webhook_redis_url: str, namespace: str
) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"redis_url": webhook_redis_url, "redis_prefix": namespace,
                                  **FAST}
        values.update(overrides)
        return settings_factory(**values)

    return build


@pytest.fixture
def wh_settings(wh_settings_factory: Callable[..., Settings]) -> Settings:
    return wh_settings_factory()


@pytest.fixture
async def api(wh_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(wh_settings)) as client:
        yield client


class WorkerHarness:
    """A real Dramatiq worker in this process, on the test's Redis database and namespace."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker: dramatiq.Broker | None = None
        self.worker: dramatiq.Worker | None = None

    def bind(self) -> dramatiq.Broker:
        """Point the webhook actors at this test's broker (they bound to whatever broker was
        global when the module was first imported)."""
        if self.broker is None:
            self.broker = build_broker(self.settings)
            dramatiq.set_broker(self.broker)
            for actor in (actors.fan_out, actors.deliver, actors.sweep):
                actor.broker = self.broker
                self.broker.declare_actor(actor)
        return self.broker

    async def start(self, threads: int = 4) -> None:
        broker = self.bind()
        actor_context.configure(self.settings)
        self.worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
        self.worker.start()

    async def stop(self) -> None:
        if self.worker is not None:
            worker, self.worker = self.worker, None
            # In a thread: in-flight deliveries need this loop to serve the receiver.
            await asyncio.to_thread(worker.stop, 10_000)
        actor_context.configure(None)

    def sweep(self) -> None:
        """What the scheduler does every few seconds."""
        self.bind()
        actors.sweep.send()


@pytest.fixture
async def harness(wh_settings: Settings) -> AsyncIterator[WorkerHarness]:
    h = WorkerHarness(wh_settings)
    h.bind()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def worker(harness: WorkerHarness) -> WorkerHarness:
    await harness.start()
    return harness


Stack = tuple[AsyncTestClient[Litestar], WorkerHarness]
StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def stack(wh_settings_factory: Callable[..., Settings]) -> AsyncIterator[StackFactory]:
    """An API client and a worker harness on settings of the test's choosing."""
    async with AsyncExitStack() as exits:

        async def build(start_worker: bool = True, **overrides: Any) -> Stack:
            settings = wh_settings_factory(**overrides)
            client = await exits.enter_async_context(AsyncTestClient(app=create_app(settings)))
            h = WorkerHarness(settings)
            h.bind()
            exits.push_async_callback(h.stop)
            if start_worker:
                await h.start()
            return client, h

        yield build


@pytest.fixture
async def operator_endpoints(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str]
) -> AsyncIterator[Callable[..., Awaitable[dict[str, Any]]]]:
    """Creates operator endpoints and deletes them after the test: they receive every event
    in the (shared) test database, so none may outlive its test."""
    created: list[str] = []

    async def make(url: str, client: AsyncTestClient[Litestar] | None = None,
                   **fields: Any) -> dict[str, Any]:
        body = await create_operator_endpoint(client or api, admin_headers, url, **fields)
        created.append(body["id"])
        return body

    yield make
    for endpoint_id in created:
        await api.delete(f"/admin/v1/webhooks/{endpoint_id}", headers=admin_headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


async def wait_for(
    condition: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float = WAIT_SECONDS,  # noqa: ASYNC109 - a polling deadline, not an I/O timeout
    interval: float = 0.05,
    tick: Callable[[], None] | None = None,
    tick_every: float = 0.3,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until true; ``tick`` (e.g. a sweep) runs every ``tick_every``."""
    deadline = time.monotonic() + timeout
    next_tick = time.monotonic()
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        if tick is not None and now >= next_tick:
            tick()
            next_tick = now + tick_every
        await asyncio.sleep(interval)


def verified(request: Received, secret: str) -> dict[str, Any]:
    """The payload, after checking it with the third-party ``standardwebhooks`` package and
    recomputing ``X-Signature``."""
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    expected = hmac.new(parse_secret(secret), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-signature"], expected)
    return payload


async def new_platform(client: AsyncTestClient[Litestar],
                       admin_headers: dict[str, str]) -> dict[str, str]:
    body = await create_platform(client, admin_headers)
    return {"id": body["platform"]["id"], "key": body["masterKey"]}


async def create_endpoint(client: AsyncTestClient[Litestar], master_key: str, url: str,
                          **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/platform/webhooks", json={"url": url, **fields},
                                 headers=master_headers(master_key))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_operator_endpoint(client: AsyncTestClient[Litestar],
                                   admin_headers: dict[str, str], url: str,
                                   **fields: Any) -> dict[str, Any]:
    response = await client.post("/admin/v1/webhooks", json={"url": url, **fields},
                                 headers=admin_headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def deliveries(client: AsyncTestClient[Litestar], master_key: str,
                     endpoint_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/platform/webhooks/{endpoint_id}/deliveries",
                                headers=master_headers(master_key))
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data
