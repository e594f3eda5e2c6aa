"""The request owns its unit of work: committed when the handler succeeds (running what was
queued on it), rolled back otherwise."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request

from app.auth.guards import runtime_of
from app.db.uow import UnitOfWork

__all__ = ["provide_session"]


async def provide_session(request: Request[Any, Any, Any]) -> AsyncGenerator[UnitOfWork, None]:
    async with runtime_of(request).sessions() as session:
        try:
            yield session
        except Exception:
            await session.rollback()
            raise
        await session.commit()
