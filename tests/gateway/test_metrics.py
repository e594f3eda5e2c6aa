"""Gateway calls by provider and outcome, and what they were charged, on /metrics."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.factories import key_headers
from tests.gateway.helpers import PRICE, signup
from tests.scrape import scrape

Client = AsyncTestClient[Litestar]
CALLS = "passgate_gateway_calls_total"
CHARGED = "passgate_gateway_charged_micros_total"
UPSTREAM_COUNT = "passgate_gateway_upstream_seconds_count"


async def test_a_successful_call_counts_as_success_and_charges_its_price(gw: Client) -> None:
    # Given a key with credits, and the counts before
    key = await signup(gw)
    before = await scrape(gw)

    # When it calls the upstream through the gateway and gets a 200
    response = await gw.get("/v1/gateway/echo/echo/anything", headers=key_headers(key))

    # Then one successful call, its upstream latency and its price in credits are counted
    assert response.status_code == 200, response.text
    after = await scrape(gw)
    success = {"provider": "echo", "outcome": "success"}
    credits = {"provider": "echo", "payment": "credits"}
    assert after.value(CALLS, **success) == before.value(CALLS, **success) + 1
    assert after.value(UPSTREAM_COUNT, provider="echo") == \
        before.value(UPSTREAM_COUNT, provider="echo") + 1
    assert after.value(CHARGED, **credits) == before.value(CHARGED, **credits) + PRICE


async def test_an_upstream_500_counts_as_an_upstream_error_and_charges_nothing(
    gw: Client,
) -> None:
    # Given a key with credits, and the counts before
    key = await signup(gw)
    before = await scrape(gw)

    # When the upstream answers 500
    response = await gw.get("/v1/gateway/echo/status/500", headers=key_headers(key))

    # Then the call counts as an upstream error, and no charge is counted
    assert response.status_code == 502, response.text
    after = await scrape(gw)
    failed = {"provider": "echo", "outcome": "upstream_error"}
    credits = {"provider": "echo", "payment": "credits"}
    assert after.value(CALLS, **failed) == before.value(CALLS, **failed) + 1
    assert after.value(CHARGED, **credits) == before.value(CHARGED, **credits)


async def test_an_unreachable_upstream_counts_as_a_connect_error(gw: Client) -> None:
    # Given a key with credits, and the counts before
    key = await signup(gw)
    before = await scrape(gw)

    # When it calls the provider whose upstream is not listening
    response = await gw.get("/v1/gateway/down/anything", headers=key_headers(key))

    # Then the call counts as a connect error of that provider
    assert response.status_code == 502, response.text
    after = await scrape(gw)
    failed = {"provider": "down", "outcome": "connect_error"}
    assert after.value(CALLS, **failed) == before.value(CALLS, **failed) + 1
