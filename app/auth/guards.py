"""Who may call a route: authentication, authorisation and rate limits, checked before the
handler runs.

Every route states its access with a ``before_request`` hook built here (``key_holder(scope)``,
``MASTER``, ``ADMIN``, ``SIGNUP``, ``OPEN``...); the handler then reads the caller with
:func:`principal_of`. Hooks rather than Litestar dependencies: a keyed request pays for the
check once instead of for dependency resolution on top, and the check still runs before the
body is parsed, so an unauthenticated caller learns nothing from validation errors. Each hook
begins with the input check (NUL characters, JSON nesting; a route-level hook replaces the
app's), and :func:`check_route_access` refuses to start an app with a route that has no access
hook or an ``/admin`` route without the admin one.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar, Request
from litestar.exceptions import ImproperlyConfiguredException

from app.auth.access import Access, access_of
from app.auth.principal import Principal
from app.credentials.format import KeyKind
from app.errors import Forbidden, RateLimited, Unauthorized
from app.http.input_guard import check_input
from app.http.openapi import ACCESS_ATTR
from app.http.rate_limit_headers import remember
from app.http.request_id import scope_state
from app.logs import context as log_context
from app.metrics.instruments import rate_limited

KEY_HOLDER_KINDS = frozenset({KeyKind.AGENT, KeyKind.GATEWAY, KeyKind.PERSONAL, KeyKind.PASS})

AnyRequest = Request[Any, Any, Any]


def raw_header(request: AnyRequest, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes) straight from the ASGI scope.

    The auth path runs on every keyed request and needs two or three headers; scanning the raw
    list avoids building Litestar's case-insensitive multidict for it. ASGI servers send header
    names lower-cased (the spec requires it), so a plain comparison finds them.
    """
    for key, value in request.scope["headers"]:
        if key == name:
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


async def _rate_limit(request: AnyRequest, access: Access, principal: Principal) -> None:
    limiter = access.limiter
    state = limiter.check_now("key", principal.key_id, principal.per_minute, principal.per_day)
    if state is None:
        state = await limiter.check("key", principal.key_id, principal.per_minute,
                                    principal.per_day)
    remember(request, state)
    if not state.allowed:
        rate_limited("key")
        raise RateLimited(
            f"Rate limit of {state.limit} requests exceeded; retry in {state.retry_after} s.",
            headers={"Retry-After": str(state.retry_after)},
        )


def _check_tenant(request: AnyRequest, principal: Principal) -> None:
    tenant = raw_header(request, b"x-tenant-id")
    if tenant and tenant != principal.platform_id:
        raise Forbidden("This key does not belong to the tenant named in X-Tenant-ID.")


def _check_scope(principal: Principal, scope: str | None) -> None:
    if scope and scope not in principal.scopes:
        raise Forbidden(f"This key lacks the '{scope}' scope.")


async def _authenticate(access: Access, secret: str | None, what: str) -> Principal:
    if not secret:
        raise Unauthorized(f"Missing {what}.")
    return await access.authenticator.authenticate(secret)


SIGN_IN_WITH_X = b"sign-in-with-x"


async def _wallet_principal(
    request: AnyRequest, access: Access, scope: str | None
) -> Principal | None:
    """The caller a ``SIGN-IN-WITH-X`` header proves (no API key presented); None without the
    header or when the wallet owns nothing usable here. A proof that fails is UNAUTHORIZED."""
    if access.wallet_sign_in is None:
        return None
    header = raw_header(request, SIGN_IN_WITH_X)
    if header is None:
        return None
    settings = access.settings
    await _limit_per_ip(request, access, "siwx", settings.siwx_per_minute, settings.siwx_per_day,
                        "sign-ins with a wallet")
    return await access.wallet_sign_in.sign_in(header, scope)


async def authenticate_key_holder(request: AnyRequest, scope: str | None = None) -> Principal:
    """An agent, gateway, personal or pass key (``X-API-Key`` or ``Authorization: Bearer``);
    without a key, a wallet signed in with ``SIGN-IN-WITH-X`` acting as what it owns."""
    access = access_of(request)
    secret = presented_key(request)
    principal = None if secret else await _wallet_principal(request, access, scope)
    if principal is None:
        if not secret and access.wallet_sign_in is not None and raw_header(
            request, SIGN_IN_WITH_X
        ) is not None:
            raise Unauthorized("This wallet owns no live pass and no agent with credits to "
                               "use here; it can pay instead.")
        principal = await _authenticate(access, secret, "API key")
    return await _admit_key_holder(request, access, principal, scope)


async def _admit_key_holder(
    request: AnyRequest, access: Access, principal: Principal, scope: str | None
) -> Principal:
    if principal.kind not in KEY_HOLDER_KINDS:
        raise Forbidden("This endpoint takes an agent or API key, not a master or admin key.")
    if principal.agent_disabled:
        raise Forbidden("This agent is disabled.")
    if principal.platform_disabled:
        raise Forbidden("This agent's platform is disabled.")
    _check_tenant(request, principal)
    await _rate_limit(request, access, principal)
    _check_scope(principal, scope)
    return principal


async def authenticate_master(request: AnyRequest) -> Principal:
    """A platform's master key (``X-Master-Key``)."""
    secret = raw_header(request, b"x-master-key")
    access = access_of(request)
    principal = await _authenticate(access, secret.strip() if secret else None, "X-Master-Key")
    if principal.kind is not KeyKind.MASTER:
        raise Forbidden("X-Master-Key takes a master key (mk_).")
    if principal.platform_disabled:
        raise Forbidden("This platform is disabled.")
    _check_tenant(request, principal)
    await _rate_limit(request, access, principal)
    return principal


ENV_ADMIN_ID = "env-admin-token"


async def authenticate_admin(request: AnyRequest) -> Principal:
    """The operator: ``Authorization: Bearer <admin token>`` on ``/admin/*``."""
    auth = raw_header(request, b"authorization") or ""
    scheme, _, value = auth.partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    if not token:
        raise Unauthorized("Missing admin token (Authorization: Bearer adm_...).")
    access = access_of(request)
    if access.authenticator.is_env_admin_token(token):
        return Principal(
            key_id=ENV_ADMIN_ID, kind=KeyKind.ADMIN, agent_id=None, platform_id=None,
            scopes=frozenset(), plan="admin", per_minute=0, per_day=None, status="active",
            key_expires_at=None, secret_expires_at=None,
        )
    principal = await access.authenticator.authenticate(token)
    if principal.kind is not KeyKind.ADMIN:
        raise Forbidden("Admin routes take an admin token.")
    return principal


async def limit_signups(request: AnyRequest) -> str:
    """Per-client-IP limit on endpoints that create keys without authentication."""
    access = access_of(request)
    settings = access.settings
    return await _limit_per_ip(request, access, "signup", settings.signup_per_minute,
                               settings.signup_per_day, "sign-ups")


async def _limit_per_ip(request: AnyRequest, access: Access, limit: str, per_minute: int,
                        per_day: int, what: str) -> str:
    """Count one ``limit`` attempt against the client's IP; RATE_LIMITED past it."""
    ip = client_ip(request, access.settings.trusted_proxies)
    state = await access.limiter.check(limit, ip, per_minute, per_day)
    remember(request, state)
    if not state.allowed:
        rate_limited(limit)
        raise RateLimited(
            f"Too many {what} from this address; retry in {state.retry_after} s.",
            headers={"Retry-After": str(state.retry_after)},
        )
    return ip


# --- route hooks -------------------------------------------------------------------------------

Hook = Callable[[AnyRequest], Awaitable[None]]
Check = Callable[[AnyRequest], Awaitable[Principal | None]]

_PRINCIPAL = "principal"


def _hook(access: str, check: Check | None) -> Hook:
    async def before_request(request: AnyRequest) -> None:
        await check_input(request)
        if check is not None:
            principal = await check(request)
            _state(request)[_PRINCIPAL] = principal
            if principal is not None:
                log_context.bind(key_id=principal.key_id)

    setattr(before_request, ACCESS_ATTR, access)
    return before_request


def _state(request: AnyRequest) -> dict[str, Any]:
    return scope_state(request.scope)


def key_holder(scope: str | None = None) -> Hook:
    """An agent, gateway, personal or pass key, with ``scope`` when given."""
    async def check(request: AnyRequest) -> Principal:
        return await authenticate_key_holder(request, scope)

    return _hook("key holder", check)


def optional_key_holder(scope: str | None = None) -> Hook:
    """A key holder when a key is presented, or a wallet signed in with ``SIGN-IN-WITH-X``
    that owns something usable here; anonymous (``principal_of`` is None) otherwise, so a
    paid route answers its 402."""
    async def check(request: AnyRequest) -> Principal | None:
        if presented_key(request) is None:
            access = access_of(request)
            wallet = await _wallet_principal(request, access, scope)
            if wallet is None:
                return None
            return await _admit_key_holder(request, access, wallet, scope)
        return await authenticate_key_holder(request, scope)

    return _hook("optional key holder", check)


def key_holder_or_signup(scope: str | None = None) -> Hook:
    """Open to anyone: a presented key is checked (with ``scope``); otherwise the caller is
    anonymous and held to the per-IP sign-up limit."""
    async def check(request: AnyRequest) -> Principal | None:
        if presented_key(request) is None:
            await limit_signups(request)
            return None
        return await authenticate_key_holder(request, scope)

    return _hook("key holder or signup", check)


async def _signup(request: AnyRequest) -> None:
    await limit_signups(request)


async def _metrics_reader(request: AnyRequest) -> None:
    """``PASSGATE_METRICS_TOKEN``, when set, as ``Authorization: Bearer``; else open."""
    token = access_of(request).settings.metrics_token
    if token is None:
        return
    scheme, _, value = (raw_header(request, b"authorization") or "").partition(" ")
    presented = value.strip().encode() if scheme.lower() == "bearer" else b""
    if not hmac.compare_digest(presented, token.get_secret_value().encode()):
        raise Unauthorized("Metrics take Authorization: Bearer <PASSGATE_METRICS_TOKEN>.")


OPEN = _hook("open", None)
METRICS = _hook("metrics", _metrics_reader)
SIGNUP = _hook("signup", _signup)
MASTER = _hook("master", authenticate_master)
ADMIN = _hook("admin", authenticate_admin)


def principal_of(request: AnyRequest) -> Principal:
    """The caller a route's hook authenticated."""
    principal = _state(request).get(_PRINCIPAL)
    if not isinstance(principal, Principal):
        # Only a route declared with an anonymous-capable hook can get here without one.
        raise Unauthorized("Missing API key.")
    return principal


def optional_principal_of(request: AnyRequest) -> Principal | None:
    principal = _state(request).get(_PRINCIPAL)
    return principal if isinstance(principal, Principal) else None


def check_route_access(app: Litestar) -> None:
    """Refuse to serve a route without an access hook, or an ``/admin`` route without
    ``ADMIN``: a handler-level hook replaces its router's, so a slip would open the route."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            hook = handler.resolve_before_request()
            access = getattr(hook, ACCESS_ATTR, None)
            if access is None:
                raise ImproperlyConfiguredException(
                    f"route {route.path} has no access hook (app.auth.guards)"
                )
            if (route.path == "/admin" or route.path.startswith("/admin/")) and hook is not ADMIN:
                raise ImproperlyConfiguredException(
                    f"admin route {route.path} must use the ADMIN access hook"
                )
