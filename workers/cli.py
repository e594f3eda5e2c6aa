"""The ``passgate`` command: the API side's commands (``app.cli``) and the ones that start
processes: ``serve`` (the API, and on one box the whole background), ``worker``, ``scheduler``
and ``demo``. Processes live here because they run workers, and ``app`` never imports
``workers``."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import click

from app.cli import commands, deployable
from app.logs.configure import logging_config

main = commands


@main.command()
@click.option("--host", default=None, help="Bind address (default PASSGATE_HOST).")
@click.option("--port", default=None, type=int, help="Port (default PASSGATE_PORT).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Server processes (more than one needs PASSGATE_REDIS_URL).")
@click.option("--background/--no-background", default=None,
              help="Run the whole background (watcher, signer, webhooks, periodic jobs) in "
                   "this process. Default: on without PASSGATE_REDIS_URL, off with it.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(min=1),
              help="Background worker threads (with the background on).")
def serve(host: str | None, port: int | None, workers: int, background: bool | None,
          threads: int) -> None:
    """Run the HTTP API; without Redis, with the whole background beside it (one box)."""
    import uvicorn

    from workers.onebox import BackgroundRefused, build_app, check_layout
    from workers.startup import serve_line

    settings = deployable()
    run_background = settings.embedded if background is None else background
    try:
        check_layout(settings, processes=workers, background=run_background)
        line = serve_line(settings, host=host or settings.host, port=port or settings.port,
                          processes=workers, background=run_background, threads=threads)
    except (BackgroundRefused, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(line, err=True)
    # One process with the background: the app object itself. Several API-only processes:
    # uvicorn imports the factory in each.
    target: Any = (build_app(settings, background=True, threads=threads) if run_background
                   else "app.main:create_app")
    if workers > 1:
        from app.metrics.exposition import use_multiprocess_dir

        # Before the server processes start: /metrics then adds up all of them.
        use_multiprocess_dir()
    uvicorn.run(
        target, factory=not run_background, host=host or settings.host,
        port=port or settings.port, workers=workers, log_level=settings.log_level.lower(),
        # passgate.access logs each request instead (route template, ids, no raw path).
        log_config=logging_config(settings), access_log=False, proxy_headers=False,
    )


def _announce(line: Callable[[], str]) -> None:
    """Print the process's start-up line; a setting it cannot describe is a one-line error."""
    try:
        text = line()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(text, err=True)


def _stop_on_signal() -> threading.Event:
    """Catch SIGINT/SIGTERM from the very start, so a stop during start-up (imports, broker
    connection) still ends in a clean shutdown rather than a kill."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _waiter(stop: threading.Event) -> Callable[[], None]:
    def wait() -> None:
        while not stop.wait(1.0):
            pass

    return wait


@main.command()
@click.option("--threads", default=4, show_default=True, help="Worker threads.")
def worker(threads: int) -> None:
    """Run the Dramatiq workers (chain watcher, settlement, webhooks)."""
    settings = deployable()
    stop = _stop_on_signal()
    from workers.runner import run_worker
    from workers.startup import worker_line

    _announce(lambda: worker_line(settings, threads=threads, schedule=settings.embedded))
    run_worker(settings, threads=threads, until=_waiter(stop))


@main.command()
def scheduler() -> None:
    """Run the single scheduler process that triggers periodic jobs."""
    settings = deployable()
    stop = _stop_on_signal()
    from workers.scheduler import run_scheduler
    from workers.startup import scheduler_line

    if settings.embedded:
        raise click.ClickException(
            "the scheduler sends jobs through Redis: set PASSGATE_REDIS_URL. Without Redis, "
            "`passgate serve` (or `passgate worker`) sends the periodic jobs itself.")
    _announce(lambda: scheduler_line(settings))
    run_scheduler(settings, until=_waiter(stop))


@main.command()
@click.option("--keep", is_flag=True, help="Keep the demo's temporary database.")
def demo(keep: bool) -> None:
    """Run passgate end to end on embedded defaults and show each step."""
    from workers.demo.script import run_demo

    sys.exit(run_demo(keep=keep))


if __name__ == "__main__":
    main()
