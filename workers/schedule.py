"""Periodic actors declare their interval next to their definition."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import dramatiq


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
