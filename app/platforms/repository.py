"""The SQL of the platforms area."""

from __future__ import annotations

from sqlmodel import col, select

from app.db.models.platforms import Platform
from app.db.paging import PageParams
from app.db.queries import get_or_404, page
from app.db.uow import UnitOfWork


async def get(session: UnitOfWork, platform_id: str) -> Platform:
    """The platform, or NOT_FOUND."""
    return await get_or_404(session, Platform, platform_id, "Platform")


async def search(session: UnitOfWork, params: PageParams) -> tuple[list[Platform], str | None]:
    """A page of platforms, newest first."""
    return await page(session, select(Platform), col(Platform.id), params)
