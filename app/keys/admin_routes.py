"""The operator's key routes under ``/admin/v1`` (admin token): search, lookup by secret,
overrides, revocation, admin tokens. Every mutation is audited."""

from __future__ import annotations

from litestar import Router, get, patch, post
from litestar.params import Parameter

from app.audit.service import Actor
from app.auth.guards import ADMIN
from app.auth.principal import Principal
from app.auth.service import Authenticator
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.keys import admin_service
from app.keys.schemas import (
    AdminTokenBody,
    CreatedAdminToken,
    KeyView,
    LookupKeyBody,
    UpdateKeyBody,
    created_admin_token,
)
from app.settings import Settings


@get("/keys")
async def list_keys(
    session: UnitOfWork, settings: Settings,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    prefix: str | None = Parameter(default=None, max_length=8),
    agent_id: str | None = Parameter(query="agentId", default=None),
    platform_id: str | None = Parameter(query="platformId", default=None),
    status: str | None = Parameter(default=None),
    hint: str | None = Parameter(default=None, max_length=4),
) -> Page:
    """Search keys by prefix (kind), owner, status, or the last four characters."""
    return await admin_service.search(
        session, settings, page_params(limit, cursor), prefix=prefix, agent_id=agent_id,
        platform_id=platform_id, status=status, hint=hint,
    )


@post("/keys/lookup", status_code=200, errors=(404,))
async def lookup_key(session: UnitOfWork, settings: Settings, data: LookupKeyBody) -> KeyView:
    """Which key is this secret (e.g. one found leaked)? Hashes it; stores nothing."""
    return await admin_service.lookup(session, settings, data.key)


@get("/keys/{key_id:str}")
async def get_key(session: UnitOfWork, settings: Settings, key_id: str) -> KeyView:
    """One key, with the rate limit it really gets."""
    return await admin_service.describe(session, settings, key_id)


@patch("/keys/{key_id:str}")
async def update_key(
    session: UnitOfWork, settings: Settings, actor: Actor, authenticator: Authenticator,
    key_id: str, data: UpdateKeyBody,
) -> KeyView:
    """Per-key plan and rate-limit overrides."""
    return await admin_service.override(session, settings, authenticator.cache, actor, key_id,
                                        data.changes())


@post("/keys/{key_id:str}/revoke", status_code=200)
async def revoke_key(
    session: UnitOfWork, settings: Settings, actor: Actor, authenticator: Authenticator,
    key_id: str,
) -> KeyView:
    """Revoke any key; it stops working within a second everywhere."""
    return await admin_service.revoke_by_operator(session, settings, authenticator.cache, actor,
                                                  key_id)


@post("/tokens", status_code=201)
async def create_admin_token(
    session: UnitOfWork, settings: Settings, principal: Principal, actor: Actor,
    data: AdminTokenBody | None = None,
) -> CreatedAdminToken:
    """Another admin token (shown once), optionally expiring; never later than the calling
    token, so an expiring token cannot mint a permanent one."""
    issued = await admin_service.create_admin_token(
        session, settings, principal, actor, data.label if data else None,
        data.expires_at if data else None,
    )
    return created_admin_token(issued.key, issued.secret)


router = Router(
    path="/admin/v1",
    route_handlers=[list_keys, lookup_key, get_key, update_key, revoke_key, create_admin_token],
    before_request=ADMIN,
    tags=["admin"],
)
