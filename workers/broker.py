"""The Dramatiq broker: Redis when configured, an in-process ``StubBroker`` otherwise.

The database is the source of truth; the queue only carries ids, so losing it (a Redis flush,
the stub broker dying with the demo) loses no work: the scheduler re-drives from the tables.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO

from app.redis_clients import sync_client
from app.settings import Settings


def build_broker(settings: Settings) -> dramatiq.Broker:
    from workers.actor_context import FastEventLoop, WorkerResources
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
