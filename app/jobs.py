"""Send Dramatiq messages by actor name, after a commit, without blocking the event loop.

The API never imports actor modules (that would bind them to whatever broker is global at
import time); it addresses actors by ``(queue, actor name)`` instead. Sending is best effort by
design: the database is the source of truth, so a message the broker refuses or loses is
re-driven by the scheduler's sweeper. A failure is logged, never raised into a request that has
already committed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq import broker as dramatiq_broker
from dramatiq.errors import QueueNotFound

from app.redis_clients import sync_client
from app.settings import Settings

log = logging.getLogger("passgate.jobs")

BrokerSource = Callable[[], "dramatiq.Broker | None"]


@dataclass(frozen=True, slots=True)
class Job:
    """One actor invocation: ``delay_ms`` postpones it (must stay under Dramatiq's 7 days)."""

    queue: str
    actor: str
    args: tuple[Any, ...]
    delay_ms: int | None = None


class JobQueue:
    """Enqueues :class:`Job` s on the broker ``source()`` returns (``None``: no broker, skip).

    ``source`` is called at send time so the embedded mode can use the broker the in-process
    worker installed, whichever of the two was started first.
    """

    def __init__(self, source: BrokerSource, close: Callable[[], None] | None = None) -> None:
        self._source = source
        self._close = close

    @classmethod
    def on(cls, broker: dramatiq.Broker | None) -> JobQueue:
        return cls(lambda: broker)

    def close(self) -> None:
        if self._close is not None:
            self._close()

    async def send_unless_pending(self, job: Job, flag: str, ttl_ms: int) -> bool:
        """Enqueue ``job`` unless one sent under ``flag`` is still waiting to start.

        For jobs that sweep up whatever work is waiting, where one queued is as good as many:
        on Redis the flag is ``SET NX PX ttl_ms`` next to the queues, and the job clears it
        (:meth:`clear_pending`) *before* looking for work, so anything committed before the
        clearing is seen by that job and anything after sends a new one. The TTL bounds how
        long a lost job can hold the flag. Other brokers always send.
        """
        broker = self._source()
        if broker is None:
            return False
        return await asyncio.to_thread(_send_unless_pending, broker, job, flag, ttl_ms)

    async def clear_pending(self, flag: str) -> None:
        broker = self._source()
        target = _flag_target(broker, flag) if broker is not None else None
        if target is not None:
            client, key = target
            try:
                await asyncio.to_thread(client.delete, key)
            except Exception:
                log.warning("could not clear %s", flag, exc_info=True)

    async def send(self, jobs: Sequence[Job]) -> int:
        """Enqueue every job; returns how many were accepted."""
        if not jobs:
            return 0
        broker = self._source()
        if broker is None:
            return 0
        # Redis calls are blocking; one thread hop for the whole batch.
        return await asyncio.to_thread(_enqueue_all, broker, list(jobs))


def _flag_target(broker: dramatiq.Broker, flag: str) -> tuple[Any, str] | None:
    """The Redis client and key of a pending-job flag (``None``: not a Redis broker)."""
    client = getattr(broker, "client", None)
    namespace = getattr(broker, "namespace", None)
    if client is None or namespace is None:
        return None
    return client, f"{namespace}:pending:{flag}"


def _send_unless_pending(broker: dramatiq.Broker, job: Job, flag: str, ttl_ms: int) -> bool:
    target = _flag_target(broker, flag)
    if target is not None:
        client, key = target
        try:
            if not client.set(key, "1", nx=True, px=ttl_ms):
                return False
        except Exception:
            log.warning("could not check %s; sending anyway", flag, exc_info=True)
    return _enqueue_all(broker, [job]) == 1


def _enqueue_all(broker: dramatiq.Broker, jobs: list[Job]) -> int:
    sent = 0
    for job in jobs:
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=job.queue, actor_name=job.actor, args=job.args, kwargs={}, options={}
        )
        try:
            broker.enqueue(message, delay=job.delay_ms)
        except QueueNotFound:
            # An embedded process without a worker: nothing consumes this queue, and the
            # sweeper of whichever worker starts later picks the work up from the database.
            log.debug("no consumer for queue %s; %s left to the sweeper", job.queue, job.actor)
            return sent
        except Exception:
            log.warning("could not enqueue %s; the sweeper will re-drive it", job.actor,
                        exc_info=True)
            return sent
        sent += 1
    return sent


def installed_broker() -> dramatiq.Broker | None:
    """The global broker if one was installed, without creating Dramatiq's default one."""
    return dramatiq_broker.global_broker


class LazyBroker:
    """Where a process that only *sends* jobs (the API) finds its broker.

    Redis: a broker of its own, built on first use (a process that never sends never
    connects). Embedded: the in-process worker's broker if a worker runs in this process;
    otherwise nothing is sent and the work waits in the database for a worker's sweeper.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._broker: dramatiq.Broker | None = None

    def __call__(self) -> dramatiq.Broker | None:
        if self._settings.embedded:
            return installed_broker()
        with self._lock:
            if self._broker is None:
                self._broker = _redis_broker(self._settings)
            return self._broker

    def close(self) -> None:
        with self._lock:
            broker, self._broker = self._broker, None
        if broker is not None:
            broker.close()
            client = getattr(broker, "client", None)
            if client is not None:
                client.close()


def _redis_broker(settings: Settings) -> dramatiq.Broker:
    """A broker that only sends: no worker middleware. The Redis prefix namespaces the queues,
    so deployments sharing a server never take each other's jobs; our own client reconnects on
    first use after a Redis restart (``app.redis_clients``)."""
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(  # type: ignore[no-untyped-call]  # dramatiq leaves it unannotated
        client=sync_client(settings.redis_url), namespace=settings.redis_prefix
    )
