"""Agent self-service: registration, e-mail sign-up, personal keys, ``/me``, claim codes.

``POST /v1/keys`` and ``POST /v1/api-keys`` can create an agent, so their handlers live here;
they are served and documented with the rest of key management, on the router of
:mod:`app.keys.routes` (``key_routes``).
"""

from __future__ import annotations

from litestar import Router, get, post

from app.agents import schemas
from app.agents import service as agents
from app.agents.schemas import (
    ClaimHelp,
    ClaimInfo,
    EmailSignupBody,
    EmailSignupResult,
    Me,
    RegisterBody,
    Registered,
)
from app.auth.guards import SIGNUP, key_holder, key_holder_or_signup
from app.auth.principal import Principal
from app.credentials.scopes import AGENT_READ, KEYS_WRITE
from app.db.uow import UnitOfWork
from app.keys.schemas import CreatedKey, CreateKeyBody, created_key
from app.settings import Settings


@post("/agents/register", before_request=SIGNUP, status_code=201)
async def register_agent(
    session: UnitOfWork, settings: Settings, data: RegisterBody
) -> Registered:
    """An agent registers itself: an ``ak_`` key (shown once) and a claim code for a platform."""
    created = await agents.register(session, settings, data.name.strip(), data.description)
    return schemas.registered(created.agent, created.key.key, created.key.secret,
                              created.claim_code or "", settings.public_url)


@get("/agents/me", before_request=key_holder(AGENT_READ))
async def me(session: UnitOfWork, settings: Settings, principal: Principal) -> Me:
    """The caller's agent, key, balance and limits."""
    found = await agents.profile(session, principal)
    return schemas.me(found.agent, found.key, settings)


@get("/claims")
async def how_to_claim() -> ClaimHelp:
    """Where a claim URL leads: how a platform claims the agent. The claim code is the URL's
    fragment (after ``#``); it never comes to the server."""
    return ClaimHelp(
        how_to_claim=schemas.HOW_TO_CLAIM,
        claim_code="the part of the claim URL after '#' (clm_...)",
    )


@get("/claims/{claim_code:str}")
async def describe_claim(session: UnitOfWork, settings: Settings, claim_code: str) -> ClaimInfo:
    """Which agent a claim code belongs to, and how a platform takes it into its fleet. Access
    lines name the route template, never the code (app.metrics.request_observer)."""
    return schemas.claim_info(await agents.describe_claim(session, settings, claim_code))


@post("/keys", before_request=SIGNUP, status_code=201, errors=(409,))
async def signup_gateway_key(
    session: UnitOfWork, settings: Settings, data: EmailSignupBody
) -> EmailSignupResult:
    """Gateway-only ``gw_`` key with starter credits for an e-mail address."""
    created = await agents.signup_by_email(session, settings, data.email)
    return schemas.email_signup_result(created.agent, created.key.key, created.key.secret)


@post(
    "/api-keys",
    # The scope is only checked for authenticated callers: a read-only key must not mint keys
    # that outlive its own revocation.
    before_request=key_holder_or_signup(KEYS_WRITE),
    status_code=201,
    errors=(409,),
)
async def create_api_key(
    session: UnitOfWork, settings: Settings, caller: Principal | None, data: CreateKeyBody
) -> CreatedKey:
    """Create a personal ``pk_`` key (an unclaimed one when called without a key)."""
    issued, claim_code = await agents.create_personal_key(session, settings, caller, data)
    return created_key(issued.key, issued.secret, claim_code)


router = Router(
    path="/v1", route_handlers=[register_agent, me, how_to_claim, describe_claim], tags=["agents"]
)
# Served on the keys area's router (paths under /v1): POST /v1/api-keys shares its path with
# the key listing there.
key_routes = (signup_gateway_key, create_api_key)
