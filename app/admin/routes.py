"""Operator routes under ``/admin/v1`` (admin token). Every mutation is audited."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, patch, post
from litestar.params import Parameter

from app.admin.schemas import (
    AdminAgentPatch,
    AdminTokenBody,
    AuditView,
    CreatedAdminToken,
    LookupKeyBody,
    UpdateKeyBody,
)
from app.agents import service as agents
from app.agents.schemas import AgentView
from app.agents.views import agent_view
from app.audit import service as audit
from app.audit.service import Actor, record
from app.auth.guards import ADMIN, principal_of, runtime_of
from app.auth.principal import Principal
from app.credentials.format import KeyKind
from app.credits import service as credits
from app.credits.schemas import AdjustmentBody, LedgerView, ledger_view
from app.db.models.audit import AuditEntry
from app.db.models.keys import ApiKey
from app.db.paging import Page, page_params
from app.db.types import rfc3339
from app.db.uow import UnitOfWork
from app.errors import NotFound
from app.http.request_id import request_id_of
from app.keys import service as keys
from app.keys.schemas import KeyView
from app.keys.views import key_view
from app.platforms import service as platforms
from app.platforms.schemas import (
    CreatedPlatform,
    CreatePlatformBody,
    PlatformView,
    UpdatePlatformBody,
)
from app.platforms.views import platform_snapshot, platform_view
from app.settings import Settings

AnyRequest = Request[Any, Any, Any]


def _actor(request: AnyRequest, admin: Principal) -> Actor:
    return Actor("admin", admin.key_id, None, request_id_of(request))


# -- platforms ---------------------------------------------------------------------------


@post("/platforms", status_code=201)
async def create_platform(
    request: AnyRequest, session: UnitOfWork, data: CreatePlatformBody
) -> CreatedPlatform:
    """A platform with its first master key (shown once)."""
    admin = principal_of(request)
    created = await platforms.create(session, runtime_of(request).pepper, data.name.strip(),
                                     admin.key_id)
    await record(session, _actor(request, admin), "platform.create", "platform",
                 created.platform.id, after=platform_snapshot(created.platform))
    return CreatedPlatform(platform=platform_view(created.platform),
                           master_key=created.master.secret, master_key_id=created.master.key.id)


@get("/platforms")
async def list_platforms(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
) -> Page:
    rows, next_cursor = await platforms.search(session, page_params(limit, cursor))
    return Page(data=[platform_view(p) for p in rows], next_cursor=next_cursor)


@get("/platforms/{platform_id:str}")
async def get_platform(session: UnitOfWork, platform_id: str) -> PlatformView:
    return platform_view(await platforms.get(session, platform_id))


@patch("/platforms/{platform_id:str}")
async def update_platform(
    request: AnyRequest, session: UnitOfWork, platform_id: str,
    data: UpdatePlatformBody,
) -> PlatformView:
    admin = principal_of(request)
    rt = runtime_of(request)
    platform = await platforms.get(session, platform_id)
    before = platform_snapshot(platform)
    for field, value in data.changes().items():
        setattr(platform, field, value)
    session.add(platform)
    await record(session, _actor(request, admin), "platform.update", "platform", platform.id,
                 before=before, after=platform_snapshot(platform))
    session.after_commit(rt.auth.cache.clear)
    return platform_view(platform)


# -- agents ------------------------------------------------------------------------------


@get("/agents")
async def list_agents(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    platform_id: str | None = Parameter(query="platformId", default=None),
    disabled: bool | None = Parameter(default=None),
    q: str | None = Parameter(default=None, max_length=200),
) -> Page:
    """Search agents by platform, state, or name/id."""
    rows, next_cursor = await agents.search(
        session, page_params(limit, cursor), platform_id=platform_id, disabled=disabled, query=q
    )
    return Page(data=[agent_view(a) for a in rows], next_cursor=next_cursor)


@get("/agents/{agent_id:str}")
async def get_agent(session: UnitOfWork, agent_id: str) -> AgentView:
    return agent_view(await agents.get(session, agent_id))


@patch("/agents/{agent_id:str}")
async def update_agent(
    request: AnyRequest, session: UnitOfWork, agent_id: str,
    data: AdminAgentPatch,
) -> AgentView:
    admin = principal_of(request)
    rt = runtime_of(request)
    agent = await agents.get(session, agent_id)
    before = agents.agent_snapshot(agent)
    await agents.update(session, agent, data.changes())
    await record(session, _actor(request, admin), "agent.update", "agent", agent.id,
                 before=before, after=agents.agent_snapshot(agent))
    session.after_commit(rt.auth.cache.clear)
    return agent_view(agent)


# -- keys --------------------------------------------------------------------------------


async def _key_view(session: UnitOfWork, key: ApiKey, settings: Settings) -> KeyView:
    """The key with the rate limit it really gets (its agent's plan, unless overridden)."""
    plans = await agents.plans(session, {key.agent_id} if key.agent_id else set())
    return key_view(key, settings, plans.get(key.agent_id or ""))


@get("/keys")
async def list_keys(
    request: AnyRequest, session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    prefix: str | None = Parameter(default=None, max_length=8),
    agent_id: str | None = Parameter(query="agentId", default=None),
    platform_id: str | None = Parameter(query="platformId", default=None),
    status: str | None = Parameter(default=None),
    hint: str | None = Parameter(default=None, max_length=4),
) -> Page:
    """Search keys by prefix (kind), owner, status, or the last four characters."""
    rows, next_cursor = await keys.list_keys(
        session, page_params(limit, cursor), agent_id=agent_id, platform_id=platform_id,
        kind=prefix.rstrip("_") if prefix else None, status=status, hint_suffix=hint,
    )
    settings = runtime_of(request).settings
    plans = await agents.plans(session, {k.agent_id for k in rows if k.agent_id})
    return Page(data=[key_view(k, settings, plans.get(k.agent_id or "")) for k in rows],
                next_cursor=next_cursor)


@post("/keys/lookup", status_code=200, errors=(404,))
async def lookup_key(
    request: AnyRequest, session: UnitOfWork, data: LookupKeyBody
) -> KeyView:
    """Which key is this secret (e.g. one found leaked)? Hashes it; stores nothing."""
    rt = runtime_of(request)
    found = await keys.find_by_hash(session, rt.auth.digest(data.key.strip()))
    if found is None:
        raise NotFound("No key has this secret.")
    return await _key_view(session, found[0], rt.settings)


@get("/keys/{key_id:str}")
async def get_key(request: AnyRequest, session: UnitOfWork,
                  key_id: str) -> KeyView:
    return await _key_view(session, await keys.get(session, key_id), runtime_of(request).settings)


@patch("/keys/{key_id:str}")
async def update_key(
    request: AnyRequest, session: UnitOfWork, key_id: str,
    data: UpdateKeyBody,
) -> KeyView:
    """Per-key plan and rate-limit overrides."""
    admin = principal_of(request)
    rt = runtime_of(request)
    key = await keys.get(session, key_id)
    before = keys.key_snapshot(key)
    await keys.update(session, key, data.changes())
    await record(session, _actor(request, admin), "key.update", "key", key.id,
                 before=before, after=keys.key_snapshot(key))
    session.after_commit(lambda: rt.auth.cache.forget_key(key_id))
    return await _key_view(session, key, rt.settings)


@post("/keys/{key_id:str}/revoke", status_code=200)
async def revoke_key(
    request: AnyRequest, session: UnitOfWork, key_id: str
) -> KeyView:
    admin = principal_of(request)
    rt = runtime_of(request)
    key = await keys.get(session, key_id)
    before = keys.key_snapshot(key)
    await keys.revoke(session, key)
    await record(session, _actor(request, admin), "key.revoke", "key", key.id,
                 before=before, after=keys.key_snapshot(key))
    session.after_commit(lambda: rt.auth.cache.forget_key(key_id))
    return await _key_view(session, key, rt.settings)


@post("/tokens", status_code=201)
async def create_admin_token(
    request: AnyRequest, session: UnitOfWork,
    data: AdminTokenBody | None = None,
) -> CreatedAdminToken:
    """Another admin token (shown once), optionally expiring; never later than the calling
    token, so an expiring token cannot mint a permanent one."""
    admin = principal_of(request)
    expires_at = keys.check_expiry(data.expires_at if data else None)
    issued = await keys.issue(
        session, runtime_of(request).pepper, KeyKind.ADMIN,
        label=data.label if data else None,
        expires_at=keys.cap_expiry(expires_at, admin.key_expires_at),
        created_by=admin.key_id,
    )
    await record(session, _actor(request, admin), "admin_token.create", "key", issued.key.id,
                 after={"label": issued.key.label, "hint": issued.key.hint,
                        "expiresAt": rfc3339(issued.key.expires_at)})
    return CreatedAdminToken(id=issued.key.id, token=issued.secret, label=issued.key.label,
                             expires_at=rfc3339(issued.key.expires_at))


# -- credits -----------------------------------------------------------------------------


@post("/credits/adjustments", status_code=201, errors=(402, 404, 409))
async def adjust_credits(
    request: AnyRequest, session: UnitOfWork, data: AdjustmentBody
) -> LedgerView:
    """Credit or debit an agent with a reason (never below zero, never past
    ``MAX_BALANCE_MICROS``). Retried with the same ``idempotencyKey`` it answers with the
    first entry; the key reused for another agent or amount is a CONFLICT."""
    admin = principal_of(request)
    await agents.get(session, data.agent_id)
    entry, replayed = await credits.adjust(session, data.agent_id, data.amount_micros,
                                           data.reason, data.idempotency_key)
    if not replayed:  # a retry changed nothing: the first request's audit row covers it
        await record(session, _actor(request, admin), "credits.adjust", "agent", data.agent_id,
                     after={"amountMicros": data.amount_micros, "reason": data.reason,
                            "balanceAfterMicros": entry.balance_after_micros})
    return ledger_view(entry)


@get("/credits/ledger")
async def credit_ledger(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    agent_id: str | None = Parameter(query="agentId", default=None),
) -> Page:
    rows, next_cursor = await credits.history(session, page_params(limit, cursor), agent_id)
    return Page(data=[ledger_view(e) for e in rows], next_cursor=next_cursor)


# -- audit -------------------------------------------------------------------------------


def _audit_view(entry: AuditEntry) -> AuditView:
    return AuditView(
        id=entry.id, actor_type=entry.actor_type, actor_id=entry.actor_id, action=entry.action,
        target_type=entry.target_type, target_id=entry.target_id, before=entry.before,
        after=entry.after, request_id=entry.request_id,
        created_at=rfc3339(entry.created_at) or "",
    )


@get("/audit-log")
async def audit_log(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    actor_id: str | None = Parameter(query="actorId", default=None),
    action: str | None = Parameter(default=None),
    target_id: str | None = Parameter(query="targetId", default=None),
) -> Page:
    """Every admin and platform mutation: who, what, when, before/after."""
    rows, next_cursor = await audit.search(
        session, page_params(limit, cursor), actor_id=actor_id, action=action, target_id=target_id
    )
    return Page(data=[_audit_view(e) for e in rows], next_cursor=next_cursor)


router = Router(
    path="/admin/v1",
    route_handlers=[
        create_platform, list_platforms, get_platform, update_platform,
        list_agents, get_agent, update_agent,
        list_keys, lookup_key, get_key, update_key, revoke_key, create_admin_token,
        adjust_credits, credit_ledger, audit_log,
    ],
    before_request=ADMIN,
    tags=["admin"],
)
