"""The Dramatiq broker: Redis when configured, an in-process ``StubBroker`` otherwise.

The database is the source of truth; the queue only carries ids, so losing it (a Redis flush,
the stub broker dying with the demo) loses no work: the scheduler re-drives from the tables.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO

from app.settings import Settings


def build_broker(settings: Settings) -> dramatiq.Broker:
    broker: dramatiq.Broker
    if settings.embedded:
        broker = StubBroker()
        broker.emit_after("process_boot")
    else:
        from dramatiq.brokers.redis import RedisBroker

        # dramatiq ships no type hints for its broker constructors.
        broker = RedisBroker(url=settings.redis_url, namespace="passgate")  # type: ignore[no-untyped-call]
    broker.add_middleware(AsyncIO())
    return broker


def install_broker(settings: Settings) -> dramatiq.Broker:
    """Make the broker global before any actor module is imported."""
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    return broker
