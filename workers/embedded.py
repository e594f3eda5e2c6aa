"""Embedded mode (no Redis: the demo, a laptop): the worker process is also the scheduler.

With a Redis broker, the single ``passgate scheduler`` process sends periodic jobs. Without
one there is only this process, so the worker starts the same APScheduler jobs itself when it
boots and stops them before it shuts down: the chain watcher's tick and every sweeper run in
the demo exactly as they do in production.
"""

from __future__ import annotations

import logging
import math

import dramatiq
from apscheduler.schedulers.background import BackgroundScheduler
from dramatiq.middleware import Middleware

from workers.schedule import registered

log = logging.getLogger("passgate.scheduler")


class EmbeddedScheduler(Middleware):
    def __init__(self) -> None:
        self._scheduler: BackgroundScheduler | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        scheduler = BackgroundScheduler(timezone="UTC")
        for job in registered():
            scheduler.add_job(
                job.actor.send, "interval", seconds=job.every_seconds, id=job.actor.actor_name,
                max_instances=1, coalesce=True,
                # APScheduler wants whole seconds here.
                misfire_grace_time=max(1, math.ceil(job.every_seconds)),
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("embedded scheduler started with %d jobs", len(scheduler.get_jobs()))

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)
