"""Periodic actors declare their interval next to their definition; one APScheduler sends them.

Every job is also sent once as its scheduler starts, so the sweepers re-drive whatever a
restart left behind at once, and ``/v1/health`` sees every periodic job within seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import dramatiq
from apscheduler.schedulers.background import BackgroundScheduler


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    actor: dramatiq.Actor[Any, Any]
    every_seconds: float


_JOBS: dict[str, PeriodicJob] = {}


ActorT = TypeVar("ActorT", bound="dramatiq.Actor[Any, Any]")


def periodic(every_seconds: float) -> Callable[[ActorT], ActorT]:
    """Decorator for an actor: the scheduler sends it every ``every_seconds``."""

    def register(actor: ActorT) -> ActorT:
        _JOBS[actor.actor_name] = PeriodicJob(actor, every_seconds)
        return actor

    return register


def registered() -> list[PeriodicJob]:
    return list(_JOBS.values())


def periodic_of(actor_name: str) -> PeriodicJob | None:
    return _JOBS.get(actor_name)


def periodic_scheduler() -> BackgroundScheduler:
    """An APScheduler sending every registered periodic job (not started yet)."""
    scheduler = BackgroundScheduler(timezone="UTC")
    now = datetime.now(UTC)
    for job in registered():
        scheduler.add_job(
            job.actor.send, "interval", seconds=job.every_seconds, id=job.actor.actor_name,
            max_instances=1, coalesce=True, next_run_time=now,
            # APScheduler wants whole seconds here.
            misfire_grace_time=max(1, math.ceil(job.every_seconds)),
        )
    return scheduler
