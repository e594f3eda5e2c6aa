"""Gateway calls paid per call with x402: settled only when the upstream answered 2xx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from eth_account import Account
from litestar.testing import AsyncTestClient

from app.gateway.incoming import MAX_GATEWAY_PATH
from app.main import create_app
from chain.x402 import SignedPayment, decode_payment
from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from tests.gateway.helpers import (
    PRICE,
    free_port,
    provider_config,
    start_uvicorn,
    stop,
    wait_until_up,
)
from workers.runner import start_worker

SIGNER = 5


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    proc = start_uvicorn("tests.gateway.upstream:app", port)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/__hits", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def gw_settings(settings_factory, devchain, pay_to, upstream):
    return settings_factory(
        redis_url="",
        providers=[provider_config(upstream),
                   provider_config(f"http://127.0.0.1:{free_port()}", name="down", headers={})],
        **chain_settings(devchain, pay_to, settle_wait=20.0,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )


@pytest.fixture
async def api(gw_settings) -> AsyncIterator[AsyncTestClient]:
    worker = start_worker(gw_settings, threads=2)
    try:
        async with AsyncTestClient(app=create_app(gw_settings)) as client:
            yield client
    finally:
        worker.stop(timeout=10_000)


async def _payer(devchain, chain_client):
    account = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", account.address, 1_000_000))
    return account


async def _signed(api, account, path: str) -> dict[str, str]:
    challenge = await api.post(path, json={"q": 1})
    assert challenge.status_code == 402, challenge.text
    signed = await sign_payment_headers(build_payer_client(account, max_amount_micros=1_000_000),
                                        headers=dict(challenge.headers), body=challenge.json())
    return signed.v2()


async def test_a_call_without_a_key_answers_402_with_the_provider_price(api):
    response = await api.post("/v1/gateway/echo/echo/x", json={"q": 1})

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_REQUIRED"
    assert response.json()["accepts"][0]["maxAmountRequired"] == str(PRICE)


async def test_a_paid_call_is_forwarded_and_settled_once(api, devchain, chain_client, pay_to):
    payer = await _payer(devchain, chain_client)
    headers = await _signed(api, payer, "/v1/gateway/echo/echo/x")

    response = await api.post("/v1/gateway/echo/echo/x", json={"q": 1}, headers=headers)
    again = await api.post("/v1/gateway/echo/echo/x", json={"q": 1}, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/echo/x"
    assert "PAYMENT-RESPONSE" in response.headers
    assert await chain_client.balance_of(pay_to) == PRICE
    assert again.status_code == 402
    assert again.json()["code"] == "PAYMENT_ALREADY_USED"


async def test_an_upstream_failure_is_never_charged_and_the_authorization_stays_unused(
    api, gw_settings, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client)
    headers = await _signed(api, payer, "/v1/gateway/down/anything")
    signed = decode_payment(headers, gw_settings.networks().values())
    assert isinstance(signed, SignedPayment)

    response = await api.post("/v1/gateway/down/anything", json={"q": 1}, headers=headers)

    assert response.status_code == 502
    assert response.json()["code"] == "UPSTREAM_ERROR"
    assert await chain_client.balance_of(pay_to) == 0
    nonce = signed.authorization.nonce
    assert await chain_client.authorization_state(payer.address, nonce) is False


async def test_a_payment_signed_for_another_call_is_refused(api, devchain, chain_client, pay_to):
    payer = await _payer(devchain, chain_client)
    headers = await _signed(api, payer, "/v1/gateway/echo/echo/premium")  # 50,000 micros

    response = await api.post("/v1/gateway/echo/echo/x", json={"q": 1}, headers=headers)

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert await chain_client.balance_of(pay_to) == 0


async def test_a_pushed_transfer_is_refused_before_anything_is_recorded(
    api, devchain, chain_client, pay_to
):
    # Given a USDC transfer to the pay-to address, named as the payment of a gateway call
    sender = devchain.accounts[1].address
    tx_hash = await transact(chain_client, sender,
                             encode_call("transfer(address,uint256)", pay_to, 10_000_000))
    pushed = {"X-Payment": tx_hash, "X-Payment-Chain": "local"}

    response = await api.post("/v1/gateway/echo/echo/x", json={"q": 1}, headers=pushed)

    # Then the call is refused with the requirements, and the transfer was not used up: it can
    # still buy what takes pushed transfers
    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert "signed authorization" in response.json()["error"]
    assert "PAYMENT-REQUIRED" in response.headers
    bought = await api.post("/v1/passes/1d", headers=pushed)
    assert bought.status_code == 201, bought.text


async def test_a_paid_call_on_a_long_path_is_served_and_its_signature_never_logged(
    api, devchain, chain_client, pay_to, caplog
):
    # given a payment signed for a call whose path is as long as a gateway path may be, and
    # passgate logging everything (libraries stay at WARNING, as the app configures them)
    caplog.set_level(logging.DEBUG, logger="passgate")
    path = "/v1/gateway/echo/echo/" + "a" * (MAX_GATEWAY_PATH - len("/echo/"))
    payer = await _payer(devchain, chain_client)
    headers = await _signed(api, payer, path)
    signed = decode_payment(headers, api.app.state.runtime.settings.networks().values())
    assert isinstance(signed, SignedPayment)

    # when the call is made
    response = await api.post(path, json={"q": 1}, headers=headers)

    # then it is served and paid, and no log line holds the signature
    assert response.status_code == 200, response.text
    assert await chain_client.balance_of(pay_to) == PRICE
    signature = signed.signature.removeprefix("0x").lower()
    assert signature not in caplog.text.lower()


async def test_a_gateway_path_past_the_limit_is_refused_before_a_price_is_asked(api):
    # when a call without a key names a path one character too long
    path = "/v1/gateway/echo/echo/" + "a" * (MAX_GATEWAY_PATH - len("/echo/") + 1)
    response = await api.post(path, json={"q": 1})

    # then it is a 400, not a 402 asking to pay for it
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
