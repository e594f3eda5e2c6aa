"""Key holder routes: introspection, listing, revocation and regeneration of the agent's keys.

Creating a key (``POST /v1/api-keys``) and the e-mail sign-up (``POST /v1/keys``) can create
an agent, so their handlers belong to the agents area (:mod:`app.agents.routes`); the app
factory serves them on this area's router, because Litestar merges the handlers of one path
(``/v1/api-keys``) only within one router.
"""

from __future__ import annotations

from litestar import Router, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from app.auth.guards import key_holder
from app.auth.principal import Principal
from app.auth.service import Authenticator
from app.credentials.scopes import KEYS_READ, KEYS_WRITE
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.keys import service as keys
from app.keys.schemas import KeyView, RegenerateBody, RegeneratedKey, principal_view, regenerated
from app.settings import Settings


@get("/api-keys/info", before_request=key_holder())
async def key_info(principal: Principal) -> KeyView:
    """The calling key: type, scopes, expiry, pass period, rate limit, last use."""
    return principal_view(principal)


@get("/api-keys", before_request=key_holder(KEYS_READ))
async def list_api_keys(
    session: UnitOfWork,
    settings: Settings,
    principal: Principal,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
    status: str | None = Parameter(default=None),
) -> Page:
    """The caller's agent's keys, newest first (never secrets)."""
    return await keys.list_for_agent(session, settings, page_params(limit, cursor), principal,
                                     status)


@delete(
    "/api-keys/{key_id:str}",
    before_request=key_holder(KEYS_WRITE),
    status_code=200,
)
async def revoke_api_key(
    session: UnitOfWork, settings: Settings, principal: Principal,
    authenticator: Authenticator, key_id: str,
) -> KeyView:
    """Revoke one of the agent's keys; it stops working within a second everywhere.

    Another of the agent's keys only when it has no scope the caller lacks and expires no
    later than the caller, and never the agent key (``ak_``) but by itself (FORBIDDEN)."""
    return await keys.revoke_for_holder(session, settings, authenticator.cache, principal,
                                        key_id)


@post(
    "/api-keys/{key_id:str}/regenerate",
    before_request=key_holder(KEYS_WRITE),
    status_code=200,
    errors=(409,),
)
async def regenerate_api_key(
    session: UnitOfWork,
    settings: Settings,
    principal: Principal,
    authenticator: Authenticator,
    key_id: str,
    data: RegenerateBody | None = None,
) -> RegeneratedKey:
    """New secret, same settings; the old secret keeps working for ``gracePeriodSeconds``.

    Another of the agent's keys only when it has no scope the caller lacks and expires no
    later than the caller, and never the agent key (``ak_``) but by itself (FORBIDDEN): its
    new secret goes to the caller."""
    grace = data.grace_period_seconds if data else 0
    done = await keys.regenerate_for_holder(session, settings, authenticator.cache, principal,
                                            key_id, grace)
    return regenerated(done.key, done.secret, done.previous_valid_until)


def router(*sharing_paths: HTTPRouteHandler) -> Router:
    """The key routes, after ``sharing_paths``: handlers of areas above keys that are
    documented with them and may share their paths."""
    return Router(
        path="/v1",
        route_handlers=[
            *sharing_paths, key_info, list_api_keys, revoke_api_key, regenerate_api_key,
        ],
        tags=["keys"],
    )
