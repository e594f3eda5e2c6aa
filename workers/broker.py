"""The Dramatiq broker: Redis when configured, an in-process ``StubBroker`` otherwise.

The database is the source of truth; the queue only carries ids, so losing it (a Redis flush,
the stub broker dying with the demo) loses no work: the scheduler re-drives from the tables.
"""

from __future__ import annotations

import threading

import dramatiq
from dramatiq import broker as dramatiq_broker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO

from app.redis_clients import sync_client
from app.settings import Settings


def build_broker(settings: Settings) -> dramatiq.Broker:
    from workers.context import FastEventLoop, WorkerResources
    from workers.log_context import JobLogContext

    broker: dramatiq.Broker
    if settings.embedded:
        broker = StubBroker()
        broker.emit_after("process_boot")
    else:
        from dramatiq.brokers.redis import RedisBroker

        # The Redis prefix namespaces the queues too, so deployments sharing a server (or a
        # test run) never consume each other's messages. Our own client: Dramatiq's from a URL
        # would not reconnect on first use after a Redis restart (app.redis_clients).
        broker = RedisBroker(  # type: ignore[no-untyped-call]  # dramatiq leaves it unannotated
            client=sync_client(settings.redis_url), namespace=settings.redis_prefix
        )
    broker.add_middleware(JobLogContext())
    broker.add_middleware(FastEventLoop())
    broker.add_middleware(AsyncIO())
    # After AsyncIO: "after" hooks run in reverse, so resources close while the loop still runs.
    broker.add_middleware(WorkerResources())
    return broker


def install_broker(settings: Settings) -> dramatiq.Broker:
    """Make the broker global before any actor module is imported."""
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    return broker


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
                self._broker = build_broker(self._settings)
            return self._broker

    def close(self) -> None:
        with self._lock:
            broker, self._broker = self._broker, None
        if broker is not None:
            broker.close()
            client = getattr(broker, "client", None)
            if client is not None:
                client.close()
