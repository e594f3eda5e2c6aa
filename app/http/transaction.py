"""The request owns the transaction: commit when the handler succeeds, roll back otherwise."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from litestar import Request
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.guards import runtime_of

AFTER_COMMIT = "after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[None] | None]) -> None:
    """Run ``callback`` only once the transaction has committed (e.g. enqueue a job)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


async def provide_session(request: Request[Any, Any, Any]) -> AsyncGenerator[AsyncSession, None]:
    async with runtime_of(request).sessions() as session:
        try:
            yield session
        except Exception:
            await session.rollback()
            raise
        await session.commit()
        for callback in session.info.pop(AFTER_COMMIT, []):
            result = callback()
            if result is not None:
                await result
