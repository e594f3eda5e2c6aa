"""Paying with credits: charged once on 2xx, never for a failure, never below zero."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlmodel import col, select

from app.db.models.credits import LedgerEntry
from app.db.models.gateway import GatewayUsage
from app.db.types import utcnow
from app.gateway import outcomes
from app.runtime import Runtime
from tests.factories import assert_error, key_headers
from tests.gateway.conftest import GatewayFactory
from tests.gateway.helpers import (
    PRICE,
    balance,
    database,
    events_of,
    provider_config,
    settled_usage,
    signup,
    upstream_hits,
    usage,
)

Client = AsyncTestClient[Litestar]


def runtime(client: Client) -> Runtime:
    rt: Runtime = client.app.state.runtime
    return rt


async def ledger_of(client: Client, agent_id: str) -> list[LedgerEntry]:
    async with database(runtime(client).settings) as sessions, sessions() as session:
        stmt = select(LedgerEntry).where(col(LedgerEntry.agent_id) == agent_id)
        return list((await session.exec(stmt)).all())


async def test_a_successful_call_is_charged_exactly_once(gw: Client) -> None:
    # Given a key with 10 USD
    key = await signup(gw)

    # When one call succeeds
    response = await gw.post("/v1/gateway/echo/echo", json={"q": 1}, headers=key_headers(key))

    # Then the price is taken once: balance, spent, ledger and usage agree
    assert response.status_code == 200
    assert response.headers["x-gateway-cost-micros"] == str(PRICE)
    assert response.headers["x-gateway-balance-micros"] == str(10_000_000 - PRICE)
    record = await settled_usage(gw, key, response.headers["x-gateway-usage-id"])
    assert record["status"] == "succeeded"
    assert record["costMicros"] == PRICE
    assert record["upstreamStatus"] == 200
    assert record["upstreamRequestId"] == response.headers["x-upstream-request-id"]
    assert record["route"] == "/echo"
    assert record["method"] == "POST"
    assert record["latencyMs"] is not None
    assert record["latencyMs"] >= 0
    now = await balance(gw, key)
    assert now["creditsMicros"] == 10_000_000 - PRICE
    assert now["spentMicros"] == PRICE
    assert now["total_spent"] == 0.01
    charges = [e for e in await ledger_of(gw, record["agentId"]) if e.kind == "charge"]
    assert [(e.amount_micros, e.reference) for e in charges] == [(-PRICE, record["id"])]


async def test_too_few_credits_is_402_and_the_upstream_is_not_called(
    make_gateway: GatewayFactory, upstream_url: str
) -> None:
    # Given a key with less than one call's price
    gw = await make_gateway(starter_credits_micros=PRICE - 1)
    key = await signup(gw)
    before = await upstream_hits(upstream_url, "/echo/unpaid")

    # When it calls
    response = await gw.get("/v1/gateway/echo/echo/unpaid", headers=key_headers(key))

    # Then it is refused with INSUFFICIENT_CREDITS, nothing forwarded, nothing recorded
    body = assert_error(response, 402, "INSUFFICIENT_CREDITS")
    assert body["details"] == {"balanceMicros": PRICE - 1, "requiredMicros": PRICE}
    assert await upstream_hits(upstream_url, "/echo/unpaid") == before
    assert (await balance(gw, key))["creditsMicros"] == PRICE - 1
    assert (await usage(gw, key))["data"] == []


async def assert_failed_call_is_free(
    gw: Client, key: str, path: str, reason: str, upstream_status: int | None
) -> dict[str, Any]:
    response = await gw.get(path, headers=key_headers(key))
    body = assert_error(response, 502, "UPSTREAM_ERROR")
    assert body["details"]["reason"] == reason
    now = await balance(gw, key)
    assert now["creditsMicros"] == 10_000_000
    assert now["spentMicros"] == 0
    [record] = (await usage(gw, key))["data"]
    assert record["status"] == "failed"
    assert record["costMicros"] == 0
    assert record["upstreamStatus"] == upstream_status
    return body


async def test_an_upstream_500_is_502_and_free(gw: Client) -> None:
    key = await signup(gw)

    body = await assert_failed_call_is_free(
        gw, key, "/v1/gateway/echo/status/500", "upstream_status", 500
    )

    # The upstream's status is told, its error body is not relayed.
    assert body["details"]["upstreamStatus"] == 500
    assert "internal" not in str(body)


async def test_a_small_answer_broken_off_before_it_reached_the_caller_is_free(
    gw: Client,
) -> None:
    # Small answers are read whole before anything is relayed, so a break is still a 502.
    key = await signup(gw)

    await assert_failed_call_is_free(gw, key, "/v1/gateway/echo/short", "upstream_error", 200)


async def test_an_upstream_503_keeps_its_retry_after(gw: Client) -> None:
    key = await signup(gw)

    response = await gw.get("/v1/gateway/echo/status/503?retry_after=7", headers=key_headers(key))

    assert_error(response, 502, "UPSTREAM_ERROR")
    assert response.headers["retry-after"] == "7"
    assert (await balance(gw, key))["creditsMicros"] == 10_000_000


async def test_an_upstream_timeout_is_502_and_free(
    make_gateway: GatewayFactory, upstream_url: str
) -> None:
    # The provider's timeout is 1 s; the upstream takes 3.
    gw = await make_gateway(providers=[provider_config(upstream_url, timeout_seconds=1.0)])
    key = await signup(gw)

    await assert_failed_call_is_free(gw, key, "/v1/gateway/echo/slow?seconds=3", "timeout", None)

    [record] = (await usage(gw, key))["data"]
    assert record["error"] == "timeout"
    assert 900 <= record["latencyMs"] < 3000


async def test_a_refused_connection_is_502_and_free(gw: Client) -> None:
    key = await signup(gw)

    await assert_failed_call_is_free(gw, key, "/v1/gateway/down/anything", "connect_error", None)

    [record] = (await usage(gw, key))["data"]
    assert record["error"] == "connect_error"


async def test_a_released_reservation_leaves_a_refund_in_the_ledger(gw: Client) -> None:
    key = await signup(gw)

    response = await gw.get("/v1/gateway/echo/status/500", headers=key_headers(key))

    assert response.status_code == 502
    record = (await usage(gw, key))["data"][0]
    usage_id = record["id"]
    moves = sorted(
        (e.kind, e.amount_micros, e.reference)
        for e in await ledger_of(gw, record["agentId"])
        if e.reference == usage_id
    )
    assert moves == [("charge", -PRICE, usage_id), ("refund", PRICE, usage_id)]


async def test_prices_follow_the_model_then_the_route(gw: Client) -> None:
    key = await signup(gw)

    by_model = await gw.post(
        "/v1/gateway/echo/echo/premium/x", json={"model": "big-model"}, headers=key_headers(key)
    )
    by_route = await gw.post(
        "/v1/gateway/echo/echo/premium/x", json={"model": "other"}, headers=key_headers(key)
    )
    not_the_route = await gw.get("/v1/gateway/echo/echo/premiumish", headers=key_headers(key))
    default = await gw.post("/v1/gateway/echo/echo", json={"n": 1}, headers=key_headers(key))

    assert by_model.headers["x-gateway-cost-micros"] == "100000"
    assert by_route.headers["x-gateway-cost-micros"] == "50000"
    assert not_the_route.headers["x-gateway-cost-micros"] == str(PRICE)
    assert default.headers["x-gateway-cost-micros"] == str(PRICE)
    assert (await balance(gw, key))["spentMicros"] == 100_000 + 50_000 + 2 * PRICE


async def test_a_model_is_priced_in_any_encoding_a_json_parser_reads(gw: Client) -> None:
    # Given a JSON body naming the expensive model, as upstream JSON parsers accept it
    key = await signup(gw)
    text = '{"model": "big-model"}'
    bodies = [
        b"\xef\xbb\xbf" + text.encode(),
        text.encode("utf-16-le"),
        text.encode("utf-16"),
        text.encode("utf-32"),
    ]

    # When each is sent
    costs = []
    for body in bodies:
        response = await gw.post(
            "/v1/gateway/echo/echo",
            content=body,
            headers={**key_headers(key), "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        costs.append(response.headers["x-gateway-cost-micros"])

    # Then each costs that model's price
    assert costs == ["100000"] * len(bodies)


async def test_a_body_whose_model_cannot_be_read_costs_the_highest_price(gw: Client) -> None:
    # Given a provider priced by model, and bodies passgate cannot read a model from
    key = await signup(gw)
    bodies = [
        b"model=big-model",  # form data
        b'{"model": "big-model", "n": NaN}',  # JSON only a lenient parser takes
        b'{"model": ["big-model"]}',
        b'["big-model"]',
        '{"model": "\ud800"}'.encode("utf-16-le", "surrogatepass"),  # a lone surrogate
    ]

    # When each is sent
    costs = []
    for body in bodies:
        response = await gw.post("/v1/gateway/echo/echo", content=body, headers=key_headers(key))
        assert response.status_code == 200, response.text
        costs.append(response.headers["x-gateway-cost-micros"])

    # Then each costs the highest model price rather than the default
    assert costs == ["100000"] * len(bodies)


async def test_a_body_nested_too_deeply_to_read_costs_the_highest_price(gw: Client) -> None:
    # Given a provider priced by model, and a body naming the cheap default model whose other
    # field is nested a hundred thousand levels deep
    key = await signup(gw)
    body = b'{"model": "small", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    # When it is sent
    response = await gw.post("/v1/gateway/echo/echo", content=body, headers=key_headers(key))

    # Then passgate does not decode it: the upstream gets it, at the highest model price
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-cost-micros"] == "100000"


async def test_a_route_price_holds_however_the_path_is_spelled(gw: Client) -> None:
    # Given a route priced above the default (/echo/premium)
    key = await signup(gw)

    # When it is called with repeated slashes, path parameters or encoded slashes
    costs = []
    for path in ("//echo/premium", "/echo//premium/x", "/echo/premium;v=2", "/echo%2F%2Fpremium"):
        response = await gw.get(f"/v1/gateway/echo{path}", headers=key_headers(key))
        assert response.status_code == 200, response.text
        costs.append(response.headers["x-gateway-cost-micros"])

    # Then each costs the route's price
    assert costs == ["50000"] * 4


async def test_a_free_provider_charges_nothing_but_records_usage(gw: Client) -> None:
    key = await signup(gw)

    response = await gw.get("/v1/gateway/free/echo", headers=key_headers(key))

    assert response.status_code == 200
    record = await settled_usage(gw, key, response.headers["x-gateway-usage-id"])
    assert record["costMicros"] == 0
    assert record["status"] == "succeeded"
    assert (await balance(gw, key))["creditsMicros"] == 10_000_000


async def test_credits_low_is_emitted_once_when_the_balance_crosses_the_threshold(
    make_gateway: GatewayFactory,
) -> None:
    # Given 0.05 USD and a low-credit threshold of 0.03 USD
    gw = await make_gateway(
        starter_credits_micros=5 * PRICE, credits_low_threshold_micros=3 * PRICE
    )
    key = await signup(gw)

    # When calls take it down past the threshold, with failed (refunded) calls around it
    for path in ("echo", "echo", "status/500", "echo", "status/500", "echo"):
        await gw.get(f"/v1/gateway/echo/{path}", headers=key_headers(key))

    # Then exactly one credits.low was written, for the crossing charge
    assert (await balance(gw, key))["creditsMicros"] == PRICE
    agent_id = (await usage(gw, key))["data"][0]["agentId"]
    settings = runtime(gw).settings
    [event] = await events_of(settings, agent_id, "credits.low")
    assert event.data["balanceMicros"] == 2 * PRICE
    assert event.data["thresholdMicros"] == 3 * PRICE


async def test_credits_low_fires_again_after_a_top_up(
    make_gateway: GatewayFactory,
    admin_headers: dict[str, str],
) -> None:
    gw = await make_gateway(
        starter_credits_micros=2 * PRICE, credits_low_threshold_micros=2 * PRICE
    )
    key = await signup(gw)
    await gw.get("/v1/gateway/echo/echo", headers=key_headers(key))
    agent_id = (await usage(gw, key))["data"][0]["agentId"]

    top_up = await gw.post(
        "/admin/v1/credits/adjustments",
        headers=admin_headers,
        json={"agentId": agent_id, "amountMicros": 5 * PRICE, "reason": "top up"},
    )
    assert top_up.status_code == 201, top_up.text
    for _ in range(5):
        await gw.get("/v1/gateway/echo/echo", headers=key_headers(key))

    assert len(await events_of(runtime(gw).settings, agent_id, "credits.low")) == 2


async def test_concurrent_calls_never_overdraw(make_gateway: GatewayFactory) -> None:
    # Given 0.05 USD and two app instances sharing the database
    first = await make_gateway(starter_credits_micros=5 * PRICE)
    second = await make_gateway(starter_credits_micros=5 * PRICE)
    key = await signup(first)

    # When 20 calls race through both
    responses = await asyncio.gather(
        *(
            (first if i % 2 else second).get("/v1/gateway/echo/echo", headers=key_headers(key))
            for i in range(20)
        )
    )

    # Then exactly five succeed and the balance is exactly zero
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 5 + [402] * 15
    now = await balance(first, key)
    assert now["creditsMicros"] == 0
    assert now["spentMicros"] == 5 * PRICE


async def test_abandoned_reservations_are_released_by_the_sweeper(gw: Client) -> None:
    # Given a call whose process died after reserving (simulated: a pending row, aged)
    key = await signup(gw)
    response = await gw.get("/v1/gateway/echo/echo", headers=key_headers(key))
    usage_id = response.headers["x-gateway-usage-id"]
    await settled_usage(gw, key, usage_id)
    async with database(runtime(gw).settings) as sessions:
        async with sessions() as session:
            await session.execute(
                update(GatewayUsage)
                .where(col(GatewayUsage.id) == usage_id)
                .values(status="pending", created_at=utcnow() - timedelta(hours=1))
            )
            await session.commit()

        # When the sweeper runs (twice: it must be idempotent)
        assert await outcomes.release_stale(sessions, older_than_seconds=600) >= 1
        assert await outcomes.release_stale(sessions, older_than_seconds=600) == 0

    # Then the reservation came back once and the call is recorded as abandoned
    now = await balance(gw, key)
    assert now["creditsMicros"] == 10_000_000
    assert now["spentMicros"] == 0
    record = (await usage(gw, key))["data"][0]
    assert (record["status"], record["error"]) == ("failed", "abandoned")
