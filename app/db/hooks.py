"""Work that must wait for the transaction to commit (enqueueing jobs, clearing caches).

Callbacks live on ``session.info`` so any code holding the session can register one; whoever
owns the transaction (the request dependency, an actor) runs them once the commit succeeded and
drops them on rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlmodel.ext.asyncio.session import AsyncSession

AFTER_COMMIT = "after_commit"

Callback = Callable[[], Awaitable[None] | None]

log = logging.getLogger("passgate.db")


def after_commit(session: AsyncSession, callback: Callback) -> None:
    """Run ``callback`` only once the transaction has committed (e.g. enqueue a job)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


async def run_after_commit(session: AsyncSession) -> None:
    """Run (and forget) the callbacks registered during the transaction that just committed."""
    for callback in session.info.pop(AFTER_COMMIT, []):
        result = callback()
        if result is not None:
            await result


async def commit(session: AsyncSession) -> None:
    """Commit, then run the after-commit callbacks: for actors, which own their transactions."""
    await session.commit()
    await run_after_commit(session)


def discard_after_commit(session: AsyncSession) -> None:
    """Forget the callbacks of a transaction that was rolled back."""
    session.info.pop(AFTER_COMMIT, None)
