"""What handlers receive: Litestar dependency providers over the process's long-lived objects.

The app factory builds one :class:`~app.runtime.Runtime` per app and keeps it in the app's
state; this module (with ``app.main``) is the only code that reaches into it. A handler declares
what it uses by parameter name and type: ``session`` (the request's unit of work), ``settings``,
``sessions`` (for a flow that needs several transactions), ``principal`` (the caller its access
hook authenticated), ``actor`` (who an audited mutation is by), ``payments``, ``gateway``,
``authenticator``, ``webhook_options`` and so on.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.audit.service import Actor
from app.auth.guards import optional_principal_of, principal_of
from app.auth.principal import Principal
from app.auth.service import Authenticator
from app.catalog.discovery import Discovery
from app.db.uow import UnitOfWork
from app.gateway.service import Gateway
from app.health.metrics_state import StateReader
from app.health.service import HealthProbe
from app.http.request_id import request_id_of
from app.payments.service import Payments
from app.runtime import Runtime
from app.settings import Settings
from app.webhooks.options import WebhookOptions

STATE_KEY = "runtime"


def runtime(state: State) -> Runtime:
    found: Runtime = state[STATE_KEY]
    return found


async def provide_session(state: State) -> AsyncGenerator[UnitOfWork, None]:
    """The request's unit of work: committed (with what was queued on it) when the handler
    succeeds, rolled back otherwise."""
    async with runtime(state).sessions() as session:
        try:
            yield session
        except Exception:
            await session.rollback()
            raise
        await session.commit()


def _settings(state: State) -> Settings:
    return runtime(state).settings


def _sessions(state: State) -> async_sessionmaker[UnitOfWork]:
    return runtime(state).sessions


def _payments(state: State) -> Payments:
    return runtime(state).payments


def _gateway(state: State) -> Gateway:
    return runtime(state).gateway


def _discovery(state: State) -> Discovery:
    return runtime(state).discovery


def _authenticator(state: State) -> Authenticator:
    return runtime(state).auth


def _state_reader(state: State) -> StateReader:
    return runtime(state).state


def _health(state: State) -> HealthProbe:
    return runtime(state).health


def _webhook_options(state: State) -> WebhookOptions:
    return runtime(state).webhook_options


def _principal(request: Request[Any, Any, Any]) -> Principal:
    return principal_of(request)


def _actor(request: Request[Any, Any, Any]) -> Actor:
    """Who an audited admin or platform mutation is by."""
    return Actor.of(principal_of(request), request_id_of(request))


def _optional_principal(request: Request[Any, Any, Any]) -> Principal | None:
    return optional_principal_of(request)


def _sync(provider: Callable[..., Any]) -> Provide:
    return Provide(provider, sync_to_thread=False)


def dependencies() -> dict[str, Provide]:
    return {
        "session": Provide(provide_session),
        "settings": _sync(_settings),
        "sessions": _sync(_sessions),
        "payments": _sync(_payments),
        "gateway": _sync(_gateway),
        "discovery": _sync(_discovery),
        "authenticator": _sync(_authenticator),
        "state_reader": _sync(_state_reader),
        "health_probe": _sync(_health),
        "webhook_options": _sync(_webhook_options),
        "principal": _sync(_principal),
        "actor": _sync(_actor),
        "caller": _sync(_optional_principal),
    }
