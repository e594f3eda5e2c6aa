"""Litestar dependencies that authenticate, authorise and rate-limit a request.

A route states what it needs with ``opt={"scope": "..."}``; the dependency enforces it, so
handlers never repeat access checks.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar import Request

from app.auth.principal import Principal
from app.errors import Forbidden, RateLimited, Unauthorized
from app.keys.format import KeyKind
from app.ratelimit.headers import remember
from app.runtime import Runtime

KEY_HOLDER_KINDS = frozenset({KeyKind.AGENT, KeyKind.GATEWAY, KeyKind.PERSONAL, KeyKind.PASS})

AnyRequest = Request[Any, Any, Any]


def runtime_of(request: AnyRequest) -> Runtime:
    # Item access: State's attribute access falls back through __getattr__ on every call.
    runtime: Runtime = request.app.state["runtime"]
    return runtime


def raw_header(request: AnyRequest, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes) straight from the ASGI scope.

    The auth path runs on every keyed request and needs two or three headers; scanning the raw
    list avoids building Litestar's case-insensitive multidict for it.
    """
    for key, value in request.scope["headers"]:
        if key == name or key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def presented_key(request: AnyRequest) -> str | None:
    key = raw_header(request, b"x-api-key")
    if key and key.strip():
        return key.strip()
    auth = raw_header(request, b"authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def client_ip(request: AnyRequest, trusted_proxies: list[str]) -> str:
    peer = request.client.host if request.client else "unknown"
    if trusted_proxies and _in_any(peer, trusted_proxies):
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        # The right-most hop not added by a proxy we trust is the real client.
        for hop in reversed(hops):
            if not _in_any(hop, trusted_proxies):
                return hop
    return peer


def _in_any(address: str, cidrs: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs)


async def _rate_limit(request: AnyRequest, principal: Principal) -> None:
    runtime = runtime_of(request)
    state = await runtime.limiter.check("key", principal.key_id, principal.per_minute,
                                        principal.per_day)
    remember(request, state)
    if not state.allowed:
        raise RateLimited(
            f"Rate limit of {state.limit} requests exceeded; retry in {state.retry_after} s.",
            headers={"Retry-After": str(state.retry_after)},
        )


def _check_tenant(request: AnyRequest, principal: Principal) -> None:
    tenant = raw_header(request, b"x-tenant-id")
    if tenant and tenant != principal.platform_id:
        raise Forbidden("This key does not belong to the tenant named in X-Tenant-ID.")


def _check_scope(request: AnyRequest, principal: Principal) -> None:
    scope = request.route_handler.opt.get("scope")
    if scope and scope not in principal.scopes:
        raise Forbidden(f"This key lacks the '{scope}' scope.")


async def _authenticate(request: AnyRequest, secret: str | None, what: str) -> Principal:
    if not secret:
        raise Unauthorized(f"Missing {what}.")
    return await runtime_of(request).auth.authenticate(secret)


async def provide_key_holder(request: AnyRequest) -> Principal:
    """An agent, gateway, personal or pass key (``X-API-Key`` or ``Authorization: Bearer``)."""
    principal = await _authenticate(request, presented_key(request), "API key")
    if principal.kind not in KEY_HOLDER_KINDS:
        raise Forbidden("This endpoint takes an agent or API key, not a master or admin key.")
    if principal.agent_disabled:
        raise Forbidden("This agent is disabled.")
    if principal.platform_disabled:
        raise Forbidden("This agent's platform is disabled.")
    _check_tenant(request, principal)
    await _rate_limit(request, principal)
    _check_scope(request, principal)
    return principal


async def provide_optional_key_holder(request: AnyRequest) -> Principal | None:
    if presented_key(request) is None:
        return None
    return await provide_key_holder(request)


async def provide_master(request: AnyRequest) -> Principal:
    """A platform's master key (``X-Master-Key``)."""
    secret = raw_header(request, b"x-master-key")
    principal = await _authenticate(request, secret.strip() if secret else None, "X-Master-Key")
    if principal.kind is not KeyKind.MASTER:
        raise Forbidden("X-Master-Key takes a master key (mk_).")
    if principal.platform_disabled:
        raise Forbidden("This platform is disabled.")
    _check_tenant(request, principal)
    await _rate_limit(request, principal)
    return principal


ENV_ADMIN_ID = "env-admin-token"


async def provide_admin(request: AnyRequest) -> Principal:
    """The operator: ``Authorization: Bearer <admin token>`` on ``/admin/*``."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    if not token:
        raise Unauthorized("Missing admin token (Authorization: Bearer adm_...).")
    runtime = runtime_of(request)
    if runtime.auth.is_env_admin_token(token):
        return Principal(
            key_id=ENV_ADMIN_ID, kind=KeyKind.ADMIN, agent_id=None, platform_id=None,
            scopes=frozenset(), plan="admin", per_minute=0, per_day=None, status="active",
            key_expires_at=None, secret_expires_at=None,
        )
    principal = await runtime.auth.authenticate(token)
    if principal.kind is not KeyKind.ADMIN:
        raise Forbidden("Admin routes take an admin token.")
    return principal


async def provide_signup_guard(request: AnyRequest) -> str:
    """Per-client-IP limit on endpoints that create keys without authentication."""
    runtime = runtime_of(request)
    ip = client_ip(request, runtime.settings.trusted_proxies)
    state = await runtime.limiter.check(
        "signup", ip, runtime.settings.signup_per_minute, runtime.settings.signup_per_day
    )
    remember(request, state)
    if not state.allowed:
        raise RateLimited(
            f"Too many sign-ups from this address; retry in {state.retry_after} s.",
            headers={"Retry-After": str(state.retry_after)},
        )
    return ip
