"""Run a Dramatiq worker inside this process (``passgate worker`` and the demo)."""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

from app.settings import Settings
from workers.broker import install_broker


def load_actors() -> None:
    """Import every actor module so the broker knows their queues."""
    import workers.actors  # noqa: F401


def start_worker(settings: Settings, threads: int = 4) -> dramatiq.Worker:
    from workers import context

    # Actors read these settings, not the environment's (the demo passes its own).
    context.configure(settings)
    broker = install_broker(settings)
    load_actors()
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker


def run_worker(settings: Settings, threads: int, until: Callable[[], None]) -> None:
    worker = start_worker(settings, threads)
    try:
        until()
    finally:
        worker.stop(timeout=10_000)
