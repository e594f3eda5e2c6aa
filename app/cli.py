"""The API side of the ``passgate`` command line: migrations, settings, the dev chain, operator
and key-holder tools. ``workers.cli`` adds the commands that start processes (``serve``,
``worker``, ``scheduler``, ``demo``) and is the entry point."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import click
import httpx
from pydantic import ValidationError

from app.config.cli import config
from app.config.deployment import require_deployable
from app.config.problems import SettingsError
from app.logs.configure import configure_logging
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
def commands() -> None:
    """passgate: sell API access to AI agents for USDC on Base."""
    settle_recursion_limit()
    try:
        settings = get_settings()
    except (ValidationError, ValueError, OSError):
        return  # the command itself reports the bad setting
    # Every command logs alike (PASSGATE_LOG_FORMAT); `serve` hands the same to uvicorn.
    configure_logging(settings)


commands.add_command(config)


def deployable() -> Settings:
    """The settings of a command that serves or works: production checks included."""
    return require_deployable(get_settings())


@commands.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    from app.db import migrate as db_migrate

    db_migrate.upgrade(get_settings())
    click.echo("database is up to date")


@commands.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Bind address (0.0.0.0 in a container other services reach).")
@click.option("--port", default=8545, show_default=True)
@click.option("--block-time", default=1.0, show_default=True, help="Seconds; 0 = automine.")
def devchain(host: str, port: int, block_time: float) -> None:
    """Start a local Base-like chain (anvil) with the test USDC at the canonical address."""
    from chain.devchain_run import run_devchain

    run_devchain(port=port, block_time=block_time, host=host)


# -- operator ----------------------------------------------------------------------------


@commands.group()
def admin() -> None:
    """Operator tools that act on the database directly."""


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@admin.command("create-platform")
@click.argument("name")
def create_platform(name: str) -> None:
    """Create a platform and print its first master key (shown once)."""
    from app.operator import create_platform as op

    platform_id, key_id, secret = _run(op(deployable(), name))
    click.echo(f"platform  {platform_id}\nkey id    {key_id}\nmaster key (shown once): {secret}")


@admin.command("token")
@click.option("--label", default="cli", show_default=True)
def admin_token(label: str) -> None:
    """Create an admin token and print it (shown once)."""
    from app.operator import create_admin_token

    key_id, secret = _run(create_admin_token(deployable(), label))
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


@commands.group()
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
