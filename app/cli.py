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

from app.logs.config import configure_logging, logging_config
from app.settings import get_settings


@click.group()
def main() -> None:
    """passgate: sell API access to AI agents for USDC on Base."""
    try:
        settings = get_settings()
    except (ValidationError, ValueError, OSError):
        return  # the command itself reports the bad setting
    # Every command logs alike (PASSGATE_LOG_FORMAT); `serve` hands the same to uvicorn.
    configure_logging(settings)


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    from app.db import migrate as db_migrate

    db_migrate.upgrade(get_settings())
    click.echo("database is up to date")


@main.command()
@click.option("--host", default=None, help="Bind address (default PASSGATE_HOST).")
@click.option("--port", default=None, type=int, help="Port (default PASSGATE_PORT).")
@click.option("--workers", default=1, show_default=True, help="Server processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Run the HTTP API."""
    import uvicorn

    settings = get_settings()
    if workers > 1:
        from app.metrics.exposition import use_multiprocess_dir

        # Before the server processes start: /metrics then adds up all of them.
        use_multiprocess_dir()
    uvicorn.run(
        "app.main:create_app", factory=True, host=host or settings.host,
        port=port or settings.port, workers=workers, log_level=settings.log_level.lower(),
        # passgate.access logs each request instead (route template, ids, no raw path).
        log_config=logging_config(settings), access_log=False, proxy_headers=False,
    )


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
    stop = _stop_on_signal()
    from workers.runner import run_worker

    run_worker(get_settings(), threads=threads, until=_waiter(stop))


@main.command()
def scheduler() -> None:
    """Run the single scheduler process that triggers periodic jobs."""
    stop = _stop_on_signal()
    from workers.scheduler import run_scheduler

    run_scheduler(get_settings(), until=_waiter(stop))


@main.command()
@click.option("--port", default=8545, show_default=True)
@click.option("--block-time", default=1.0, show_default=True, help="Seconds; 0 = automine.")
def devchain(port: int, block_time: float) -> None:
    """Start a local Base-like chain (anvil) with the test USDC at the canonical address."""
    from chain.devchain import run_devchain

    run_devchain(port=port, block_time=block_time)


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

    platform_id, key_id, secret = _run(op(get_settings(), name))
    click.echo(f"platform  {platform_id}\nkey id    {key_id}\nmaster key (shown once): {secret}")


@admin.command("token")
@click.option("--label", default="cli", show_default=True)
def admin_token(label: str) -> None:
    """Create an admin token and print it (shown once)."""
    from app.operator import create_admin_token

    key_id, secret = _run(create_admin_token(get_settings(), label))
    click.echo(f"token id  {key_id}\nadmin token (shown once): {secret}")


# -- key holder --------------------------------------------------------------------------


def _client() -> httpx.Client:
    key = os.environ.get("PASSGATE_API_KEY")
    if not key:
        raise click.ClickException("Set PASSGATE_API_KEY to your passgate key.")
    base = os.environ.get("PASSGATE_URL", get_settings().public_url)
    return httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=15)


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        with _client() as client:
            response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach passgate: {exc}") from None
    if response.status_code == 401:
        message = response.json().get("error", "unauthorized")
        raise click.ClickException(f"passgate refused the key (401): {message}")
    if response.status_code >= 400:
        try:
            payload = response.json()
            message = f"{payload.get('code')}: {payload.get('error')}"
        except ValueError:
            message = response.text[:200]
        raise click.ClickException(f"{response.status_code} {message}")
    return response.json()


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
