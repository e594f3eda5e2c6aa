"""The single scheduler process: APScheduler 3 triggers periodic actors with ``.send()``.

Actors declare their own schedule (``workers.periodic.periodic``); this process only sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from app.recursion import settle_recursion_limit
from app.settings import Settings
from workers.broker import install_broker
from workers.periodic import periodic_scheduler
from workers.runner import load_actors

log = logging.getLogger("passgate.scheduler")


def build_scheduler(settings: Settings) -> BackgroundScheduler:
    install_broker(settings)
    load_actors()
    return periodic_scheduler()


def run_scheduler(settings: Settings, until: Callable[[], None]) -> None:
    settle_recursion_limit()
    scheduler = build_scheduler(settings)
    scheduler.start()
    log.info("scheduler started with %d jobs", len(scheduler.get_jobs()))
    try:
        until()
    finally:
        scheduler.shutdown(wait=False)
