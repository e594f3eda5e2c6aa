"""The key holders' gateway routes: the proxy to upstream providers, and its usage history."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, route
from litestar.enums import HttpMethod
from litestar.params import Parameter
from litestar.response.base import ASGIResponse

from app.auth.guards import key_holder, optional_key_holder, optional_principal_of
from app.auth.principal import Principal
from app.credentials.scopes import GATEWAY, USAGE_READ
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.gateway.incoming import IncomingCall, upstream_path
from app.gateway.paid import PaidContext
from app.gateway.service import Gateway
from app.gateway.usage_calls import pay_per_call
from app.http.request_id import request_id_of

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
    """The call as received: raw path (checked), query, headers and body."""
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
    request: AnyRequest, gateway: Gateway, provider: str, path: str = "",
) -> ASGIResponse:
    """Forward method, path, query, body and safe headers to the provider.

    With a key the call is paid with credits: 2xx is charged the provider's price; 4xx passes
    through uncharged; 5xx, timeouts and unreachable upstreams are 502 UPSTREAM_ERROR,
    uncharged (``X-Gateway-Cost-Micros``, ``X-Gateway-Balance-Micros``, ``X-Gateway-Usage-Id``
    tell what it cost). Without a key it is paid per call with x402: 402 with the price, then
    a signed authorization that is settled only when the upstream answered 2xx.
    """
    # The hot path: the caller and the raw request are read here, and everything else through
    # the gateway, rather than through more dependencies (two or more cost Litestar a task
    # group per request); the header mapping x402 needs is only built for a call without a key.
    caller = optional_principal_of(request)
    call = await incoming_call(request, provider)
    if caller is not None:
        return await gateway.call_with_credits(caller, call)
    payments = gateway.payments
    assert payments is not None, "the runtime gives the gateway its payments"
    context = PaidContext(gateway.settings, gateway.sessions, payments.redis)
    return await pay_per_call(context, payments, gateway, call, dict(request.headers))


@get("/usage", before_request=key_holder(USAGE_READ))
async def list_usage(
    gateway: Gateway,
    session: UnitOfWork,
    principal: Principal,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
    provider: str | None = Parameter(default=None, max_length=63),
    since: str | None = Parameter(query="from", default=None, max_length=64),
    until: str | None = Parameter(query="to", default=None, max_length=64),
) -> Page:
    """The agent's gateway calls, newest first; ``from`` (inclusive) / ``to`` (exclusive) are
    RFC 3339 times."""
    return await gateway.usage_page(
        session, principal, page_params(limit, cursor),
        provider=provider, since=since, until=until,
    )


router = Router(path="/v1", route_handlers=[gateway_call, list_usage], tags=["gateway"])
