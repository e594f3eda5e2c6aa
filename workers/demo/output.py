"""What every demo step shares: its state, and how it shows what it does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click
import httpx

DEMO_PER_MINUTE = 5
# Which of anvil's dev accounts play the deposit address, the x402 payTo and the signer.
DEMO_DEPOSIT_ACCOUNT, DEMO_PAY_TO_ACCOUNT, DEMO_SIGNER_ACCOUNT = 7, 8, 9


@dataclass
class DemoState:
    http: httpx.Client
    admin_token: str
    values: dict[str, Any] = field(default_factory=dict)


class DemoFailed(Exception):
    pass


def show(title: str) -> None:
    click.secho(f"\n== {title}", fg="cyan", bold=True)


def say(text: str) -> None:
    click.echo(f"   {text}")


def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    request = response.request
    click.echo(f"   {request.method} {request.url.path} -> {response.status_code}")
    if response.status_code != status:
        raise DemoFailed(f"expected {status}, got {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def mask(secret: str) -> str:
    return f"{secret[:7]}…{secret[-4:]}"
