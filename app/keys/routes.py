"""Key holder routes: sign-up, key creation, introspection, listing, revocation, rotation."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, delete, get, post
from litestar.params import Parameter

from app.auth.guards import (
    SIGNUP,
    key_holder,
    key_holder_or_signup,
    optional_principal_of,
    principal_of,
    runtime_of,
)
from app.credentials.format import KeyKind
from app.credentials.scopes import KEYS_READ, KEYS_WRITE, TYPE_NAMES
from app.db.models.agents import Agent
from app.db.paging import Page, page_params
from app.db.types import rfc3339
from app.db.uow import UnitOfWork
from app.keys import holder
from app.keys import service as keys
from app.keys.schemas import (
    CreatedKey,
    CreateKeyBody,
    EmailSignupBody,
    EmailSignupResult,
    KeyView,
    RegenerateBody,
    RegeneratedKey,
)
from app.keys.views import key_view, principal_view

AnyRequest = Request[Any, Any, Any]


@post("/keys", before_request=SIGNUP, status_code=201, errors=(409,))
async def signup_gateway_key(
    request: AnyRequest, session: UnitOfWork, data: EmailSignupBody
) -> EmailSignupResult:
    """Gateway-only ``gw_`` key with starter credits for an e-mail address."""
    created = await holder.signup(session, runtime_of(request), data.email)
    credits = created.agent.balance_micros
    return EmailSignupResult(
        api_key=created.key.secret,
        credits_usd=credits / 1_000_000,
        creditsMicros=credits,
        keyId=created.key.key.id,
        agentId=created.agent.id,
        scopes=list(created.key.key.scopes),
    )


@post(
    "/api-keys",
    # The scope is only checked for authenticated callers: a read-only key must not mint keys
    # that outlive its own revocation.
    before_request=key_holder_or_signup(KEYS_WRITE),
    status_code=201,
    errors=(409,),
)
async def create_api_key(
    request: AnyRequest, session: UnitOfWork, data: CreateKeyBody
) -> CreatedKey:
    """Create a personal ``pk_`` key (an unclaimed one when called without a key)."""
    caller = optional_principal_of(request)
    created = await holder.create_personal_key(session, runtime_of(request), caller, data)
    return CreatedKey(
        id=created.key.id,
        label=created.key.label,
        key=created.secret,
        type=TYPE_NAMES[KeyKind.PERSONAL],
        scopes=list(created.key.scopes),
        created_at=rfc3339(created.key.created_at) or "",
        expires_at=rfc3339(created.key.expires_at),
        claim_code=created.claim_code,
        agent_id=created.key.agent_id,
    )


async def _agent_plan(session: UnitOfWork, agent_id: str | None) -> str | None:
    agent = await session.get(Agent, agent_id) if agent_id else None
    return agent.plan if agent else None


@get("/api-keys/info", before_request=key_holder())
async def key_info(request: AnyRequest) -> KeyView:
    """The calling key: type, scopes, expiry, pass period, rate limit, last use."""
    return principal_view(principal_of(request))


@get("/api-keys", before_request=key_holder(KEYS_READ))
async def list_api_keys(
    request: AnyRequest,
    session: UnitOfWork,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
    status: str | None = Parameter(default=None),
) -> Page:
    """The caller's agent's keys, newest first (never secrets)."""
    caller = principal_of(request)
    params = page_params(limit, cursor)
    rows, next_cursor = await keys.list_keys(
        session, params, agent_id=caller.agent_id or "", status=status
    )
    settings = runtime_of(request).settings
    plan = await _agent_plan(session, caller.agent_id)
    return Page(data=[key_view(k, settings, plan) for k in rows], next_cursor=next_cursor)


@delete(
    "/api-keys/{key_id:str}",
    before_request=key_holder(KEYS_WRITE),
    status_code=200,
)
async def revoke_api_key(
    request: AnyRequest, session: UnitOfWork, key_id: str
) -> KeyView:
    """Revoke one of the agent's keys; it stops working within a second everywhere.

    Another of the agent's keys only when it has no scope the caller lacks and expires no
    later than the caller, and never the agent key (``ak_``) but by itself (FORBIDDEN)."""
    rt = runtime_of(request)
    key = await holder.revoke_key(session, principal_of(request), key_id)
    session.after_commit(lambda: rt.auth.cache.forget_key(key_id))
    return key_view(key, rt.settings, await _agent_plan(session, key.agent_id))


@post(
    "/api-keys/{key_id:str}/regenerate",
    before_request=key_holder(KEYS_WRITE),
    status_code=200,
    errors=(409,),
)
async def regenerate_api_key(
    request: AnyRequest,
    session: UnitOfWork,
    key_id: str,
    data: RegenerateBody | None = None,
) -> RegeneratedKey:
    """New secret, same settings; the old secret keeps working for ``gracePeriodSeconds``.

    Another of the agent's keys only when it has no scope the caller lacks and expires no
    later than the caller, and never the agent key (``ak_``) but by itself (FORBIDDEN): its
    new secret goes to the caller."""
    rt = runtime_of(request)
    grace = data.grace_period_seconds if data else 0
    done = await holder.regenerate_key(session, rt, principal_of(request), key_id, grace)
    session.after_commit(lambda: rt.auth.cache.forget_key(key_id))
    return RegeneratedKey(
        id=done.key.id, key=done.secret, hint=done.key.hint,
        previous_key_expires_at=rfc3339(done.previous_valid_until) or "",
    )


router = Router(
    path="/v1",
    route_handlers=[
        signup_gateway_key, create_api_key, key_info, list_api_keys, revoke_api_key,
        regenerate_api_key,
    ],
    tags=["keys"],
)
