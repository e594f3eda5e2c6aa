"""Actors that work on one row stop retrying it when a retry cannot help (``app.attention``).

``@parks(kind)`` goes under ``@dramatiq.actor`` on an async actor whose first argument is the
id of the row it works on. A failure of the outside world (database, Redis, node) is raised
as before: Dramatiq retries it with backoff and the sweepers re-drive it. Any other failure is
counted for the row (a warning) and retried by Dramatiq as a ``Retry``, which it does not log
again at ERROR; once the count reaches ``PASSGATE_JOB_MAX_FAILURES`` the row is parked (one
ERROR line; the actor then returns normally, so Dramatiq stops too) and every sweeper skips it
until an operator retries it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import ParamSpec, TypeVar

import dramatiq

from app.attention.service import is_transient, record_failure, run_each
from app.db.uow import UnitOfWork
from workers import actor_context

P = ParamSpec("P")
R = TypeVar("R")


def parks(kind: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R | None]]]:
    def wrap(actor: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | None]]:
        @functools.wraps(actor)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R | None:
            try:
                return await actor(*args, **kwargs)
            except Exception as exc:
                if is_transient(exc) or not args:
                    raise
                if await failed(kind, str(args[0]), exc, actor.__name__):
                    return None
                # Counted and logged once as a warning: retried with the same backoff, but
                # without Dramatiq's ERROR line and traceback for every attempt.
                raise dramatiq.Retry(f"{kind} failed: {type(exc).__name__}") from exc

        return guarded

    return wrap


async def failed(kind: str, ref: str, exc: BaseException, actor: str) -> bool:
    """Count a failure of ``kind``/``ref`` from inside a running actor; True once parked."""
    ctx = actor_context.current()
    return await record_failure(ctx.sessions, kind, ref, exc, actor=actor,
                                limit=ctx.settings.job_max_failures)


async def each(
    kind: str, refs: Iterable[str], work: Callable[[UnitOfWork, str], Awaitable[object]],
    actor: str,
) -> int:
    """Run ``work`` for each ref in a transaction of its own, for sweepers (see
    :func:`app.attention.service.run_each`). Returns how many did something."""
    ctx = actor_context.current()
    return await run_each(ctx.sessions, kind, refs, work, actor=actor,
                          limit=ctx.settings.job_max_failures)
