"""Credit leases across API processes on one PostgreSQL database: exact under concurrency
(balance and fleet limit), and a process killed while holding a lease loses at most what the
lease documents while the sweeper gives back the rest."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col, func, select

from app.db.models.agents import Agent
from app.db.models.credits import LedgerEntry
from app.db.models.gateway import CreditLease, SpendCounter
from app.db.types import utcnow
from app.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.factories import key_headers, unique
from tests.fixtures.workers import running_actors
from tests.gateway.helpers import (
    PRICE,
    balance,
    database,
    free_port,
    process_env,
    settled,
    signup,
    start_uvicorn,
    stop,
    usage,
    wait_until_up,
)
from workers.gateway import release_stale

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CREDITS = 1_000_000  # 1 USD: exactly 100 calls at 0.01

Processes = tuple[Settings, Callable[..., Any]]


@pytest.fixture
def api_processes(
    settings_factory: Callable[..., Settings], providers: list[dict[str, Any]]
) -> Iterator[Processes]:
    """Start ``uvicorn app.main:create_app`` processes paying from credit leases, on one
    PostgreSQL database and Redis."""
    settings = settings_factory()
    if settings.is_sqlite:
        pytest.skip("multi-process: passgate scales out on PostgreSQL (SQLite has one writer)")
    started: list[Any] = []

    @contextmanager
    def start(count: int, **env: str) -> Iterator[tuple[list[str], list[Any]]]:
        values = process_env(settings, providers, CREDITS, **{
            "PASSGATE_ADMIN_TOKEN": ADMIN_TOKEN, "PASSGATE_GATEWAY_CREDIT_LEASES": "true",
            "PASSGATE_GATEWAY_LEASE_SECONDS": "1", **env})
        ports = [free_port() for _ in range(count)]
        procs = [start_uvicorn("app.main:create_app", port, values, factory=True)
                 for port in ports]
        started.extend(procs)
        for port, proc in zip(ports, procs, strict=True):
            wait_until_up(f"http://127.0.0.1:{port}/v1/health/live", proc)
        yield [f"http://127.0.0.1:{port}" for port in ports], procs

    try:
        yield settings, start
    finally:
        for proc in started:
            if proc.poll() is None:
                stop(proc)


async def new_platform(http: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, str]]:
    """A new platform, and the headers of its master key."""
    created = await http.post("/admin/v1/platforms", json={"name": unique("fleet")},
                              headers=ADMIN)
    assert created.status_code == 201, created.text
    platform = created.json()
    return platform, {"X-Master-Key": platform["masterKey"]}


async def funded_agent(http: httpx.AsyncClient, master: dict[str, str]) -> dict[str, Any]:
    """A new agent of the platform, granted ``CREDITS``: its view and its ``apiKey``."""
    created = await http.post("/v1/platform/agents", json={"name": unique("a")}, headers=master)
    assert created.status_code == 201, created.text
    agent: dict[str, Any] = created.json()
    granted = await http.post("/admin/v1/credits/adjustments", headers=ADMIN, json={
        "agentId": agent["agent"]["id"], "amountMicros": CREDITS, "reason": "test credits"})
    assert granted.status_code == 201, granted.text
    return agent


async def many(bases: list[str], keys: list[str], calls: int) -> Counter[tuple[int, str | None]]:
    """``calls`` calls at once, spread over the processes and keys, one connection each."""
    limits = httpx.Limits(max_connections=calls, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        async def one(index: int) -> tuple[int, str | None]:
            response = await http.get(f"{bases[index % len(bases)]}/v1/gateway/echo/echo",
                                      headers=key_headers(keys[index % len(keys)]))
            code = response.json().get("code") if response.status_code != 200 else None
            return response.status_code, code

        return Counter(await asyncio.gather(*(one(i) for i in range(calls))))


@pytest.mark.slow
async def test_a_thousand_concurrent_calls_on_leases_spend_exactly_the_balance(
    api_processes: Processes,
) -> None:
    settings, start = api_processes
    with start(3) as (bases, _):
        # Given one key with 1 USD and a provider at 0.01 USD a call
        async with httpx.AsyncClient(base_url=bases[0], timeout=30) as http:
            key = await signup(http)

        # When 1,000 calls are made at once over three processes paying from leases
        results = await many(bases, [key], 1_000)

        # Then exactly 100 are served and 900 refused for credits
        assert results == {(200, None): 100, (402, "INSUFFICIENT_CREDITS"): 900}
        # And once the leases closed, everything is spent and nothing held
        async with httpx.AsyncClient(base_url=bases[1], timeout=30) as http:
            now = await settled(http, key)
            agent_id = (await usage(http, key))["data"][0]["agentId"]
    assert (now["creditsMicros"], now["heldMicros"], now["spentMicros"]) == (0, 0, CREDITS)
    async with database(settings) as sessions, sessions() as session:
        entries = dict((await session.exec(
            select(LedgerEntry.kind, func.sum(LedgerEntry.amount_micros))
            .where(col(LedgerEntry.agent_id) == agent_id).group_by(LedgerEntry.kind))).all())
        used = (await session.exec(select(func.sum(CreditLease.used_micros))
                                   .where(col(CreditLease.agent_id) == agent_id))).one()
    assert entries.pop("grant") == CREDITS
    assert sum(entries.values()) == -CREDITS
    assert set(entries) <= {"hold", "release"}
    assert used == CREDITS


@pytest.mark.slow
async def test_a_fleet_limit_holds_across_processes_paying_from_leases(
    api_processes: Processes,
) -> None:
    settings, start = api_processes
    with start(3) as (bases, _):
        # Given a platform allowed 50 calls a day and four agents with 100 calls' credits each
        async with httpx.AsyncClient(base_url=bases[0], timeout=30) as http:
            platform, master = await new_platform(http)
            limited = await http.put("/v1/platform/spending-limit",
                                     json={"dailyLimitMicros": 50 * PRICE}, headers=master)
            assert limited.status_code == 200, limited.text
            keys = [(await funded_agent(http, master))["apiKey"] for _ in range(4)]

        # When 400 calls are made at once over three processes and the four agents
        results = await many(bases, keys, 400)

        # Then exactly 50 are served, the rest refused at the fleet's limit
        assert results == {(200, None): 50, (402, "SPENDING_LIMIT_EXCEEDED"): 350}
        async with httpx.AsyncClient(base_url=bases[2], timeout=30) as http:
            spent = [(await settled(http, key))["spentMicros"] for key in keys]
    assert sum(spent) == 50 * PRICE
    async with database(settings) as sessions, sessions() as session:
        counter = (await session.exec(select(SpendCounter.spent_micros).where(
            col(SpendCounter.scope) == "platform",
            col(SpendCounter.owner_id) == platform["platform"]["id"]))).one()
    assert counter == 50 * PRICE


@pytest.mark.slow
async def test_a_killed_process_loses_at_most_its_lease_and_the_sweeper_returns_the_rest(
    api_processes: Processes,
) -> None:
    settings, start = api_processes
    max_lease = 5 * PRICE
    with start(1, PASSGATE_GATEWAY_LEASE_MAX_MICROS=str(max_lease)) as ([base], [proc]):
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            # Given a key whose two calls were served and recorded from a lease of 5 calls
            key = await signup(http)
            for _ in range(2):
                assert (await http.get("/v1/gateway/echo/echo",
                                       headers=key_headers(key))).status_code == 200
            deadline = time.monotonic() + 5
            while len((await http.get("/v1/usage", headers=key_headers(key))).json()["data"]) < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            agent_id = (await usage(http, key))["data"][0]["agentId"]

        # When its process is killed outright while the lease is open
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    # Then the credits stay held, at most the lease's documented bound
    assert await agent_books(settings, agent_id) == (CREDITS - max_lease, max_lease, 0)
    # And once the lease is past its grace (no live process extends it), the sweeper gives
    # back what it had not used; the two recorded calls are charged
    async with database(settings) as sessions, sessions() as session:
        await session.execute(update(CreditLease).where(col(CreditLease.agent_id) == agent_id)
                              .values(expires_at=utcnow() - timedelta(hours=1)))
        await session.commit()
    async with running_actors(settings) as run:
        await run(release_stale, retries=0)
    assert await agent_books(settings, agent_id) == (CREDITS - 2 * PRICE, 0, 2 * PRICE)
    async with database(settings) as sessions, sessions() as session:
        (lease,) = (await session.exec(select(CreditLease).where(
            col(CreditLease.agent_id) == agent_id))).all()
        entries = (await session.exec(select(LedgerEntry.kind, LedgerEntry.amount_micros)
                                      .where(col(LedgerEntry.agent_id) == agent_id))).all()
    assert (lease.state, lease.closed_by, lease.used_micros) == ("closed", "sweeper", 2 * PRICE)
    assert sorted(entries) == sorted([("grant", CREDITS), ("hold", -max_lease),
                                      ("release", max_lease - 2 * PRICE)])


async def agent_books(settings: Settings, agent_id: str) -> tuple[int, int, int]:
    """The agent's balance, held and spent, as stored."""
    async with database(settings) as sessions, sessions() as session:
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        return agent.balance_micros, agent.held_micros, agent.spent_micros


@pytest.mark.slow
async def test_a_limit_lowered_through_one_process_stops_calls_on_anothers_lease_at_once(
    api_processes: Processes,
) -> None:
    _, start = api_processes
    with start(2, PASSGATE_GATEWAY_LEASE_SECONDS="120") as ([first, second], _):
        async with (httpx.AsyncClient(base_url=first, timeout=30) as one,
                    httpx.AsyncClient(base_url=second, timeout=30) as other):
            # Given a fleet agent whose call through the first process took a 2-minute lease
            _, master = await new_platform(one)
            agent = await funded_agent(one, master)
            key = key_headers(agent["apiKey"])
            assert (await one.get("/v1/gateway/echo/echo", headers=key)).status_code == 200
            assert (await balance(one, agent["apiKey"]))["heldMicros"] > PRICE

            # When the platform lowers the agent's limit through the second process
            lowered = await other.patch(f"/v1/platform/agents/{agent['agent']['id']}",
                                        json={"dailySpendingLimitMicros": PRICE}, headers=master)
            assert lowered.status_code == 200, lowered.text

            # Then the first process stops paying from its lease within a broadcast's round
            # trip, not when the lease ends
            deadline = time.monotonic() + 2
            while True:
                response = await one.get("/v1/gateway/echo/echo", headers=key)
                if response.status_code != 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert response.status_code == 402, response.text
            assert response.json()["code"] == "SPENDING_LIMIT_EXCEEDED"
            assert (await settled(one, agent["apiKey"]))["heldMicros"] == 0
