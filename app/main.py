"""The app factory: routes, dependencies, middleware, error mapping. Nothing runs at import."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from app import deps
from app.agents.admin_routes import router as admin_agents_router
from app.agents.routes import key_routes as agent_key_routes
from app.agents.routes import router as agents_router
from app.attention.admin_routes import router as attention_router
from app.audit.admin_routes import router as admin_audit_router
from app.auth import access
from app.auth.guards import OPEN, check_route_access
from app.catalog.routes import router as catalog_router
from app.config.deployment import require_deployable
from app.credits.admin_routes import router as admin_credits_router
from app.credits.routes import router as credits_router
from app.deps import dependencies
from app.gateway.admin_routes import admin_router as admin_gateway_router
from app.gateway.routes import router as gateway_router
from app.health.routes import health, live, metrics
from app.http.dependency_errors import dependency_error_handlers
from app.http.error_responses import exception_handlers
from app.http.openapi import document_routes
from app.http.request_id import add_response_headers
from app.keys.admin_routes import router as admin_keys_router
from app.keys.routes import router as keys_router
from app.logs.configure import litestar_logging
from app.metrics.request_observer import observe_requests
from app.passes.routes import claims_router as payments_router
from app.passes.routes import router as passes_router
from app.payments.admin_routes import router as admin_payments_router
from app.platforms.admin_routes import router as admin_platforms_router
from app.platforms.routes import router as platforms_router
from app.recursion import settle_recursion_limit
from app.runtime import Runtime
from app.settings import Settings, get_settings
from app.signer.admin_routes import router as admin_settlements_router
from app.siwx.routes import router as siwx_router
from app.transfers.admin_routes import router as chain_admin_router
from app.wallets.routes import router as wallets_router
from app.webhooks.admin_routes import router as admin_webhooks_router
from app.webhooks.routes import router as platform_webhooks_router


def app_version() -> str:
    try:
        return version("passgate")
    except PackageNotFoundError:
        return "0.0.0"


Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    lifespan: Sequence[Lifespan] = (),
) -> Litestar:
    """Build the API. Tests pass their own ``Settings``; ``runtime`` lets them share one.

    ``lifespan`` adds what runs beside the API for as long as it serves: ``passgate serve``
    and the demo pass the in-process background this way (``workers.onebox``), so the API
    itself never imports worker code. Refuses production settings that ``passgate serve``
    would refuse, also when a server is pointed at this factory directly.
    """
    settle_recursion_limit()
    settings = require_deployable(settings or get_settings())
    rt = runtime or Runtime.build(settings)

    @asynccontextmanager
    async def runtime_lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        rt.start()
        try:
            yield
        finally:
            if runtime is None:
                await rt.close()

    handlers = exception_handlers()
    handlers.update(dependency_error_handlers())
    app = Litestar(
        route_handlers=[
            health, live, metrics, catalog_router, agents_router,
            keys_router(*agent_key_routes), credits_router, platforms_router,
            admin_platforms_router, admin_agents_router, admin_keys_router, admin_credits_router,
            admin_audit_router,
            wallets_router,
            platform_webhooks_router, admin_webhooks_router, passes_router, payments_router,
            admin_payments_router,
            chain_admin_router, admin_settlements_router, gateway_router, siwx_router,
            admin_gateway_router, attention_router,
        ],
        # Handlers receive what they use (app.deps); access hooks read their own object.
        dependencies=dependencies(),
        state=State({deps.STATE_KEY: rt, access.STATE_KEY: rt.access}),
        exception_handlers=handlers,
        before_send=[add_response_headers],
        # Routes without a stated access are open; every hook runs the input check first.
        before_request=OPEN,
        lifespan=[runtime_lifespan, *lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="passgate",
            version=app_version(),
            path="/schema",
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(
                        type="apiKey", name="X-API-Key", security_scheme_in="header"
                    ),
                    # x402 sign-in-with-x: a wallet's proof in place of a key (app.siwx).
                    "signInWithX": SecurityScheme(
                        type="apiKey", name="SIGN-IN-WITH-X", security_scheme_in="header",
                        description="base64 JSON of a signed x402 sign-in-with-x challenge "
                        "(GET /v1/siwx/challenge, or a gateway 402)",
                    ),
                    "masterKey": SecurityScheme(
                        type="apiKey", name="X-Master-Key", security_scheme_in="header"
                    ),
                    "adminToken": SecurityScheme(type="http", scheme="bearer"),
                }
            ),
        ),
        # passgate's loggers at the configured level, libraries at WARNING; text or JSON lines.
        logging_config=litestar_logging(settings),
        debug=False,
    )
    check_route_access(app)
    document_routes(app)
    observe_requests(app)
    return app
