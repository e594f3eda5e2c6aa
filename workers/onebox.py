"""One process serving the API and, on the one box, the whole background beside it.

``passgate serve`` and the demo both build their app here. With the background on, the app's
lifespan starts a Dramatiq worker consuming every queue and sending the periodic jobs (the
scheduler's work) in this process, and stops it when the server stops: the watcher, the
signer, webhook delivery, expiry and every sweeper run exactly as ``passgate worker`` and
``passgate scheduler`` run them in production. Without Redis the broker is in-process, so jobs
the API queues reach this worker at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

import dramatiq
import uvicorn
from litestar import Litestar

from app.main import create_app
from app.settings import Settings
from workers.runner import start_worker

log = logging.getLogger("passgate.worker")

STOP_TIMEOUT_MS = 10_000
START_TIMEOUT = 30.0


class BackgroundRefused(ValueError):
    """A ``serve`` layout that would run the background more than once, or not reach it."""


def check_layout(settings: Settings, *, processes: int, background: bool) -> None:
    """Refuse layouts that could run the periodic jobs twice or split in-memory state."""
    if settings.embedded and processes > 1:
        raise BackgroundRefused(
            f"--workers {processes} needs PASSGATE_REDIS_URL: without Redis, rate limits and "
            "queued jobs live inside one process. Use --workers 1 (one box), or set "
            "PASSGATE_REDIS_URL and run `passgate worker` and one `passgate scheduler`."
        )
    if background and processes > 1:
        raise BackgroundRefused(
            f"--background with --workers {processes} would send every periodic job "
            f"{processes} times: use --workers 1, or run `passgate worker` and one "
            "`passgate scheduler` beside an API-only `passgate serve`."
        )


def background_lifespan(
    settings: Settings, threads: int
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The in-process background (worker + periodic jobs), for ``create_app(lifespan=...)``."""

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        # Starting imports the actors and spawns threads: off the server's event loop.
        worker: dramatiq.Worker = await asyncio.to_thread(
            start_worker, settings, threads, True
        )
        try:
            yield
        finally:
            await asyncio.to_thread(worker.stop, STOP_TIMEOUT_MS)

    return lifespan


def build_app(settings: Settings, *, background: bool, threads: int = 4) -> Litestar:
    lifespan = [background_lifespan(settings, threads)] if background else []
    return create_app(settings, lifespan=lifespan)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(
    settings: Settings, *, background: bool = True, threads: int = 2, log_level: str = "warning"
) -> Iterator[str]:
    """The same app as ``passgate serve`` on a uvicorn thread of this process (the demo, tests);
    yields its base URL and stops it (background included) within bounded time."""
    config = uvicorn.Config(
        build_app(settings, background=background, threads=threads), host="127.0.0.1",
        port=settings.port, log_level=log_level, lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="passgate-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the API did not start")
        time.sleep(0.05)  # uvicorn offers no start-up event to wait on
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT_MS / 1000 + 5)
