"""A usage-priced provider called with a key: the maximum is reserved from the agent's credits,
the answer's usage is charged, the rest is given back (ledger, usage record, headers agree)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from app.db.models.credits import LedgerEntry
from app.main import create_app
from app.settings import Settings
from tests.factories import key_headers
from tests.gateway.helpers import balance, database, provider_config, settled_usage, signup

PER_TOKEN = 20
MAX = 100_000
START = 10_000_000  # a new key's starter credits


@pytest.fixture
def credit_settings(settings_factory, upstream_url) -> Settings:
    usage = {"field": "usage.total_tokens", "microsPerUnit": PER_TOKEN, "maxMicros": MAX}
    return settings_factory(
        plan_free_per_minute=100_000,
        providers=[provider_config(upstream_url, name="llm", price_micros=7_000,
                                   route_prices={}, model_prices={}, usage_pricing=usage)],
    )


@pytest.fixture
async def api(credit_settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(credit_settings)) as client:
        yield client


async def _ledger(settings: Settings, agent_id: str) -> list[tuple[str, int]]:
    async with database(settings) as sessions, sessions() as session:
        rows = await session.exec(select(LedgerEntry).where(col(LedgerEntry.agent_id) == agent_id)
                                  .order_by(col(LedgerEntry.created_at)))
        return [(row.kind, row.amount_micros) for row in rows.all()]


@pytest.mark.parametrize(("query", "cost"), [
    ("tokens=1234", 1234 * PER_TOKEN),
    ("tokens=99999", MAX),  # beyond the maximum: the maximum
    ("tokens=1234&stream=1", 1234 * PER_TOKEN),  # the last event of a stream
    ("", MAX),  # no usage reported: the maximum reserved
])
async def test_credits_are_reserved_at_the_maximum_and_charged_the_usage(
    api, credit_settings, query, cost
) -> None:
    key = await signup(api)

    response = await api.get(f"/v1/gateway/llm/usage?{query}", headers=key_headers(key))

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-cost-micros"] == str(cost)
    assert response.headers["x-gateway-balance-micros"] == str(START - cost)
    assert (await balance(api, key))["creditsMicros"] == START - cost
    record = await settled_usage(api, key, response.headers["x-gateway-usage-id"])
    assert (record["status"], record["priceMicros"], record["costMicros"]) == (
        "succeeded", MAX, cost)
    moves = await _ledger(credit_settings, record["agentId"])
    assert ("charge", -MAX) in moves or ("charge", MAX) in moves
    if cost < MAX:
        assert any(kind == "refund" and abs(amount) == MAX - cost for kind, amount in moves)


async def test_a_failed_call_gives_the_whole_reservation_back(api) -> None:
    key = await signup(api)

    response = await api.get("/v1/gateway/llm/status/500", headers=key_headers(key))

    assert response.status_code == 502
    assert (await balance(api, key))["creditsMicros"] == START


async def test_an_answer_too_large_to_read_for_its_usage_is_an_uncharged_502(api) -> None:
    key = await signup(api)

    response = await api.get(f"/v1/gateway/llm/large?bytes={9 * 1024 * 1024}",
                             headers=key_headers(key))

    assert response.status_code == 502
    assert (await balance(api, key))["creditsMicros"] == START
