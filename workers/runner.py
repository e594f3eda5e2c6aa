"""Run a Dramatiq worker inside this process (``passgate worker`` and the demo)."""

from __future__ import annotations

import gc
from collections.abc import Callable

import dramatiq

from app.recursion import settle_recursion_limit
from app.settings import Settings
from workers import actor_context
from workers.broker import install_broker
from workers.embedded import EmbeddedScheduler
from workers.heartbeats import Heartbeats


def load_actors(broker: dramatiq.Broker | None = None) -> None:
    """Import every actor module and bind its actors to ``broker`` (default: the global one).

    Actors bind to the global broker of the moment their module is imported; a process that
    builds a broker later (the demo, tests starting several workers) re-binds them here.
    """
    from workers.actors import all_actors

    target = broker or dramatiq.get_broker()
    for actor in all_actors():
        actor.broker = target
        target.declare_actor(actor)


def start_worker(
    settings: Settings, threads: int = 4, schedule: bool | None = None
) -> dramatiq.Worker:
    """A Dramatiq worker on this process's threads, consuming every queue.

    ``schedule``: also send the periodic jobs (default: without Redis, where no scheduler
    process can reach this worker's in-process broker).
    """
    # Actors read these settings, not the environment's (the demo passes its own).
    actor_context.configure(settings)
    broker = install_broker(settings)
    broker.add_middleware(Heartbeats())
    if settings.embedded if schedule is None else schedule:
        broker.add_middleware(EmbeddedScheduler())
    load_actors(broker)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker


def settle_heap() -> None:
    """Leave what start-up made (modules, ORM mappers, the broker, actors) out of every later
    full garbage collection.

    A worker keeps ~150,000 such objects for its whole life, and each full collection walked
    them all again: 0.1-0.15 s with the GIL held, every other run of a chain backfill's
    20,000 transfers. Frozen, the same collection takes ~20 ms. Only for a long-lived process
    that has finished starting: frozen objects are never freed.
    """
    gc.collect()
    gc.freeze()


def run_worker(settings: Settings, threads: int, until: Callable[[], None]) -> None:
    settle_recursion_limit()
    stop_metrics = None
    if settings.worker_metrics_port is not None:
        from app.metrics.server import serve_metrics

        stop_metrics = serve_metrics(settings, settings.worker_metrics_port)
    worker = start_worker(settings, threads)
    settle_heap()
    try:
        until()
    finally:
        worker.stop(timeout=10_000)
        if stop_metrics is not None:
            stop_metrics()
