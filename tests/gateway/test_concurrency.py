"""1,000 concurrent calls through three API processes against one key: never overdrawn."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import col, func, select

from app.db.models.credits import LedgerEntry
from app.settings import Settings
from tests.gateway.helpers import (
    PRICE,
    balance,
    database,
    free_port,
    process_env,
    signup,
    start_uvicorn,
    stop,
    usage,
    wait_until_up,
)

PROCESSES = 3
CALLS = 1_000
CREDITS = 1_000_000  # 1 USD: exactly 100 calls at 0.01


@pytest.fixture
def api_processes(
    settings_factory: Callable[..., Settings], providers: list[dict[str, Any]]
) -> Iterator[tuple[Settings, list[str]]]:
    """Three ``uvicorn app.main:create_app`` processes on one PostgreSQL database and Redis."""
    settings = settings_factory()
    if settings.is_sqlite:
        pytest.skip(
            "multi-process: SQLite is a single local file with one writer; passgate "
            "scales out on PostgreSQL, so that is what this test exercises"
        )
    env = process_env(settings, providers, CREDITS)
    ports = [free_port() for _ in range(PROCESSES)]
    procs = [start_uvicorn("app.main:create_app", port, env, factory=True) for port in ports]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_until_up(f"http://127.0.0.1:{port}/v1/health/live", proc)
        yield settings, [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for proc in procs:
            stop(proc)


@pytest.mark.slow
async def test_a_thousand_concurrent_calls_spend_exactly_the_balance(
    api_processes: tuple[Settings, list[str]],
) -> None:
    settings, bases = api_processes
    # Given one key with 1 USD, and a provider at 0.01 USD a call
    async with httpx.AsyncClient(base_url=bases[0], timeout=30) as http:
        key = await signup(http)

    # When 1,000 calls are made at once, spread over the three processes (one connection each:
    # a reused keep-alive connection could meet the server's idle timeout, a client-side race)
    limits = httpx.Limits(max_connections=CALLS, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        async def one(index: int) -> tuple[int, str | None]:
            response = await http.get(
                f"{bases[index % PROCESSES]}/v1/gateway/echo/echo", headers={"X-API-Key": key}
            )
            code = response.json().get("code") if response.status_code != 200 else None
            return response.status_code, code

        started = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in range(CALLS)))
        elapsed = time.monotonic() - started

    # Then exactly 100 succeed, 900 are INSUFFICIENT_CREDITS, and the balance is exactly 0
    assert Counter(results) == {(200, None): 100, (402, "INSUFFICIENT_CREDITS"): 900}, elapsed
    async with httpx.AsyncClient(base_url=bases[1], timeout=30) as http:
        now = await balance(http, key)
        assert now["creditsMicros"] == 0
        assert now["spentMicros"] == CREDITS
        records = await finished_usage(http, key)

    # And the books agree: 100 usage rows kept, 100 charges of 0.01, nothing refunded
    assert Counter(r["status"] for r in records) == {"succeeded": 100}
    agent_id = records[0]["agentId"]
    async with database(settings) as sessions, sessions() as session:
        entries = (
            await session.exec(
                select(LedgerEntry.kind, func.count(), func.sum(LedgerEntry.amount_micros))
                .where(col(LedgerEntry.agent_id) == agent_id)
                .group_by(LedgerEntry.kind)
            )
        ).all()
    assert sorted(entries) == [("charge", 100, -100 * PRICE), ("grant", 1, CREDITS)]


async def finished_usage(http: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
    """The key's usage once no call is pending (2xx outcomes are recorded in the background)."""
    deadline = time.monotonic() + 10
    while True:
        records: list[dict[str, Any]] = (await usage(http, key, limit=500))["data"]
        if all(r["status"] != "pending" for r in records) or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.1)
