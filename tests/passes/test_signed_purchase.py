"""Buying passes with signed EIP-3009 authorizations (x402 v2 and v1), settled by the
in-process worker's settlement signer on a real anvil chain."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
from eth_account import Account
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings
from chain.usdc import (
    TokenDomain,
    encode_transfer_with_authorization,
    new_authorization,
    sign_transfer_authorization,
)
from chain.x402 import SignedPayment, decode_payment
from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from workers.runner import start_worker

PRICE_1D = 10_000_000
SIGNER = 2  # anvil account that pays the gas; never used by the tests themselves


@pytest.fixture
def signed_settings(settings_factory, devchain, pay_to) -> Settings:
    return settings_factory(
        redis_url="",  # embedded: the in-process worker settles, the API is told in-process
        **chain_settings(devchain, pay_to, settle_wait=20.0,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )


@pytest.fixture
def worker(signed_settings) -> Iterator[None]:
    started = start_worker(signed_settings, threads=2)
    try:
        yield
    finally:
        started.stop(timeout=10_000)


@pytest.fixture
async def api(signed_settings, worker) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(signed_settings)) as client:
        yield client


async def _payer(devchain, chain_client, usdc: int):
    account = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", account.address, usdc))
    return account


async def _sign(api, account, path: str = "/v1/passes/1d"):
    challenge = await api.post(path)
    assert challenge.status_code == 402
    client = build_payer_client(account, max_amount_micros=100_000_000)
    return await sign_payment_headers(client, headers=dict(challenge.headers),
                                      body=challenge.json())


async def _balance(chain_client, address: str) -> int:
    return await chain_client.balance_of(address)


async def test_a_v2_signed_payment_buys_a_pass_and_moves_the_money_once(
    api, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    headers = (await _sign(api, payer)).v2()

    response = await api.post("/v1/passes/1d", headers=headers)

    assert response.status_code == 201, response.text
    settlement = json.loads(base64.b64decode(response.headers["PAYMENT-RESPONSE"]))
    assert settlement["success"] is True
    assert settlement["transaction"].startswith("0x")
    assert await _balance(chain_client, pay_to) == PRICE_1D
    assert await _balance(chain_client, payer.address) == 0
    key = response.json()["data"]["apiKey"]
    info = await api.get("/v1/api-keys/info", headers={"X-API-Key": key})
    assert info.json()["period"] == "1d"


async def test_a_v1_x_payment_buys_a_pass(api, devchain, chain_client, pay_to):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    headers = (await _sign(api, payer)).v1()

    response = await api.post("/v1/passes/1d", headers=headers)

    assert response.status_code == 201, response.text
    assert "X-PAYMENT-RESPONSE" in response.headers
    assert await _balance(chain_client, pay_to) == PRICE_1D


async def test_the_same_signature_sent_eight_times_at_once_buys_one_key(
    api, signed_settings, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    headers = (await _sign(api, payer)).v2()
    async with AsyncTestClient(app=create_app(signed_settings)) as second:
        clients = [api, second] * 4

        responses = await asyncio.gather(
            *(c.post("/v1/passes/1d", headers=headers) for c in clients)
        )

    keys = {r.json()["data"]["apiKey"] for r in responses if r.status_code == 201}
    others = [r for r in responses if r.status_code != 201]
    assert len(keys) == 1, [r.text for r in responses]
    assert all(r.json()["code"] == "PAYMENT_ALREADY_USED" for r in others)
    assert await _balance(chain_client, pay_to) == PRICE_1D


async def test_a_payer_without_funds_is_refused_and_nothing_moves(api, chain_client, pay_to):
    broke = Account.create()
    headers = (await _sign(api, broke)).v2()

    response = await api.post("/v1/passes/1d", headers=headers)

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert response.json()["details"]["reason"] == "insufficient_balance"
    assert await _balance(chain_client, pay_to) == 0


async def test_a_signature_for_the_wrong_amount_is_refused(api, devchain, chain_client, pay_to):
    payer = await _payer(devchain, chain_client, 100_000_000)
    headers = (await _sign(api, payer, "/v1/passes/1d")).v2()

    response = await api.post("/v1/passes/1w", headers=headers)

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert await _balance(chain_client, pay_to) == 0


async def test_an_authorization_already_executed_on_chain_is_payment_already_used(
    api, signed_settings, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    headers = (await _sign(api, payer)).v2()
    signed = decode_payment(headers, signed_settings.networks().values())
    assert isinstance(signed, SignedPayment)
    # someone else submits the authorization first (the money reaches pay_to that way)
    await transact(chain_client, devchain.accounts[1].address,
                   encode_transfer_with_authorization(signed.authorization, signed.signature))

    response = await api.post("/v1/passes/1d", headers=headers)

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_ALREADY_USED"
    assert await _balance(chain_client, pay_to) == PRICE_1D  # moved once, by the other party


def _x_payment(settings: Settings, account, valid_before: int) -> dict[str, str]:
    """A v1 ``X-PAYMENT`` for the 1d pass, signed by hand: SDK clients pick validBefore
    themselves, and these tests need ones no client library would."""
    network = settings.networks()["local"]
    auth = new_authorization(account.address, settings.chain_pay_to_address, PRICE_1D)
    auth = msgspec.structs.replace(auth, valid_before=valid_before)
    signed = sign_transfer_authorization(account.key, auth, TokenDomain.for_network(network))
    payload = {
        "x402Version": 1, "scheme": "exact", "network": network.name,
        "payload": {"authorization": {
            "from": auth.from_address, "to": auth.to_address, "value": str(auth.value),
            "validAfter": str(auth.valid_after), "validBefore": str(auth.valid_before),
            "nonce": auth.nonce,
        }, "signature": signed.signature},
    }
    return {"X-PAYMENT": base64.b64encode(json.dumps(payload).encode()).decode()}


async def test_an_authorization_valid_past_the_year_9999_buys_a_pass(
    api, signed_settings, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    headers = _x_payment(signed_settings, payer, valid_before=2**63 - 1)

    response = await api.post("/v1/passes/1d", headers=headers)

    assert response.status_code == 201, response.text
    assert response.json()["data"]["apiKey"].startswith("pass_")
    assert await _balance(chain_client, pay_to) == PRICE_1D


async def test_a_never_expiring_max_uint256_authorization_is_payment_invalid(
    api, signed_settings, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    headers = _x_payment(signed_settings, payer, valid_before=2**256 - 1)

    response = await api.post("/v1/passes/1d", headers=headers)

    assert response.status_code == 402, response.text
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert response.json()["details"]["reason"] == "valid_before_too_late"
    assert "PAYMENT-REQUIRED" in response.headers
    assert await _balance(chain_client, pay_to) == 0
