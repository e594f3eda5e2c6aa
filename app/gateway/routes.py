"""Gateway routes: the proxy, usage history, and the operator's provider management."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, delete, get, patch, post, route
from litestar.enums import HttpMethod
from litestar.params import Parameter
from litestar.response.base import ASGIResponse
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.audit.service import Actor, record
from app.auth.guards import (
    ADMIN,
    key_holder,
    optional_key_holder,
    optional_principal_of,
    principal_of,
)
from app.auth.principal import Principal
from app.credentials.scopes import GATEWAY, USAGE_READ
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.errors import Unauthorized
from app.gateway import manage
from app.gateway.incoming import IncomingCall, upstream_path
from app.gateway.paid import PaidContext, call_with_x402
from app.gateway.schemas import AdminProviderView, CreateProviderBody, UpdateProviderBody
from app.gateway.service import Gateway
from app.gateway.views import admin_provider_view, usage_view
from app.http.request_id import request_id_of
from app.payments.service import Payments
from app.settings import Settings

AnyRequest = Request[Any, Any, Any]

METHODS: list[HttpMethod] = [
    HttpMethod.GET,
    HttpMethod.POST,
    HttpMethod.PUT,
    HttpMethod.PATCH,
    HttpMethod.DELETE,
    HttpMethod.HEAD,
    HttpMethod.OPTIONS,
]


async def incoming_call(request: AnyRequest, provider: str) -> IncomingCall:
    scope = request.scope
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    return IncomingCall(
        provider=provider,
        method=request.method,
        path=upstream_path(raw_path, provider),
        query=scope.get("query_string", b""),
        headers=list(scope["headers"]),
        body=await request.body(),
        request_id=request_id_of(request),
    )


@route(
    ["/gateway/{provider:str}", "/gateway/{provider:str}/{path:path}"],
    http_method=METHODS,
    before_request=optional_key_holder(GATEWAY),
    summary="Call an upstream provider through the gateway",
    # The upstream's own status (2xx, 4xx) is passed through.
    status_code=200,
    paid=True,
    errors=(404, 502),
)
async def gateway_call(
    request: AnyRequest, gateway: Gateway, payments: Payments, settings: Settings,
    sessions: async_sessionmaker[UnitOfWork], provider: str, path: str = "",
) -> ASGIResponse:
    """Forward method, path, query, body and safe headers to the provider.

    With a key the call is paid with credits: 2xx is charged the provider's price; 4xx passes
    through uncharged; 5xx, timeouts and unreachable upstreams are 502 UPSTREAM_ERROR,
    uncharged (``X-Gateway-Cost-Micros``, ``X-Gateway-Balance-Micros``, ``X-Gateway-Usage-Id``
    tell what it cost). Without a key it is paid per call with x402: 402 with the price, then
    a signed authorization that is settled only when the upstream answered 2xx.
    """
    caller = optional_principal_of(request)
    call = await incoming_call(request, provider)
    if caller is None:
        if not payments.chain.configured:
            raise Unauthorized("Missing API key (this server takes no per-call payments).")
        context = PaidContext(settings, sessions, payments.redis)
        return await call_with_x402(context, payments, gateway, call,
                                    dict(request.headers))
    return await gateway.call_with_credits(caller, call)


@get("/usage", before_request=key_holder(USAGE_READ))
async def list_usage(
    gateway: Gateway, request: AnyRequest,
    session: UnitOfWork,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
    provider: str | None = Parameter(default=None, max_length=63),
    since: str | None = Parameter(query="from", default=None, max_length=64),
    until: str | None = Parameter(query="to", default=None, max_length=64),
) -> Page:
    """The agent's gateway calls, newest first; ``from`` (inclusive) / ``to`` (exclusive) are
    RFC 3339 times."""
    caller = principal_of(request)
    rows, next_cursor = await gateway.usage_page(
        session, caller, page_params(limit, cursor), provider=provider, since=since, until=until
    )
    return Page(data=[usage_view(u) for u in rows], next_cursor=next_cursor)


router = Router(path="/v1", route_handlers=[gateway_call, list_usage], tags=["gateway"])


# -- operator: providers ---------------------------------------------------------------------


def _actor(request: AnyRequest, admin: Principal) -> Actor:
    return Actor("admin", admin.key_id, None, request_id_of(request))


def _refresh_after_commit(gateway: Gateway, session: UnitOfWork) -> None:
    session.after_commit(gateway.registry.invalidate)


@post("/providers", status_code=201, errors=(409,))
async def create_provider(
    gateway: Gateway, request: AnyRequest, session: UnitOfWork, data: CreateProviderBody
) -> AdminProviderView:
    """Add a provider. Header values are stored sealed and never returned."""
    admin = principal_of(request)
    values = {name: getattr(data, name) for name in data.__struct_fields__ if name != "enabled"}
    row = await manage.create(session, gateway.settings, gateway.box, values, enabled=data.enabled)
    await record(
        session,
        _actor(request, admin),
        "provider.create",
        "provider",
        row.id,
        after=manage.snapshot(row),
    )
    _refresh_after_commit(gateway, session)
    return admin_provider_view(await manage.entry(session, gateway.settings, row.name))


@get("/providers")
async def list_providers(
    gateway: Gateway, request: AnyRequest,
    session: UnitOfWork,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
) -> Page:
    """Configured and admin-managed providers, by name (header names only)."""
    entries = await manage.entries(session, gateway.settings)
    chunk, next_cursor = manage.page(entries, limit, cursor)
    return Page(data=[admin_provider_view(e) for e in chunk], next_cursor=next_cursor)


@get("/providers/{name:str}")
async def get_provider(
    gateway: Gateway, request: AnyRequest, session: UnitOfWork, name: str
) -> AdminProviderView:
    return admin_provider_view(await manage.entry(session, gateway.settings, name))


@patch("/providers/{name:str}", errors=(409,))
async def update_provider(
    gateway: Gateway, request: AnyRequest,
    session: UnitOfWork,
    name: str,
    data: UpdateProviderBody,
) -> AdminProviderView:
    """Change an admin-managed provider; configured ones are CONFLICT."""
    admin = principal_of(request)
    before = await manage.entry(session, gateway.settings, name)
    before_snapshot = manage.snapshot(before.row) if before.row is not None else None
    row = await manage.update(session, gateway.settings, gateway.box, name, data.changes())
    await record(
        session,
        _actor(request, admin),
        "provider.update",
        "provider",
        row.id,
        before=before_snapshot,
        after=manage.snapshot(row),
    )
    _refresh_after_commit(gateway, session)
    return admin_provider_view(await manage.entry(session, gateway.settings, row.name))


@delete("/providers/{name:str}", status_code=200, errors=(409,))
async def delete_provider(
    gateway: Gateway, request: AnyRequest, session: UnitOfWork, name: str
) -> AdminProviderView:
    """Remove an admin-managed provider; configured ones are CONFLICT."""
    admin = principal_of(request)
    gone = await manage.entry(session, gateway.settings, name)
    row = await manage.delete(session, gateway.settings, name)
    await record(
        session,
        _actor(request, admin),
        "provider.delete",
        "provider",
        row.id,
        before=manage.snapshot(row),
    )
    _refresh_after_commit(gateway, session)
    return admin_provider_view(gone)


admin_router = Router(
    path="/admin/v1",
    route_handlers=[
        create_provider,
        list_providers,
        get_provider,
        update_provider,
        delete_provider,
    ],
    before_request=ADMIN,
    tags=["admin"],
)
