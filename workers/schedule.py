"""Periodic actors declare their interval next to their definition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    actor: dramatiq.Actor[Any, Any]
    every_seconds: float


_JOBS: dict[str, PeriodicJob] = {}


def periodic(every_seconds: float) -> Any:
    """Decorator for an actor: the scheduler sends it every ``every_seconds``."""

    def register(actor: dramatiq.Actor[Any, Any]) -> dramatiq.Actor[Any, Any]:
        _JOBS[actor.actor_name] = PeriodicJob(actor, every_seconds)
        return actor

    return register


def registered() -> list[PeriodicJob]:
    return list(_JOBS.values())
