"""What async actors share within a worker process: settings, database sessions, job sending.

Async actors run on the AsyncIO middleware's event-loop thread. Database engines and HTTP
clients belong to the loop that made them, so a :class:`WorkerContext` is built lazily per loop
and closed by :class:`WorkerResources` when the worker shuts down (a test process may start and
stop several workers, each with a loop of its own).

Settings come from the environment (``get_settings()``) unless a test or benchmark calls
:func:`configure` before starting its worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.auth.broadcast import KeyChangeBroadcast
from app.db.engine import create_engine, session_factory
from app.db.uow import UnitOfWork
from app.jobs import JobQueue
from app.settings import Settings, get_settings
from app.webhooks.tasks import WebhookOutbox

log = logging.getLogger("passgate.worker")

T = TypeVar("T")

_lock = threading.Lock()
_settings_override: Settings | None = None
_contexts: dict[asyncio.AbstractEventLoop, WorkerContext] = {}


def configure(settings: Settings | None) -> None:
    """Use ``settings`` for contexts built from now on (``None``: back to the environment)."""
    global _settings_override
    with _lock:
        _settings_override = settings


def current_settings() -> Settings:
    with _lock:
        return _settings_override or get_settings()


@dataclass
class WorkerContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[UnitOfWork]
    outbox: WebhookOutbox
    _resources: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def resource(
        self, name: str, build: Callable[[], T], close: Callable[[T], Awaitable[None]] | None = None
    ) -> T:
        """A per-loop object built on first use (an HTTP client, a policy...)."""
        if name not in self._resources:
            value = build()
            self._resources[name] = value
            if close is not None:
                self._closers.append(lambda: close(value))
        result: T = self._resources[name]
        return result

    async def aclose(self) -> None:
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:  # closing is best effort; the process is going away
                log.warning("closing a worker resource failed", exc_info=True)
        await self.engine.dispose()


def _build(settings: Settings) -> WorkerContext:
    engine = create_engine(settings)
    # Jobs go to the broker the actors are bound to (the global one in a worker process).
    outbox = WebhookOutbox(JobQueue(dramatiq.get_broker))
    # A key a worker changes (a reorg revoking a pass) is announced to the API processes.
    key_changes = (None if settings.embedded else
                   KeyChangeBroadcast(settings.redis_url, settings.redis_prefix))
    sessions = session_factory(engine, jobs=outbox.jobs, events=outbox, key_changes=key_changes)
    context = WorkerContext(settings=settings, engine=engine, sessions=sessions, outbox=outbox)
    if key_changes is not None:
        context._closers.append(key_changes.close)
    return context


def current() -> WorkerContext:
    """The context of the running event loop (call from inside an async actor)."""
    loop = asyncio.get_running_loop()
    with _lock:
        context = _contexts.get(loop)
        if context is None:
            context = _build(_settings_override or get_settings())
            _contexts[loop] = context
        return context


async def close_current() -> None:
    """Close and forget the running loop's context."""
    loop = asyncio.get_running_loop()
    with _lock:
        context = _contexts.pop(loop, None)
    if context is not None:
        await context.aclose()


class FastEventLoop(Middleware):
    """Runs the async actors on uvloop when it is installed (it ships with uvicorn[standard]).

    Must come before the AsyncIO middleware, which creates the loop in ``before_worker_boot``.
    """

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - optional speed-up
            return
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


class WorkerResources(Middleware):
    """Closes the worker loop's context (engine, HTTP clients) before the loop stops."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = get_event_loop_thread()
        if thread is None or not thread.loop.is_running():
            return
        try:
            thread.run_coroutine(close_current())
        except Exception:
            log.warning("closing the worker context failed", exc_info=True)
