"""The operator's platform routes under ``/admin/v1`` (admin token). Every mutation is
audited."""

from __future__ import annotations

from litestar import Router, get, patch, post
from litestar.params import Parameter

from app.audit.service import Actor
from app.auth.guards import ADMIN
from app.auth.service import Authenticator
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.platforms import service as platforms
from app.platforms.schemas import (
    CreatedPlatform,
    CreatePlatformBody,
    PlatformView,
    UpdatePlatformBody,
    created_platform,
    platform_view,
)
from app.settings import Settings


@post("/platforms", status_code=201)
async def create_platform(
    session: UnitOfWork, settings: Settings, actor: Actor, data: CreatePlatformBody
) -> CreatedPlatform:
    """A platform with its first master key (shown once)."""
    created = await platforms.create_audited(session, settings, actor, data.name.strip())
    return created_platform(created.platform, created.master.key, created.master.secret)


@get("/platforms")
async def list_platforms(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
) -> Page:
    """Every platform, newest first."""
    rows, next_cursor = await platforms.search(session, page_params(limit, cursor))
    return Page(data=[platform_view(p) for p in rows], next_cursor=next_cursor)


@get("/platforms/{platform_id:str}")
async def get_platform(session: UnitOfWork, platform_id: str) -> PlatformView:
    """One platform."""
    return platform_view(await platforms.get(session, platform_id))


@patch("/platforms/{platform_id:str}")
async def update_platform(
    session: UnitOfWork, actor: Actor, authenticator: Authenticator, platform_id: str,
    data: UpdatePlatformBody,
) -> PlatformView:
    """Rename, disable/enable a platform, or change its daily spending limit."""
    platform = await platforms.update_audited(session, authenticator.cache, actor, platform_id,
                                              data.changes())
    return platform_view(platform)


router = Router(
    path="/admin/v1",
    route_handlers=[create_platform, list_platforms, get_platform, update_platform],
    before_request=ADMIN,
    tags=["admin"],
)
