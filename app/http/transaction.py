"""The request owns the transaction: commit when the handler succeeds, roll back otherwise."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.guards import runtime_of
from app.db.hooks import AFTER_COMMIT, after_commit

__all__ = ["AFTER_COMMIT", "after_commit", "provide_session"]


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
