"""x402 payments enabled without a settlement signer: a signed payment could never settle, so it
is refused with 503 before anything is verified or recorded, and /v1/health says why.

Pushed transfers need no signer (the chain watcher confirms them):
``tests/passes/test_pass_purchase.py`` buys passes with them on exactly this configuration
(``paid_settings`` has no signer key).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from eth_account import Account
from litestar.testing import AsyncTestClient

from app.main import create_app
from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from tests.gateway.helpers import provider_config

PRICE_1D = 10_000_000


@pytest.fixture
async def api(settings_factory, devchain, pay_to) -> AsyncIterator[AsyncTestClient]:
    settings = settings_factory(
        # The shared test database may hold a stale watcher row for this chain; only the
        # signer's part of the health answer is under test here.
        chain_unhealthy_after_seconds=10**9,
        providers=[provider_config("http://127.0.0.1:9")],
        **chain_settings(devchain, pay_to),
    )
    assert settings.chain_signer_private_key is None
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def _funded_payer(devchain, chain_client):
    account = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", account.address, PRICE_1D))
    return account


async def test_a_signed_payment_without_a_signer_is_503_and_nothing_is_recorded(
    api, devchain, chain_client, admin_headers
):
    # Given a funded payer holding a signed authorization for a pass
    payer = await _funded_payer(devchain, chain_client)
    challenge = await api.post("/v1/passes/1d")
    signed = await sign_payment_headers(build_payer_client(payer, max_amount_micros=PRICE_1D),
                                        headers=dict(challenge.headers), body=challenge.json())

    # When it pays
    response = await api.post("/v1/passes/1d", headers=signed.v2())

    # Then the payment is refused as a service problem, and no payment exists for the payer
    assert challenge.status_code == 402
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert "PASSGATE_CHAIN_SIGNER_PRIVATE_KEY" in response.json()["error"]
    recorded = await api.get("/admin/v1/payments", params={"payer": payer.address},
                             headers=admin_headers)
    assert recorded.status_code == 200
    assert recorded.json()["data"] == []
    assert await chain_client.balance_of(payer.address) == PRICE_1D


async def test_a_gateway_call_paid_per_call_is_503_rather_than_a_402_it_could_not_honour(api):
    response = await api.post("/v1/gateway/echo/echo/x", json={"q": 1})

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert "payment-required" not in response.headers


async def test_health_is_degraded_and_says_the_signer_is_missing(api):
    response = await api.get("/v1/health")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "degraded"
    assert body["signer"]["status"] == "not_configured"
    assert any("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY" in reason for reason in body["reasons"])


async def test_health_names_the_signer_address_when_one_is_configured(
    settings_factory, devchain, pay_to
):
    signer = devchain.accounts[7]
    settings = settings_factory(chain_unhealthy_after_seconds=10**9, **chain_settings(
        devchain, pay_to, chain_signer_private_key=signer.private_key))

    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/v1/health")

    signer_view = response.json()["signer"]
    assert (signer_view["configured"], signer_view["address"]) == (True, signer.address)
    assert not any("SIGNER" in reason for reason in response.json()["reasons"])


async def test_health_without_x402_payments_has_no_signer_to_miss(client):
    response = await client.get("/v1/health")

    assert response.json()["signer"]["status"] == "unused"
    assert not any("signer" in reason for reason in response.json()["reasons"])
