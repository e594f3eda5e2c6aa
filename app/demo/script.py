"""``passgate demo``: the product end to end on embedded defaults, one readable step at a time.

Each step is a small function over the HTTP API; later features add their steps to ``STEPS``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx

from app.db import migrate
from app.demo.server import embedded_service, free_port
from app.settings import Settings

DEMO_PER_MINUTE = 5


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


def step_health(s: DemoState) -> None:
    show("Health")
    body = expect(s.http.get("/v1/health"), 200)
    say(f"database {body['database']['status']}, broker {body['broker']['status']}")


def step_register(s: DemoState) -> None:
    show("An agent registers itself")
    body = expect(s.http.post("/v1/agents/register", json={"name": "demo-agent"}), 201)
    s.values["agent_key"] = body["apiKey"]
    s.values["agent_id"] = body["agentId"]
    say(f"agent {body['agentId']} got key {mask(body['apiKey'])} (shown once) and claim code")


def step_extra_key(s: DemoState) -> None:
    show("It creates a labelled personal key")
    body = expect(
        s.http.post("/v1/api-keys", json={"label": "ci-runner"},
                    headers={"X-API-Key": s.values["agent_key"]}),
        201,
    )
    s.values["extra_key"] = body["key"]
    s.values["extra_id"] = body["id"]
    say(f"key {body['id']} '{body['label']}' = {mask(body['key'])} scopes {body['scopes']}")


def step_list_keys(s: DemoState) -> None:
    show("It lists its keys (never the secrets)")
    body = expect(s.http.get("/v1/api-keys", headers={"X-API-Key": s.values["agent_key"]}), 200)
    for key in body["data"]:
        say(f"{key['id']}  {key['type']:<8} {key['hint']}  {key['label']}")


def step_rate_limit(s: DemoState) -> None:
    show(f"Rate limit: the demo plan allows {DEMO_PER_MINUTE} requests a minute per key")
    headers = {"X-API-Key": s.values["extra_key"]}
    for _ in range(DEMO_PER_MINUTE * 2):
        response = s.http.get("/v1/api-keys/info", headers=headers)
        if response.status_code == 429:
            body = expect(response, 429)
            retry = response.headers["Retry-After"]
            say(f"{body['code']}: {body['error']} (Retry-After {retry} s)")
            return
        say(f"200, X-RateLimit-Remaining {response.headers.get('X-RateLimit-Remaining')}")
    raise DemoFailed("no 429 was returned")


def step_revoke(s: DemoState) -> None:
    show("It revokes the personal key; the key stops working")
    expect(
        s.http.delete(f"/v1/api-keys/{s.values['extra_id']}",
                      headers={"X-API-Key": s.values["agent_key"]}),
        200,
    )
    body = expect(s.http.get("/v1/balance", headers={"X-API-Key": s.values["extra_key"]}), 401)
    say(f"{body['code']}: {body['error']}")


def step_audit(s: DemoState) -> None:
    show("The operator creates a platform, which claims nothing yet; the audit log shows it")
    admin = {"Authorization": f"Bearer {s.admin_token}"}
    body = expect(s.http.post("/admin/v1/platforms", json={"name": "Acme"}, headers=admin), 201)
    say(f"platform {body['platform']['id']} with master key {mask(body['masterKey'])}")
    log = expect(s.http.get("/admin/v1/audit-log", headers=admin), 200)
    for entry in log["data"][:3]:
        say(f"{entry['createdAt']} {entry['actorType']} {entry['action']} {entry['targetId']}")


STEPS: list[Callable[[DemoState], None]] = [
    step_health, step_register, step_extra_key, step_list_keys, step_rate_limit, step_revoke,
    step_audit,
]


def demo_settings(workdir: Path) -> Settings:
    return Settings(
        environment="development",
        database_url=f"sqlite+aiosqlite:///{workdir / 'passgate.db'}",
        redis_url="",
        port=free_port(),
        admin_token="adm-demo-" + uuid.uuid4().hex,
        plan_free_per_minute=DEMO_PER_MINUTE,
        log_level="WARNING",
    )


def run_demo(keep: bool = False) -> int:
    for noisy in ("httpx", "dramatiq", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="passgate-demo-"))
    settings = demo_settings(workdir)
    click.secho("passgate demo — embedded mode: SQLite file, in-process worker, no servers",
                bold=True)
    say(f"database {workdir / 'passgate.db'}")
    try:
        migrate.upgrade(settings)
        with embedded_service(settings) as base_url:
            say(f"API at {base_url}")
            token = settings.admin_token.get_secret_value() if settings.admin_token else ""
            with httpx.Client(base_url=base_url, timeout=30) as http:
                state = DemoState(http=http, admin_token=token)
                for step in STEPS:
                    step(state)
    except DemoFailed as exc:
        click.secho(f"\ndemo failed: {exc}", fg="red", err=True)
        return 1
    finally:
        if keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    click.secho("\ndemo finished: every step behaved as expected", fg="green", bold=True)
    return 0


__all__ = ["STEPS", "DemoState", "json", "run_demo"]
