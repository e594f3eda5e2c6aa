"""``passgate`` command line: servers, workers, migrations, demo, operator and key-holder tools."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import click
import httpx
from pydantic import ValidationError

from app.config.cli import config
from app.config.deployment import require_deployable
from app.config.problems import SettingsError
from app.logs.config import configure_logging, logging_config
from app.recursion import settle_recursion_limit
from app.settings import Settings, get_settings

# A bad setting ends any command with one line per problem and this status, not a traceback.
SETTINGS_EXIT_CODE = 2


class _Commands(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            for line in exc.lines():
                click.echo(line, err=True)
            ctx.exit(SETTINGS_EXIT_CODE)


@click.group(cls=_Commands)
def main() -> None:
    """passgate: sell API access to AI agents for USDC on Base."""
    settle_recursion_limit()
    try:
        settings = get_settings()
    except (ValidationError, ValueError, OSError):
        return  # the command itself reports the bad setting
    # Every command logs alike (PASSGATE_LOG_FORMAT); `serve` hands the same to uvicorn.
    configure_logging(settings)


main.add_command(config)


def _deployable() -> Settings:
    """The settings of a command that serves or works: production checks included."""
    return require_deployable(get_settings())


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    from app.db import migrate as db_migrate

    db_migrate.upgrade(get_settings())
    click.echo("database is up to date")


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

    settings = _deployable()
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
    settings = _deployable()
    stop = _stop_on_signal()
    from workers.runner import run_worker
    from workers.startup import worker_line

    _announce(lambda: worker_line(settings, threads=threads, schedule=settings.embedded))
    run_worker(settings, threads=threads, until=_waiter(stop))


@main.command()
def scheduler() -> None:
    """Run the single scheduler process that triggers periodic jobs."""
    settings = _deployable()
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
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Bind address (0.0.0.0 in a container other services reach).")
@click.option("--port", default=8545, show_default=True)
@click.option("--block-time", default=1.0, show_default=True, help="Seconds; 0 = automine.")
def devchain(host: str, port: int, block_time: float) -> None:
    """Start a local Base-like chain (anvil) with the test USDC at the canonical address."""
    from chain.devchain import run_devchain

    run_devchain(port=port, block_time=block_time, host=host)


@main.command()
@click.option("--keep", is_flag=True, help="Keep the demo's temporary database.")
def demo(keep: bool) -> None:
    """Run passgate end to end on embedded defaults and show each step."""
    from app.demo.script import run_demo

    sys.exit(run_demo(keep=keep))


# -- operator ----------------------------------------------------------------------------


@main.group()
def admin() -> None:
    """Operator tools that act on the database directly."""


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@admin.command("create-platform")
@click.argument("name")
def create_platform(name: str) -> None:
    """Create a platform and print its first master key (shown once)."""
    from app.operator import create_platform as op

    platform_id, key_id, secret = _run(op(_deployable(), name))
    click.echo(f"platform  {platform_id}\nkey id    {key_id}\nmaster key (shown once): {secret}")


@admin.command("token")
@click.option("--label", default="cli", show_default=True)
def admin_token(label: str) -> None:
    """Create an admin token and print it (shown once)."""
    from app.operator import create_admin_token

    key_id, secret = _run(create_admin_token(_deployable(), label))
    click.echo(f"token id  {key_id}\nadmin token (shown once): {secret}")


# -- key holder --------------------------------------------------------------------------


def _client() -> httpx.Client:
    key = os.environ.get("PASSGATE_API_KEY")
    if not key:
        raise click.ClickException("Set PASSGATE_API_KEY to your passgate key.")
    base = os.environ.get("PASSGATE_URL", get_settings().public_url)
    return httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=15)


def _decoded(response: httpx.Response) -> Any:
    """The JSON answer; one line naming the problem when it is not JSON a client can read
    (nested too deeply for the decoder included)."""
    try:
        return response.json()
    except (ValueError, RecursionError):
        raise click.ClickException(
            f"passgate answered {response.status_code} with something that is not JSON"
        ) from None


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        with _client() as client:
            response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach passgate: {exc}") from None
    if response.status_code >= 400:
        try:
            payload = response.json()
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, dict):
            raise click.ClickException(f"{response.status_code} {response.text[:200]}")
        if response.status_code == 401:
            message = payload.get("error", "unauthorized")
            raise click.ClickException(f"passgate refused the key (401): {message}")
        raise click.ClickException(
            f"{response.status_code} {payload.get('code')}: {payload.get('error')}"
        )
    return _decoded(response)


@main.group()
def keys() -> None:
    """Manage your keys (reads PASSGATE_API_KEY and PASSGATE_URL)."""


@keys.command("list")
def keys_list() -> None:
    """List your keys (never their secrets)."""
    page = _call("GET", "/v1/api-keys")
    for key in page["data"]:
        click.echo(
            f"{key['id']}  {key['type']:<8} {key['status']:<8} {key['hint']:<12} "
            f"{key['label'] or '-'}  expires {key['expiresAt'] or 'never'}"
        )


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke one of your keys."""
    key = _call("DELETE", f"/v1/api-keys/{key_id}")
    click.echo(f"{key['id']} is {key['status']}")


@keys.command("regenerate")
@click.argument("key_id")
@click.option("--grace", default=0, show_default=True, help="Seconds the old secret still works.")
def keys_regenerate(key_id: str, grace: int) -> None:
    """Issue a new secret for a key (printed once)."""
    result = _call("POST", f"/v1/api-keys/{key_id}/regenerate", {"gracePeriodSeconds": grace})
    click.echo(json.dumps(result, indent=2))



if __name__ == "__main__":
    main()
