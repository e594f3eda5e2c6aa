"""Credit leases (``PASSGATE_GATEWAY_CREDIT_LEASES``) in one API process: calls paid from
memory are charged exactly once, failures are free, balances and limits are never passed, and
what a lease did not use comes back, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db.models.credits import LedgerEntry
from app.db.models.gateway import CreditLease, SpendCounter
from app.db.types import utcnow
from app.gateway.reservations import spend_day
from app.runtime import Runtime
from tests.factories import assert_error, create_platform, key_headers, master_headers
from tests.fixtures.tcp_proxy import VanishingProxy, vanishing_proxy
from tests.fixtures.workers import running_actors
from tests.gateway.conftest import GatewayFactory
from tests.gateway.helpers import (
    PRICE,
    balance,
    database,
    events_of,
    provider_config,
    settled,
    signup,
    usage,
)
from tests.gateway.test_limits import fleet_agent
from tests.scrape import scrape
from workers.gateway import release_stale

Client = AsyncTestClient[Litestar]
STARTER = 10_000_000


async def leased(make_gateway: GatewayFactory, **overrides: Any) -> Client:
    values: dict[str, Any] = {"gateway_credit_leases": True, "gateway_lease_seconds": 0.5}
    values.update(overrides)
    return await make_gateway(**values)


async def leased_fleet(
    make_gateway: GatewayFactory, admin_headers: dict[str, str]
) -> tuple[Client, dict[str, Any], dict[str, str]]:
    """A gateway on leases of a minute, a platform on it, and its master key's headers."""
    gw = await leased(make_gateway, gateway_lease_seconds=60)
    platform = await create_platform(gw, admin_headers)
    return gw, platform, master_headers(platform["masterKey"])


async def get(client: Client, key: str, path: str = "echo/echo") -> int:
    response = await client.get(f"/v1/gateway/{path}", headers=key_headers(key))
    return response.status_code


async def recorded(client: Client, key: str, within: float = 5.0) -> list[dict[str, Any]]:
    """The key's usage once its calls were written (in batches, off the request path)."""
    deadline = time.monotonic() + within
    while True:
        records: list[dict[str, Any]] = (await usage(client, key))["data"]
        if records or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.05)


async def ledger_of(client: Client, agent_id: str) -> list[LedgerEntry]:
    runtime: Runtime = client.app.state.runtime
    async with database(runtime.settings) as sessions, sessions() as session:
        stmt = select(LedgerEntry).where(col(LedgerEntry.agent_id) == agent_id)
        return list((await session.exec(stmt)).all())


async def leases_of(client: Client, agent_id: str) -> list[CreditLease]:
    runtime: Runtime = client.app.state.runtime
    async with database(runtime.settings) as sessions, sessions() as session:
        stmt = select(CreditLease).where(col(CreditLease.agent_id) == agent_id)
        return list((await session.exec(stmt)).all())


async def test_calls_paid_from_a_lease_are_charged_once_and_the_books_add_up(
    make_gateway: GatewayFactory,
) -> None:
    # Given a key with 10 USD on a gateway paying calls from credit leases
    gw = await leased(make_gateway)
    key = await signup(gw)

    # When three calls succeed
    responses = [await gw.get("/v1/gateway/echo/echo", headers=key_headers(key))
                 for _ in range(3)]

    # Then each says what it cost, and while the lease is open the balance shows it held
    assert [r.status_code for r in responses] == [200] * 3
    assert [r.headers["x-gateway-cost-micros"] for r in responses] == [str(PRICE)] * 3
    assert all("x-gateway-balance-micros" not in r.headers for r in responses)
    during = await balance(gw, key)
    assert during["heldMicros"] > 0
    assert during["creditsMicros"] + during["heldMicros"] + during["spentMicros"] == STARTER

    # And once the lease expired and closed, exactly the three calls are spent
    after = await settled(gw, key)
    assert (after["creditsMicros"], after["heldMicros"], after["spentMicros"]) == (
        STARTER - 3 * PRICE, 0, 3 * PRICE)
    records = (await usage(gw, key))["data"]
    assert sorted((r["status"], r["costMicros"]) for r in records) == [("succeeded", PRICE)] * 3
    agent_id = records[0]["agentId"]
    entries = await ledger_of(gw, agent_id)
    assert {e.kind for e in entries} == {"grant", "hold", "release"}
    assert sum(e.amount_micros for e in entries if e.kind in ("hold", "release")) == -3 * PRICE
    (lease,) = await leases_of(gw, agent_id)
    assert (lease.state, lease.used_micros, lease.closed_by) == ("closed", 3 * PRICE, "holder")


async def test_operators_list_the_leases_processes_hold(
    make_gateway: GatewayFactory, admin_headers: dict[str, str]
) -> None:
    # Given an agent whose call took a lease that is still open
    gw = await leased(make_gateway, gateway_lease_seconds=60)
    key = await signup(gw)
    assert await get(gw, key) == 200
    agent_id = (await recorded(gw, key))[0]["agentId"]

    # When the operator lists the agent's open leases
    listed = await gw.get("/admin/v1/gateway/leases",
                          params={"agentId": agent_id, "state": "open"}, headers=admin_headers)

    # Then it sees which process holds how much, and the balance agrees
    assert listed.status_code == 200, listed.text
    (lease,) = listed.json()["data"]
    held = (await balance(gw, key))["heldMicros"]
    assert (lease["agentId"], lease["state"], lease["amountMicros"]) == (agent_id, "open", held)
    assert lease["holder"].count(":") == 2  # host:pid:instance
    assert lease["closedAt"] is None
    agent = (await gw.get(f"/admin/v1/agents/{agent_id}", headers=admin_headers)).json()
    assert agent["heldMicros"] == held
    # And bad filters or no admin token are refused
    assert_error(await gw.get("/admin/v1/gateway/leases", params={"state": "gone"},
                              headers=admin_headers), 400, "VALIDATION_ERROR")
    assert_error(await gw.get("/admin/v1/gateway/leases"), 401, "UNAUTHORIZED")


async def test_failed_calls_paid_from_a_lease_cost_nothing(make_gateway: GatewayFactory) -> None:
    # Given a key on a gateway paying from leases
    gw = await leased(make_gateway)
    key = await signup(gw)

    # When calls fail every way: a 5xx, a refused 4xx relayed, an unreachable upstream
    codes = [await get(gw, key, "echo/status/500"), await get(gw, key, "echo/status/404"),
             await get(gw, key, "down/anything")]

    # Then none is charged, and the lease gives everything back
    assert codes == [502, 404, 502]
    after = await settled(gw, key)
    assert (after["creditsMicros"], after["heldMicros"], after["spentMicros"]) == (STARTER, 0, 0)
    records = (await usage(gw, key))["data"]
    assert sorted((r["status"], r["costMicros"]) for r in records) == [("failed", 0)] * 3


async def test_concurrent_calls_never_spend_more_than_the_balance(
    make_gateway: GatewayFactory,
) -> None:
    # Given a key with exactly five calls' worth of credits
    gw = await leased(make_gateway, starter_credits_micros=5 * PRICE)
    key = await signup(gw)

    # When twelve calls are made at once
    responses = await asyncio.gather(*(gw.get("/v1/gateway/echo/echo", headers=key_headers(key))
                                       for _ in range(12)))

    # Then exactly five are served, the rest refused for credits, and nothing is left
    outcomes = Counter((r.status_code, r.json().get("code") if r.status_code != 200 else None)
                       for r in responses)
    assert outcomes == {(200, None): 5, (402, "INSUFFICIENT_CREDITS"): 7}
    after = await settled(gw, key)
    assert (after["creditsMicros"], after["heldMicros"], after["spentMicros"]) == (
        0, 0, 5 * PRICE)


async def test_a_lease_never_passes_the_agents_or_the_fleets_daily_limit(
    make_gateway: GatewayFactory, admin_headers: dict[str, str]
) -> None:
    # Given a fleet limited to five calls a day, one of whose agents is limited to three
    gw = await leased(make_gateway)
    platform = await create_platform(gw, admin_headers)
    master = platform["masterKey"]
    limited = await gw.put("/v1/platform/spending-limit", json={"dailyLimitMicros": 5 * PRICE},
                           headers=master_headers(master))
    assert limited.status_code == 200, limited.text
    first = await fleet_agent(gw, admin_headers, master, dailySpendingLimitMicros=3 * PRICE)
    second = await fleet_agent(gw, admin_headers, master)

    # When each calls more than it may
    first_codes = [await get(gw, first["key"]) for _ in range(4)]
    second_codes = [await get(gw, second["key"]) for _ in range(4)]

    # Then the agent stops at its three, the fleet at its five, each told which limit
    assert first_codes == [200, 200, 200, 402]
    assert second_codes == [200, 200, 402, 402]
    refused = await gw.get("/v1/gateway/echo/echo", headers=key_headers(first["key"]))
    assert assert_error(refused, 402, "SPENDING_LIMIT_EXCEEDED")["details"]["scope"] in (
        "agent", "platform")
    refused = await gw.get("/v1/gateway/echo/echo", headers=key_headers(second["key"]))
    assert assert_error(refused, 402, "SPENDING_LIMIT_EXCEEDED")["details"]["scope"] == "platform"
    spent = [(await settled(gw, agent["key"]))["spentMicros"] for agent in (first, second)]
    assert spent == [3 * PRICE, 2 * PRICE]


async def test_a_call_outliving_its_lease_keeps_the_sweeper_off_and_is_charged(
    make_gateway: GatewayFactory, upstream_url: str, providers: list[dict[str, Any]],
) -> None:
    # Given a lease that lives half a second, a sweeper grace of five, and a 7-second call
    slow = provider_config(upstream_url, name="slowpoke", timeout_seconds=15.0)
    gw = await leased(make_gateway, gateway_lease_grace_seconds=5,
                      providers=[*providers, slow])
    runtime: Runtime = gw.app.state.runtime
    key = await signup(gw)

    async def sweep() -> None:
        async with running_actors(runtime.settings) as run:
            await run(release_stale, retries=0)

    # When the sweeper runs while the call is still running, long past the lease's expiry
    # (in a thread of its own: the test client's request holds this loop until it returns)
    sweeper = threading.Timer(6.0, lambda: asyncio.run(sweep()))
    sweeper.start()
    try:
        response = await gw.get("/v1/gateway/slowpoke/slow", params={"seconds": 7},
                                headers=key_headers(key))
    finally:
        sweeper.join(timeout=30)

    # Then the live process had extended the lease: it is still its own, and the call is paid
    assert response.status_code == 200, response.text
    after = await settled(gw, key)
    assert (after["creditsMicros"], after["heldMicros"], after["spentMicros"]) == (
        STARTER - PRICE, 0, PRICE)
    (record,) = (await usage(gw, key))["data"]
    assert (record["status"], record["costMicros"], record["error"]) == ("succeeded", PRICE, None)
    (lease,) = await leases_of(gw, record["agentId"])
    assert lease.closed_by == "holder"


async def test_credits_low_is_sent_once_per_dip_even_as_leases_give_credits_back(
    make_gateway: GatewayFactory,
) -> None:
    # Given 1.05 USD, a low-credit threshold of 1 USD, and leases that close between calls
    gw = await leased(make_gateway, starter_credits_micros=1_050_000,
                      credits_low_threshold_micros=1_000_000)
    runtime: Runtime = gw.app.state.runtime
    key = await signup(gw)

    # When six calls are made one at a time: the first lease dips under the threshold and
    # gives most of itself back when it closes, the sixth call's lease dips under it again
    for _ in range(6):
        assert await get(gw, key) == 200
        await settled(gw, key)

    # Then that is one dip: the unused part of a lease coming back is not a top-up
    agent_id = (await usage(gw, key))["data"][0]["agentId"]
    assert (await balance(gw, key))["creditsMicros"] == 1_050_000 - 6 * PRICE
    assert len(await events_of(runtime.settings, agent_id, "credits.low")) == 1


@pytest.mark.parametrize("scope", ["agent", "platform"])
async def test_lowering_a_limit_stops_calls_on_an_open_lease_at_once(
    make_gateway: GatewayFactory, admin_headers: dict[str, str], scope: str
) -> None:
    # Given a fleet agent whose first call took a lease that lives a minute
    gw, platform, master = await leased_fleet(make_gateway, admin_headers)
    agent = await fleet_agent(gw, admin_headers, platform["masterKey"])
    assert await get(gw, agent["key"]) == 200
    assert (await balance(gw, agent["key"]))["heldMicros"] > PRICE

    # When the platform limits the agent, or its whole fleet, to the one call made today
    if scope == "agent":
        lowered = await gw.patch(f"/v1/platform/agents/{agent['id']}",
                                 json={"dailySpendingLimitMicros": PRICE}, headers=master)
    else:
        lowered = await gw.put("/v1/platform/spending-limit", json={"dailyLimitMicros": PRICE},
                               headers=master)
    assert lowered.status_code == 200, lowered.text

    # Then the next call is refused at once at that limit, counting only what was spent, and
    # the lease gave back what it did not use
    response = await gw.get("/v1/gateway/echo/echo", headers=key_headers(agent["key"]))
    body = assert_error(response, 402, "SPENDING_LIMIT_EXCEEDED")
    assert (body["details"]["scope"], body["details"]["spentTodayMicros"]) == (scope, PRICE)
    after = await settled(gw, agent["key"])
    assert (after["heldMicros"], after["spentMicros"]) == (0, PRICE)


async def open_leases(client: Client, admin_headers: dict[str, str],
                      agent_id: str) -> list[str]:
    listed = await client.get("/admin/v1/gateway/leases",
                              params={"agentId": agent_id, "state": "open"},
                              headers=admin_headers)
    assert listed.status_code == 200, listed.text
    return [lease["id"] for lease in listed.json()["data"]]


async def no_open_lease(client: Client, admin_headers: dict[str, str], agent_id: str,
                        within: float = 5.0) -> bool:
    """Whether the agent's leases were all closed within ``within`` seconds (a retired lease
    is closed by the writer, off the request path)."""
    deadline = time.monotonic() + within
    while True:
        if not await open_leases(client, admin_headers, agent_id):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("scope", ["agent", "platform"])
async def test_a_change_retires_only_the_leases_of_what_changed(
    make_gateway: GatewayFactory, admin_headers: dict[str, str], scope: str
) -> None:
    # Given an agent, its fleet mate and an agent of another platform, each with an open lease
    gw, platform, master = await leased_fleet(make_gateway, admin_headers)
    agent, mate = [await fleet_agent(gw, admin_headers, platform["masterKey"])
                   for _ in range(2)]
    other = await create_platform(gw, admin_headers)
    stranger = await fleet_agent(gw, admin_headers, other["masterKey"])
    for holder in (agent, mate, stranger):
        assert await get(gw, holder["key"]) == 200
    before = {h["id"]: await open_leases(gw, admin_headers, h["id"])
              for h in (agent, mate, stranger)}
    assert all(len(ids) == 1 for ids in before.values())

    # When the platform changes one agent's limit, or the whole fleet's
    if scope == "agent":
        changed = await gw.patch(f"/v1/platform/agents/{agent['id']}",
                                 json={"dailySpendingLimitMicros": 100 * PRICE}, headers=master)
    else:
        changed = await gw.put("/v1/platform/spending-limit",
                               json={"dailyLimitMicros": 100 * PRICE}, headers=master)
    assert changed.status_code == 200, changed.text

    # Then the changed agent's (or fleet's) leases are given back, and the next call takes
    # a new one
    retired = [agent, mate] if scope == "platform" else [agent]
    kept = [h for h in (agent, mate, stranger) if h not in retired]
    for holder in retired:
        assert await no_open_lease(gw, admin_headers, holder["id"])
        assert await get(gw, holder["key"]) == 200
        assert (await open_leases(gw, admin_headers, holder["id"])) != before[holder["id"]]
    # And everyone else keeps calling on the lease it had
    for holder in kept:
        assert await get(gw, holder["key"]) == 200
        assert await open_leases(gw, admin_headers, holder["id"]) == before[holder["id"]]


async def test_operators_see_open_leases_what_they_hold_and_calls_not_yet_written(
    make_gateway: GatewayFactory,
) -> None:
    # Given a gateway on leases whose metrics are read afresh at every scrape
    gw = await leased(make_gateway, gateway_lease_seconds=60, metrics_cache_seconds=0)
    key = await signup(gw)
    before = await scrape(gw)

    # When a call takes a lease and is written
    assert await get(gw, key) == 200
    agent_id = (await recorded(gw, key))[0]["agentId"]
    after = await scrape(gw)

    # Then one more lease is open, holding what the balance shows as held, and no call of
    # this process is left unwritten
    (lease,) = await leases_of(gw, agent_id)
    held = (await balance(gw, key))["heldMicros"]
    assert held == lease.amount_micros
    assert after.value("passgate_gateway_leases_open") == \
        before.value("passgate_gateway_leases_open") + 1
    assert after.value("passgate_gateway_lease_held_micros") == \
        before.value("passgate_gateway_lease_held_micros") + held
    assert after.value("passgate_gateway_lease_unrecorded_calls") == \
        before.value("passgate_gateway_lease_unrecorded_calls")

    # And a lease nobody closed long after its expiry (its process gone, no sweeper) shows
    runtime: Runtime = gw.app.state.runtime
    async with database(runtime.settings) as sessions, sessions() as session:
        await session.execute(update(CreditLease).where(col(CreditLease.id) == lease.id)
                              .values(expires_at=utcnow() - timedelta(days=10)))
        await session.commit()
    overdue = (await scrape(gw)).value("passgate_gateway_lease_overdue_seconds")
    assert overdue >= timedelta(days=10).total_seconds()


async def test_calls_finishing_back_to_back_are_written_in_few_batches(
    make_gateway: GatewayFactory,
) -> None:
    # Given a key calling back to back on a lease for about a second
    gw = await leased(make_gateway, gateway_lease_seconds=60)
    key = await signup(gw)
    before = await scrape(gw)
    started, calls = time.monotonic(), 0
    while time.monotonic() - started < 1.0:
        assert await get(gw, key) == 200
        calls += 1
    elapsed = time.monotonic() - started

    # When they have all been written
    events = "passgate_gateway_lease_events_total"

    def delta(scraped: Any, event: str) -> float:
        return float(scraped.value(events, event=event) - before.value(events, event=event))

    deadline = time.monotonic() + 10
    while True:
        after = await scrape(gw)
        if delta(after, "calls_written") >= calls or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)

    # Then they went in batches that gathered (a round per ~250 ms), not a transaction or
    # two per call
    batches = delta(after, "batches_written")
    assert delta(after, "calls_written") == calls
    assert calls >= 20, f"only {calls} calls in a second: too slow to tell"
    assert 1 <= batches <= elapsed / 0.25 + 3, (calls, batches)


@pytest.fixture
def db_proxy(database_url: str) -> Iterator[tuple[VanishingProxy, str]]:
    """A proxy in front of the session's PostgreSQL, and the database URL through it."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has no server to lose")
    url = make_url(database_url)
    with vanishing_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)


async def test_calls_served_while_the_database_is_down_are_written_once_it_is_back(
    db_proxy: tuple[VanishingProxy, str], make_gateway: GatewayFactory,
) -> None:
    # Given a key whose first call took a lease (its key cached for a few seconds)
    proxy, through_proxy = db_proxy
    gw = await leased(make_gateway, gateway_lease_seconds=60, key_cache_seconds=5,
                      database_url=through_proxy)
    key = await signup(gw)
    assert await get(gw, key) == 200
    before = await scrape(gw)

    # When the database goes away, calls go on from the lease (a first one pays for eight),
    # and a write round fails
    proxy.refuse()
    proxy.vanish()
    served = 1
    for _ in range(5):
        assert await get(gw, key) == 200
        served += 1
    await asyncio.sleep(0.6)
    events = "passgate_gateway_lease_events_total"
    failed = (await scrape(gw)).value(events, event="record_failed") - before.value(
        events, event="record_failed")
    proxy.refuse(False)

    # Then once it is back every call is written and charged exactly once
    records = []
    deadline = time.monotonic() + 15
    while len(records) < served and time.monotonic() < deadline:
        records = (await usage(gw, key))["data"]
        if len(records) < served:
            await asyncio.sleep(0.1)
    assert failed >= 1
    assert len(records) == served
    assert all((r["status"], r["costMicros"]) == ("succeeded", PRICE) for r in records)
    assert len({r["id"] for r in records}) == served


async def test_a_lease_used_up_quickly_is_followed_by_one_sized_for_that_rate(
    make_gateway: GatewayFactory, admin_headers: dict[str, str],
) -> None:
    # Given a key whose first lease (eight calls) is used up within moments
    most = 40 * PRICE
    gw = await leased(make_gateway, gateway_lease_seconds=60, gateway_lease_max_micros=most)
    key = await signup(gw)
    for _ in range(9):
        assert await get(gw, key) == 200
    agent_id = (await recorded(gw, key))[0]["agentId"]

    # Then the next lease is not merely double the first: at that rate a lifetime of calls
    # is as much as one lease may hold
    listed = await gw.get("/admin/v1/gateway/leases", params={"agentId": agent_id},
                          headers=admin_headers)
    assert listed.status_code == 200, listed.text
    amounts = sorted(lease["amountMicros"] for lease in listed.json()["data"])
    assert amounts == [8 * PRICE, most]


async def _waiting_on_a_lock(sessions: async_sessionmaker[AsyncSession],
                             within: float = 10.0) -> bool:
    """Whether some other transaction of this database is waiting on a row lock."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with sessions() as session:
            waiting = (await session.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%gateway_spend_counters%'"
            ))).scalar_one()
        if waiting:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_lease_taken_while_its_fleet_changed_pays_one_call_only(
    make_gateway: GatewayFactory, admin_headers: dict[str, str], database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite: a take holds the write lock, so no change can land inside it")
    # Given a fleet whose counter for today exists (a mate's call), held by another
    # transaction so that the agent's next lease take stops just before its commit
    gw, platform, master = await leased_fleet(make_gateway, admin_headers)
    agent, mate = [await fleet_agent(gw, admin_headers, platform["masterKey"])
                   for _ in range(2)]
    assert await get(gw, mate["key"]) == 200
    runtime: Runtime = gw.app.state.runtime
    async with database(runtime.settings) as sessions:
        async with sessions() as holder:
            await holder.execute(
                select(SpendCounter)
                .where(col(SpendCounter.scope) == "platform",
                       col(SpendCounter.owner_id) == platform["platform"]["id"],
                       col(SpendCounter.day) == spend_day(utcnow()))
                .with_for_update())
            call = asyncio.ensure_future(get(gw, agent["key"]))
            assert await _waiting_on_a_lock(sessions), "the lease take never waited"

            # When the fleet's limit is lowered to two calls while that lease is being taken
            # (on the limit as it was)
            lowered = await gw.put("/v1/platform/spending-limit",
                                   json={"dailyLimitMicros": 2 * PRICE}, headers=master)
            assert lowered.status_code == 200, lowered.text
            assert not call.done()
            await holder.rollback()
        assert await asyncio.wait_for(call, 15) == 200

    # Then that lease paid its own call only: the next is refused at the new limit, and
    # nothing stays held
    response = await gw.get("/v1/gateway/echo/echo", headers=key_headers(agent["key"]))
    body = assert_error(response, 402, "SPENDING_LIMIT_EXCEEDED")
    assert body["details"]["scope"] == "platform"
    after = await settled(gw, agent["key"])
    assert (after["heldMicros"], after["spentMicros"]) == (0, PRICE)
