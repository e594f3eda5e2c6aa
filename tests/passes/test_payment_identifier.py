"""Buying a pass with an x402 ``payment-identifier``: a retry gets the first result and is never
charged again, even with a freshly signed authorization; other payers and other terms get 409.

Signed by the x402 SDK's own client (``chain.x402.payer``, the SDK's payment-identifier helper
in its before-payment-creation hook), settled by the in-process worker on a real anvil chain.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from litestar.testing import AsyncTestClient
from x402.extensions.payment_identifier import PAYMENT_IDENTIFIER, generate_payment_id

from app.main import create_app
from app.settings import Settings
from chain.x402 import SignedPayment, decode_payment
from chain.x402.payer import build_payer_client, sign_payment_headers, with_payment_identifier
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from workers.runner import start_worker

PRICE_1D = 10_000_000
SIGNER = 7  # anvil account that pays the gas; never used by the tests themselves


def signed_pass_settings(settings_factory, devchain, pay_to, settle_wait: float = 20.0) -> Settings:
    """Passes sold for signed authorizations, settled by an in-process worker's signer."""
    return settings_factory(
        redis_url="",
        **chain_settings(devchain, pay_to, settle_wait=settle_wait,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )


@pytest.fixture
def signed_settings(settings_factory, devchain, pay_to) -> Settings:
    return signed_pass_settings(settings_factory, devchain, pay_to)


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


async def _signed(api, account, payment_id: str | None, path: str = "/v1/passes/1d"):
    """A fresh authorization (own nonce) for ``path``, with ``payment_id`` if given."""
    challenge = await api.post(path)
    assert challenge.status_code == 402
    client = build_payer_client(account, max_amount_micros=100_000_000)
    if payment_id is not None:
        with_payment_identifier(client, payment_id)
    signed = await sign_payment_headers(client, headers=dict(challenge.headers),
                                        body=challenge.json())
    return signed.v2()


def _nonce(settings: Settings, headers: dict[str, str]) -> str:
    decoded = decode_payment(headers, settings.networks().values())
    assert isinstance(decoded, SignedPayment)
    return decoded.authorization.nonce


async def test_every_pass_402_declares_the_optional_payment_identifier(api):
    response = await api.post("/v1/passes/1d")

    required = json.loads(base64.b64decode(response.headers["PAYMENT-REQUIRED"]))
    declared = required["extensions"][PAYMENT_IDENTIFIER]
    assert declared["info"] == {"required": False}
    assert declared["schema"]["properties"]["id"]["minLength"] == 16


async def test_a_retry_with_a_fresh_authorization_gets_the_same_key_and_is_never_settled(
    api, signed_settings, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, 2 * PRICE_1D)  # could afford two passes
    payment_id = generate_payment_id()
    first = await api.post("/v1/passes/1d", headers=await _signed(api, payer, payment_id))
    assert first.status_code == 201, first.text
    retry_headers = await _signed(api, payer, payment_id)  # the response was "lost"

    retry = await api.post("/v1/passes/1d", headers=retry_headers)

    assert retry.status_code == 201, retry.text
    assert retry.json()["data"]["apiKey"] == first.json()["data"]["apiKey"]
    assert retry.headers["PAYMENT-RESPONSE"] == first.headers["PAYMENT-RESPONSE"]
    assert await chain_client.balance_of(pay_to) == PRICE_1D
    assert await chain_client.balance_of(payer.address) == PRICE_1D
    unused = not await chain_client.authorization_state(
        payer.address, _nonce(signed_settings, retry_headers))
    assert unused  # the fresh authorization can never be spent by passgate: it was not kept


async def test_the_same_identifier_from_another_payer_is_409_and_reveals_nothing(
    api, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    other = await _payer(devchain, chain_client, PRICE_1D)
    payment_id = generate_payment_id()
    first = await api.post("/v1/passes/1d", headers=await _signed(api, payer, payment_id))
    assert first.status_code == 201, first.text

    response = await api.post("/v1/passes/1d", headers=await _signed(api, other, payment_id))

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "CONFLICT"
    assert first.json()["data"]["apiKey"] not in response.text
    assert "pay_" not in json.dumps(response.json().get("details"))
    assert await chain_client.balance_of(pay_to) == PRICE_1D
    assert await chain_client.balance_of(other.address) == PRICE_1D


async def test_the_same_identifier_for_another_period_is_409(api, devchain, chain_client, pay_to):
    payer = await _payer(devchain, chain_client, 100_000_000)
    payment_id = generate_payment_id()
    first = await api.post("/v1/passes/1d", headers=await _signed(api, payer, payment_id))
    assert first.status_code == 201, first.text

    response = await api.post(
        "/v1/passes/1w", headers=await _signed(api, payer, payment_id, "/v1/passes/1w"))

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "CONFLICT"
    assert await chain_client.balance_of(pay_to) == PRICE_1D


async def test_a_forged_retry_signature_is_refused_before_anything_is_revealed(
    api, signed_settings, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    payment_id = generate_payment_id()
    first = await api.post("/v1/passes/1d", headers=await _signed(api, payer, payment_id))
    assert first.status_code == 201, first.text
    headers = await _signed(api, payer, payment_id)
    data = json.loads(base64.b64decode(headers["PAYMENT-SIGNATURE"]))
    data["payload"]["signature"] = "0x" + "11" * 65  # not the payer's signature
    forged = {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(data).encode()).decode()}

    response = await api.post("/v1/passes/1d", headers=forged)

    assert response.status_code == 402, response.text
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert first.json()["data"]["apiKey"] not in response.text
    assert await chain_client.balance_of(pay_to) == PRICE_1D


async def test_an_expired_retry_authorization_is_refused_as_expired(
    api, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    payment_id = generate_payment_id()
    first = await api.post("/v1/passes/1d", headers=await _signed(api, payer, payment_id))
    assert first.status_code == 201, first.text
    headers = await _signed(api, payer, payment_id)
    data = json.loads(base64.b64decode(headers["PAYMENT-SIGNATURE"]))
    data["payload"]["authorization"]["validBefore"] = "1000"  # long gone
    expired = {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(data).encode()).decode()}

    response = await api.post("/v1/passes/1d", headers=expired)

    assert response.status_code == 402, response.text
    assert response.json()["details"]["reason"] == "expired"
    assert first.json()["data"]["apiKey"] not in response.text


@pytest.mark.parametrize("bad_id", ["short", "has spaces in it!!", "x" * 129])
async def test_a_malformed_identifier_is_a_400_naming_the_problem(api, devchain, chain_client,
                                                                   pay_to, bad_id):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    headers = await _signed(api, payer, generate_payment_id())
    data = json.loads(base64.b64decode(headers["PAYMENT-SIGNATURE"]))
    data["extensions"][PAYMENT_IDENTIFIER]["info"]["id"] = bad_id
    bad = {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(data).encode()).decode()}

    response = await api.post("/v1/passes/1d", headers=bad)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert PAYMENT_IDENTIFIER in response.json()["error"]
    assert await chain_client.balance_of(pay_to) == 0


async def test_an_identifier_in_the_spec_example_shape_is_taken(
    api, devchain, chain_client, pay_to
):
    # The spec's PaymentPayload example echoes only {"info": {"id": ...}}, no "required".
    payer = await _payer(devchain, chain_client, PRICE_1D)
    payment_id = generate_payment_id()
    headers = await _signed(api, payer, payment_id)
    data = json.loads(base64.b64decode(headers["PAYMENT-SIGNATURE"]))
    data["extensions"][PAYMENT_IDENTIFIER] = {"info": {"id": payment_id}}
    bare = {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(data).encode()).decode()}
    first = await api.post("/v1/passes/1d", headers=bare)
    assert first.status_code == 201, first.text

    retry = await api.post("/v1/passes/1d", headers=await _signed(api, payer, payment_id))

    assert retry.status_code == 201, retry.text
    assert retry.json()["data"]["apiKey"] == first.json()["data"]["apiKey"]
    assert await chain_client.balance_of(pay_to) == PRICE_1D


@pytest.mark.parametrize("entry", [
    "not an object", {"info": "not an object"}, {"info": {"id": 12345678901234567}},
    {"info": {"id": "pay_0123456789abcdef", "required": "yes"}},
])
async def test_a_malformed_extension_entry_is_a_400(api, devchain, chain_client, pay_to, entry):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    headers = await _signed(api, payer, generate_payment_id())
    data = json.loads(base64.b64decode(headers["PAYMENT-SIGNATURE"]))
    data["extensions"][PAYMENT_IDENTIFIER] = entry
    bad = {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(data).encode()).decode()}

    response = await api.post("/v1/passes/1d", headers=bad)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert await chain_client.balance_of(pay_to) == 0


async def test_concurrent_duplicates_with_one_identifier_buy_one_pass(
    api, signed_settings, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, 8 * PRICE_1D)
    payment_id = generate_payment_id()
    # Eight separately signed authorizations (eight nonces), one identifier, two app instances.
    headers = [await _signed(api, payer, payment_id) for _ in range(8)]
    async with AsyncTestClient(app=create_app(signed_settings)) as second:
        clients = [api, second] * 4

        responses = await asyncio.gather(
            *(c.post("/v1/passes/1d", headers=h) for c, h in zip(clients, headers, strict=True))
        )

    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert len({r.json()["data"]["apiKey"] for r in responses}) == 1
    assert await chain_client.balance_of(pay_to) == PRICE_1D
    assert await chain_client.balance_of(payer.address) == 7 * PRICE_1D


async def test_without_an_identifier_a_fresh_authorization_buys_a_second_pass(
    api, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, 2 * PRICE_1D)
    first = await api.post("/v1/passes/1d", headers=await _signed(api, payer, None))

    second = await api.post("/v1/passes/1d", headers=await _signed(api, payer, None))

    assert first.status_code == second.status_code == 201
    assert first.json()["data"]["apiKey"] != second.json()["data"]["apiKey"]
    assert await chain_client.balance_of(pay_to) == 2 * PRICE_1D


def _with_id(headers: dict[str, str], payment_id: str) -> dict[str, str]:
    data = json.loads(base64.b64decode(headers["PAYMENT-SIGNATURE"]))
    data["extensions"][PAYMENT_IDENTIFIER]["info"]["id"] = payment_id
    return {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(data).encode()).decode()}


async def test_the_same_payment_sent_again_gets_the_same_key_but_not_under_another_identifier(
    api, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    headers = await _signed(api, payer, generate_payment_id())
    first = await api.post("/v1/passes/1d", headers=headers)
    assert first.status_code == 201, first.text

    same = await api.post("/v1/passes/1d", headers=headers)
    renamed = await api.post("/v1/passes/1d", headers=_with_id(headers, generate_payment_id()))

    assert same.status_code == 201, same.text
    assert same.json()["data"]["apiKey"] == first.json()["data"]["apiKey"]
    assert renamed.status_code == 409, renamed.text
    assert renamed.json()["code"] == "CONFLICT"
    assert await chain_client.balance_of(pay_to) == PRICE_1D


async def test_a_retry_while_the_first_still_settles_gets_the_same_pending_payment(
    settings_factory, devchain, chain_client, pay_to
):
    settings = signed_pass_settings(settings_factory, devchain, pay_to, settle_wait=0.0)
    payer = await _payer(devchain, chain_client, 2 * PRICE_1D)
    payment_id = generate_payment_id()
    async with AsyncTestClient(app=create_app(settings)) as api:
        first = await api.post("/v1/passes/1d", headers=await _signed(api, payer, payment_id))
        assert first.status_code == 202, first.text  # no worker yet: nothing settles

        retry = await api.post("/v1/passes/1d", headers=await _signed(api, payer, payment_id))

        assert retry.status_code == 202, retry.text
        assert retry.json()["paymentId"] == first.json()["paymentId"]
        started = start_worker(settings, threads=2)
        try:
            claim = None
            for _ in range(100):  # bounded: 20 s
                claim = await api.get(f"/v1/payments/{retry.json()['paymentId']}",
                                      headers={"X-Claim-Token": retry.json()["claimToken"]})
                if claim.status_code == 200 and claim.json().get("status") == "settled":
                    break
                await asyncio.sleep(0.2)
        finally:
            started.stop(timeout=10_000)
    assert claim is not None
    assert claim.status_code == 200, claim.text
    assert claim.json()["result"]["data"]["apiKey"].startswith("pass_")
    assert await chain_client.balance_of(pay_to) == PRICE_1D
    assert await chain_client.balance_of(payer.address) == PRICE_1D


async def _rebuilt_from_chain(api, chain_client, settlement_header: str,
                              payment_id: str | None) -> dict[str, str]:
    """The PAYMENT-SIGNATURE a stranger can build from the settlement transaction alone."""
    settlement = json.loads(base64.b64decode(settlement_header))
    tx = await chain_client.rpc("eth_getTransactionByHash", [settlement["transaction"]])
    data = bytes.fromhex(tx["input"].removeprefix("0x"))
    frm, to, value, after, before, nonce, signature = abi_decode(
        ["address", "address", "uint256", "uint256", "uint256", "bytes32", "bytes"], data[4:])
    challenge = await api.post("/v1/passes/1d")
    required = json.loads(base64.b64decode(challenge.headers["PAYMENT-REQUIRED"]))
    payload: dict = {
        "x402Version": 2, "resource": required["resource"], "accepted": required["accepts"][0],
        "payload": {"authorization": {"from": frm, "to": to, "value": str(value),
                                      "validAfter": str(after), "validBefore": str(before),
                                      "nonce": "0x" + nonce.hex()},
                    "signature": "0x" + signature.hex()},
    }
    if payment_id is not None:
        payload["extensions"] = {PAYMENT_IDENTIFIER: {"info": {"id": payment_id}}}
    return {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(payload).encode()).decode()}


@pytest.mark.parametrize("guess", [None, "pay_00000000000000000000000000000000"])
async def test_a_payment_rebuilt_from_its_settlement_transaction_gets_no_key(
    api, devchain, chain_client, pay_to, guess
):
    payer = await _payer(devchain, chain_client, PRICE_1D)
    first = await api.post("/v1/passes/1d",
                           headers=await _signed(api, payer, generate_payment_id()))
    assert first.status_code == 201, first.text
    stolen = await _rebuilt_from_chain(api, chain_client, first.headers["PAYMENT-RESPONSE"], guess)

    response = await api.post("/v1/passes/1d", headers=stolen)

    assert response.status_code == 409, response.text
    assert first.json()["data"]["apiKey"] not in response.text


async def test_a_pass_bought_without_an_identifier_is_not_handed_to_a_header_rebuilt_from_chain(
    api, devchain, chain_client, pay_to
):
    # given a pass bought by an x402 client that sends no payment identifier
    payer = await _payer(devchain, chain_client, PRICE_1D)
    first = await api.post("/v1/passes/1d", headers=await _signed(api, payer, None))
    assert first.status_code == 201, first.text

    # when a stranger rebuilds the exact payment header from the settlement transaction
    stolen = await _rebuilt_from_chain(api, chain_client, first.headers["PAYMENT-RESPONSE"], None)
    response = await api.post("/v1/passes/1d", headers=stolen)

    # then the payment is used: no key, no claim token, and no second charge
    assert response.status_code == 402, response.text
    assert response.json()["code"] == "PAYMENT_ALREADY_USED"
    assert first.json()["data"]["apiKey"] not in response.text
    assert "claimToken" not in response.text
    assert await chain_client.balance_of(pay_to) == PRICE_1D


async def test_a_repeat_while_the_first_still_settles_gets_no_claim_token_of_its_own(
    settings_factory, devchain, chain_client, pay_to
):
    # given a purchase without an identifier still pending (no worker yet), with its claim token
    settings = settings_factory(
        redis_url="",
        **chain_settings(devchain, pay_to, settle_wait=0.0,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )
    payer = await _payer(devchain, chain_client, PRICE_1D)
    async with AsyncTestClient(app=create_app(settings)) as api:
        headers = await _signed(api, payer, None)
        first = await api.post("/v1/passes/1d", headers=headers)
        assert first.status_code == 202, first.text

        # when the same header is sent again (by the buyer or by anyone who copied it)
        again = await api.post("/v1/passes/1d", headers=headers)

        # then it gets no token, and the buyer's token still claims the key once settled
        assert again.status_code == 402, again.text
        assert again.json()["code"] == "PAYMENT_ALREADY_USED"
        assert again.json()["details"]["paymentId"] == first.json()["paymentId"]
        assert "claimToken" not in again.text
        started = start_worker(settings, threads=2)
        try:
            claim = None
            for _ in range(100):  # bounded: 20 s
                claim = await api.get(f"/v1/payments/{first.json()['paymentId']}",
                                      headers={"X-Claim-Token": first.json()["claimToken"]})
                if claim.status_code == 200 and claim.json().get("status") == "settled":
                    break
                await asyncio.sleep(0.2)
        finally:
            started.stop(timeout=10_000)
    assert claim is not None
    assert claim.status_code == 200, claim.text
    assert claim.json()["result"]["data"]["apiKey"].startswith("pass_")
    assert await chain_client.balance_of(pay_to) == PRICE_1D
