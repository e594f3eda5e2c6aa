"""Payments on /metrics and in the logs: the settlement latency the signer's worker observed,
payments by status read from the database, and a purchase's log lines (with their ids, without
its signature). The worker runs in the API's process (embedded mode, as in the one-box
deployment), so its metrics are in the same registry as the API's."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from eth_account import Account
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings
from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from tests.logcapture import captured, json_lines
from tests.scrape import scrape
from workers.runner import start_worker

PRICE_1D = 10_000_000
SIGNER = 2
SETTLED_COUNT = "passgate_payment_settlement_seconds_count"


@pytest.fixture
def metered_settings(settings_factory, devchain, pay_to) -> Settings:
    return settings_factory(
        redis_url="", metrics_cache_seconds=0, log_format="json", log_level="DEBUG",
        **chain_settings(devchain, pay_to, settle_wait=20.0,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )


@pytest.fixture
def worker(metered_settings) -> Iterator[None]:
    started = start_worker(metered_settings, threads=2)
    try:
        yield
    finally:
        started.stop(timeout=10_000)


@pytest.fixture
async def api(metered_settings, worker) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(metered_settings)) as client:
        yield client


async def _signed_headers(api, devchain, chain_client) -> dict[str, str]:
    """A payer with the price of a pass, and its signed payment for one."""
    payer = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", payer.address, PRICE_1D))
    challenge = await api.post("/v1/passes/1d")
    signed = await sign_payment_headers(
        build_payer_client(payer, max_amount_micros=PRICE_1D),
        headers=dict(challenge.headers), body=challenge.json(),
    )
    headers: dict[str, str] = signed.v2()
    return headers


async def test_a_settled_purchase_observes_its_settlement_latency_and_counts_as_settled(
    api, devchain, chain_client
):
    # Given a signed payment for a pass, and the figures before
    headers = await _signed_headers(api, devchain, chain_client)
    labels = {"scheme": "exact", "network": "local"}
    before = await scrape(api)

    # When it buys the pass and the signer settles it
    response = await api.post("/v1/passes/1d", headers=headers)

    # Then one settlement latency was observed, and one more payment is settled
    assert response.status_code == 201, response.text
    after = await scrape(api)
    assert after.value(SETTLED_COUNT, **labels) == before.value(SETTLED_COUNT, **labels) + 1
    settled = {"status": "settled", **labels}
    assert after.value("passgate_payments", **settled) == \
        before.value("passgate_payments", **settled) + 1
    assert after.value("passgate_payment_settlement_seconds_sum", **labels) > \
        before.value("passgate_payment_settlement_seconds_sum", **labels)


async def test_a_purchase_logs_its_payment_id_but_not_its_signature_key_or_signer_key(
    api, devchain, chain_client, capsys
):
    # Given a signed payment for a pass
    headers = await _signed_headers(api, devchain, chain_client)
    [encoded] = [value for name, value in headers.items() if name.upper() == "PAYMENT-SIGNATURE"]
    signature = json.loads(base64.b64decode(encoded))["payload"]["signature"]
    capsys.readouterr()

    # When it buys the pass, settled by the in-process worker's signer
    response = await api.post("/v1/passes/1d", headers=headers)
    output = captured(capsys)

    # Then the request and the settlement job logged lines naming the payment, and neither
    # the signature, the pass key nor the signer's private key was written
    assert response.status_code == 201, response.text
    lines = json_lines(output)
    # (The in-process worker may still log about an earlier test's payment meanwhile.)
    named = {line["payment_id"] for line in lines
             if line["logger"] == "passgate.access" and "payment_id" in line}
    assert len(named) == 1
    [payment_id] = named
    assert any(line.get("actor") == "settlement_settle" and line.get("payment_id") == payment_id
               for line in lines)
    secrets = [signature, signature.removeprefix("0x"), response.json()["data"]["apiKey"],
               devchain.accounts[SIGNER].private_key.removeprefix("0x")]
    assert [secret for secret in secrets if secret in output] == []
