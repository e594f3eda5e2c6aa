"""The single scheduler process: APScheduler 3 triggers periodic actors with ``.send()``.

Actors declare their own schedule (``workers.schedule.periodic``); this process only sends.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from app.recursion import settle_recursion_limit
from app.settings import Settings
from workers.broker import install_broker
from workers.runner import load_actors
from workers.schedule import registered

log = logging.getLogger("passgate.scheduler")


def build_scheduler(settings: Settings) -> BackgroundScheduler:
    install_broker(settings)
    load_actors()
    scheduler = BackgroundScheduler(timezone="UTC")
    for job in registered():
        scheduler.add_job(
            job.actor.send, "interval", seconds=job.every_seconds, id=job.actor.actor_name,
            max_instances=1, coalesce=True,
            # APScheduler wants whole seconds here.
            misfire_grace_time=max(1, math.ceil(job.every_seconds)),
        )
    return scheduler


def run_scheduler(settings: Settings, until: Callable[[], None]) -> None:
    settle_recursion_limit()
    scheduler = build_scheduler(settings)
    scheduler.start()
    log.info("scheduler started with %d jobs", len(scheduler.get_jobs()))
    try:
        until()
    finally:
        scheduler.shutdown(wait=False)
