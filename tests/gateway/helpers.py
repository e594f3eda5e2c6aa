"""Helpers for gateway tests: processes on 127.0.0.1, sign-up, balance, usage, events."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db.engine import create_engine, session_factory
from app.db.models.events import Event
from app.settings import Settings
from tests.factories import key_headers
from tests.fixtures.live import settings_env

ROOT = Path(__file__).resolve().parents[2]
# Importing the app (web3, x402) takes seconds, more with several processes on few cores.
START_TIMEOUT = 90.0

# What the upstream must see in place of the caller's credentials, and never anything else.
UPSTREAM_SECRET = "sk-upstream-" + uuid.uuid4().hex
PRICE = 10_000  # 0.01 USD


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {START_TIMEOUT} s")


def start_uvicorn(
    target: str, port: int, env: dict[str, str] | None = None, factory: bool = False
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if factory:
        command.append("--factory")
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})})


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def provider_config(upstream: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "echo",
        "base_url": upstream,
        "price_micros": PRICE,
        "description": "test upstream",
        "headers": {"Authorization": f"Bearer {UPSTREAM_SECRET}", "X-Upstream-Key": "k-123"},
        "route_prices": {"/echo/premium": 50_000},
        "model_prices": {"big-model": 100_000},
        # Generous: a loaded CI machine can take a second to answer; the timeout test sets its own.
        "timeout_seconds": 10.0,
    }
    config.update(overrides)
    return config


# -- helpers ------------------------------------------------------------------------------


async def signup(client: httpx.AsyncClient) -> str:
    """A gateway key (``gw_``) with the starter credits of the app's settings."""
    response = await client.post("/v1/keys", json={"email": f"{uuid.uuid4().hex}@example.com"})
    assert response.status_code == 201, response.text
    key: str = response.json()["api_key"]
    return key


async def balance(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    response = await client.get("/v1/balance", headers=key_headers(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def settled(client: httpx.AsyncClient, key: str, within: float = 15.0) -> dict[str, Any]:
    """The balance once no credit lease holds any of it (its leases expired and closed)."""
    deadline = time.monotonic() + within
    while True:
        now = await balance(client, key)
        if now["heldMicros"] == 0 or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.05)


def process_env(settings: Settings, providers: list[dict[str, Any]], credits: int,
                **extra: str) -> dict[str, str]:
    """What an API process started by a test reads: the session's stores, the test providers,
    ``credits`` for each sign-up, and a key rate far above any test's burst."""
    return {
        **settings_env(settings),
        "PASSGATE_PROVIDERS": json.dumps(providers),
        "PASSGATE_STARTER_CREDITS_MICROS": str(credits),
        # Far above the burst, so leased rate-limit tokens never run short.
        "PASSGATE_PLAN_FREE_PER_MINUTE": "100000000",
        # The PostgreSQL server is shared: 3 x (8 + 4) connections at most.
        "PASSGATE_DATABASE_POOL_SIZE": "8",
        "PASSGATE_DATABASE_MAX_OVERFLOW": "4",
        **extra,
    }


async def usage(client: httpx.AsyncClient, key: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/usage", headers=key_headers(key), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def settled_usage(client: httpx.AsyncClient, key: str, usage_id: str) -> dict[str, Any]:
    """The usage record once it left ``pending`` (a 2xx is finalised in the background)."""
    deadline = time.monotonic() + 5
    while True:
        records: list[dict[str, Any]] = (await usage(client, key, limit=500))["data"]
        found = [r for r in records if r["id"] == usage_id]
        if found and found[0]["status"] != "pending":
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"usage {usage_id} still pending: {found}")
        await asyncio.sleep(0.05)


async def upstream_hits(upstream: str, path: str) -> int:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{upstream}/__hits", params={"path": path})
        hits: int = response.json()["hits"]
        return hits


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions of the test's own (the app's run on the test client's loop, not this one)."""
    engine = create_engine(settings)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def events_of(settings: Settings, agent_id: str, event_type: str) -> list[Event]:
    async with database(settings) as sessions, sessions() as session:
        stmt = select(Event).where(col(Event.agent_id) == agent_id, col(Event.type) == event_type)
        return list((await session.exec(stmt)).all())
