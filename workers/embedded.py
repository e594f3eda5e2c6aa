"""A worker that also sends the periodic jobs (no scheduler process: the one box).

With a Redis broker and separate processes, the single ``passgate scheduler`` sends periodic
jobs. Without Redis (or with ``passgate serve --background``) there is no such process, so the
worker starts the same APScheduler jobs itself when it boots and stops them before it shuts
down: the chain watcher's tick and every sweeper run exactly as they do in production.
"""

from __future__ import annotations

import logging

import dramatiq
from apscheduler.schedulers.background import BackgroundScheduler
from dramatiq.middleware import Middleware

from workers.periodic import periodic_scheduler

log = logging.getLogger("passgate.scheduler")


class EmbeddedScheduler(Middleware):
    def __init__(self) -> None:
        self._scheduler: BackgroundScheduler | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        scheduler = periodic_scheduler()
        scheduler.start()
        self._scheduler = scheduler
        log.info("embedded scheduler started with %d jobs", len(scheduler.get_jobs()))

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)
