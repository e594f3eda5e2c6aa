"""Agent self-service: registration, ``/me``, claim codes."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, post

from app.agents import service as agents
from app.agents.schemas import ClaimHelp, ClaimInfo, Me, RegisterBody, Registered
from app.agents.views import agent_view
from app.auth.guards import SIGNUP, key_holder, principal_of, runtime_of
from app.credentials.scopes import AGENT_READ
from app.db.uow import UnitOfWork
from app.keys import service as keys
from app.keys.views import key_view, rate_limit_of

AnyRequest = Request[Any, Any, Any]


@post("/agents/register", before_request=SIGNUP, status_code=201)
async def register_agent(
    request: AnyRequest, session: UnitOfWork, data: RegisterBody
) -> Registered:
    """An agent registers itself: an ``ak_`` key (shown once) and a claim code for a platform."""
    rt = runtime_of(request)
    created = await agents.register(
        session, rt.pepper, data.name.strip(), data.description,
        rt.settings.agent_starter_credits_micros,
    )
    code = created.claim_code or ""
    # The code rides in the URL's fragment, which browsers and HTTP clients never send: opening
    # the link shows how to claim, and the code reaches no server's or proxy's access log.
    return Registered(
        agent_id=created.agent.id,
        agent_name=created.agent.name,
        api_key=created.key.secret,
        key_id=created.key.key.id,
        claim_code=code,
        claim_url=f"{rt.settings.public_url.rstrip('/')}/v1/claims#{code}",
        credits_micros=created.agent.balance_micros,
    )


@get("/agents/me", before_request=key_holder(AGENT_READ))
async def me(request: AnyRequest, session: UnitOfWork) -> Me:
    """The caller's agent, key, balance and limits."""
    caller = principal_of(request)
    settings = runtime_of(request).settings
    agent = await agents.get(session, caller.agent_id or "")
    key = await keys.get(session, caller.key_id)
    return Me(
        agent=agent_view(agent),
        key=key_view(key, settings, agent.plan),
        credits_micros=agent.balance_micros,
        spent_micros=agent.spent_micros,
        rate_limit=rate_limit_of(key, settings, agent.plan),
    )


HOW_TO_CLAIM = 'POST /v1/platform/agents/claim with X-Master-Key and {"claimCode": "..."}'


@get("/claims")
async def how_to_claim() -> ClaimHelp:
    """Where a claim URL leads: how a platform claims the agent. The claim code is the URL's
    fragment (after ``#``); it never comes to the server."""
    return ClaimHelp(
        how_to_claim=HOW_TO_CLAIM,
        claim_code="the part of the claim URL after '#' (clm_...)",
    )


@get("/claims/{claim_code:str}")
async def describe_claim(request: AnyRequest, session: UnitOfWork, claim_code: str) -> ClaimInfo:
    """Which agent a claim code belongs to, and how a platform takes it into its fleet. Access
    lines name the route template, never the code (app.metrics.http)."""
    agent = await agents.describe_claim(session, runtime_of(request).pepper, claim_code)
    return ClaimInfo(
        agent_id=agent.id,
        agent_name=agent.name,
        claimed=False,
        how_to_claim=HOW_TO_CLAIM,
    )


router = Router(
    path="/v1", route_handlers=[register_agent, me, how_to_claim, describe_claim], tags=["agents"]
)
