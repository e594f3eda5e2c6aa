"""Usage-priced (upto) calls retried with their x402 payment identifier, paid by the official
Python SDK's upto client (its payment-identifier helper adds the identifier): a retry with a
freshly signed Permit2 authorization gets the kept answer and the same PAYMENT-RESPONSE (the
amount actually charged), never a second upstream call or settlement, even once the payer's
balance is gone; another payer, other terms or the other scheme is 409; concurrent duplicates
make one payment."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import httpx
from eth_account.signers.local import LocalAccount
from litestar.testing import AsyncTestClient
from x402 import x402Client
from x402.extensions.payment_identifier import PAYMENT_IDENTIFIER, generate_payment_id
from x402.http.clients.httpx import x402AsyncTransport
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.mechanisms.evm.upto import UptoEvmClientScheme

from app.main import create_app
from chain.x402.payer import build_payer_client, sign_payment_headers, with_payment_identifier
from tests.fixtures.chain import encode_call, transact
from tests.upto.test_upto_calls import (
    FIXED,
    FUNDS,
    MAX,
    PER_TOKEN,
    _App,
    _payer,
    _payment_of,
    api,
    upto_settings,
    worker,
)

__all__ = ["api", "upto_settings", "worker"]


def _upto_client(payer: LocalAccount, payment_id: str) -> x402Client:
    client = x402Client()
    client.register("eip155:*", UptoEvmClientScheme(EthAccountSigner(payer)))
    client.set_spend_controls({"allowed_assets": True, "max_amount_per_payment": "$1"})
    return with_payment_identifier(client, payment_id)


def _sdk(api: AsyncTestClient, client: x402Client,
         sent: list[httpx.Request] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=x402AsyncTransport(client, transport=_App(api, sent)),
                             base_url=str(api.base_url), timeout=60)


async def _call(api: AsyncTestClient, client: x402Client, url: str,
                sent: list[httpx.Request] | None = None) -> httpx.Response:
    async with _sdk(api, client, sent) as sdk:
        return await sdk.get(url)


async def _hits(upstream_url: str) -> int:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{upstream_url}/__hits", params={"path": "/usage"})
    return int(response.json()["hits"])


def _url(tokens: int) -> str:
    # Each test's own call (the terms include the query): a unique tag beside the usage.
    return f"/v1/gateway/llm/usage?tokens={tokens}&t={uuid.uuid4().hex}"


def _settlement(response: httpx.Response) -> dict[str, str]:
    decoded: dict[str, str] = json.loads(base64.b64decode(response.headers["PAYMENT-RESPONSE"]))
    return decoded


async def test_a_retry_with_a_fresh_permit2_authorization_gets_the_kept_answer(
    api, admin_headers, upstream_url, devchain, chain_client, pay_to
) -> None:
    payer, payment_id = await _payer(devchain, chain_client), generate_payment_id()
    url, charged = _url(321), 321 * PER_TOKEN
    sent: list[httpx.Request] = []
    first = await _call(api, _upto_client(payer, payment_id), url, sent)
    assert first.status_code == 200, first.text
    assert _settlement(first)["amount"] == str(charged)
    first_header = sent[-1].headers["PAYMENT-SIGNATURE"]
    hits = await _hits(upstream_url)
    # The first settlement may leave too little for a second maximum: here nothing at all.
    await transact(chain_client, payer.address, encode_call(
        "transfer(address,uint256)", devchain.accounts[0].address, FUNDS - charged))

    retried: list[httpx.Request] = []
    retry = await _call(api, _upto_client(payer, payment_id), url, retried)
    again = await api.get(url, headers={"PAYMENT-SIGNATURE": first_header})

    assert retry.status_code == 200, retry.text
    assert retried[-1].headers["PAYMENT-SIGNATURE"] != first_header  # freshly signed
    for replay in (retry, again):
        assert replay.status_code == 200, replay.text
        assert replay.content == first.content
        assert replay.headers["PAYMENT-RESPONSE"] == first.headers["PAYMENT-RESPONSE"]
        assert replay.headers["x-gateway-cost-micros"] == str(charged)
    assert _settlement(retry)["amount"] == str(charged)
    assert await _hits(upstream_url) == hits
    assert await chain_client.balance_of(pay_to) == charged
    payment = await _payment_of(api, admin_headers, payer)  # the one payment
    assert (payment["status"], payment["amountMicros"]) == ("settled", charged)


async def test_the_same_authorization_without_its_identifier_is_refused(
    api, upstream_url, devchain, chain_client, pay_to
) -> None:
    payer, payment_id = await _payer(devchain, chain_client), generate_payment_id()
    url = _url(50)
    sent: list[httpx.Request] = []
    first = await _call(api, _upto_client(payer, payment_id), url, sent)
    assert first.status_code == 200, first.text
    data = json.loads(base64.b64decode(sent[-1].headers["PAYMENT-SIGNATURE"]))
    data.pop("extensions")
    stripped = base64.b64encode(json.dumps(data).encode()).decode()
    hits = await _hits(upstream_url)

    response = await api.get(url, headers={"PAYMENT-SIGNATURE": stripped})

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "CONFLICT"
    assert first.text not in response.text
    assert await _hits(upstream_url) == hits
    assert await chain_client.balance_of(pay_to) == 50 * PER_TOKEN


async def test_another_payer_or_other_terms_with_the_identifier_is_409_revealing_nothing(
    api, upstream_url, devchain, chain_client, pay_to
) -> None:
    payer, other = await _payer(devchain, chain_client), await _payer(devchain, chain_client)
    payment_id, url = generate_payment_id(), _url(40)
    first = await _call(api, _upto_client(payer, payment_id), url)
    assert first.status_code == 200, first.text
    hits = await _hits(upstream_url)

    stranger = await _call(api, _upto_client(other, payment_id), url)
    other_call = await _call(api, _upto_client(payer, payment_id), _url(40))

    for response in (stranger, other_call):
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "CONFLICT"
        assert "PAYMENT-RESPONSE" not in response.headers
        assert first.text not in response.text
    assert stranger.json()["error"] == other_call.json()["error"]
    assert await _hits(upstream_url) == hits
    assert await chain_client.balance_of(pay_to) == 40 * PER_TOKEN
    assert await chain_client.balance_of(other.address) == FUNDS


async def test_an_exact_and_an_upto_payment_never_share_an_identifier(
    api, upstream_url, devchain, chain_client, pay_to
) -> None:
    payer = await _payer(devchain, chain_client)
    upto_first, exact_first = generate_payment_id(), generate_payment_id()
    upto_url, exact_url = _url(30), _url(30)
    exact = with_payment_identifier(build_payer_client(payer, max_amount_micros=MAX),
                                    exact_first)
    assert (await _call(api, _upto_client(payer, upto_first), upto_url)).status_code == 200
    assert (await _call(api, exact, exact_url)).status_code == 200
    hits = await _hits(upstream_url)

    exact_retry = with_payment_identifier(build_payer_client(payer, max_amount_micros=MAX),
                                          upto_first)
    as_exact = await _call(api, exact_retry, upto_url)
    as_upto = await _call(api, _upto_client(payer, exact_first), exact_url)

    assert (as_exact.status_code, as_exact.json()["code"]) == (409, "CONFLICT")
    assert (as_upto.status_code, as_upto.json()["code"]) == (409, "CONFLICT")
    assert await _hits(upstream_url) == hits
    assert await chain_client.balance_of(pay_to) == 30 * PER_TOKEN + FIXED


async def test_a_forged_fresh_authorization_is_refused(
    api, upstream_url, devchain, chain_client, pay_to
) -> None:
    payer, payment_id = await _payer(devchain, chain_client), generate_payment_id()
    url = _url(20)
    first = await _call(api, _upto_client(payer, payment_id), url)
    assert first.status_code == 200, first.text
    challenge = await api.get(url)
    fresh = (await sign_payment_headers(_upto_client(payer, payment_id),
                                        headers=dict(challenge.headers))).v2()
    data = json.loads(base64.b64decode(fresh["PAYMENT-SIGNATURE"]))
    signature = data["payload"]["signature"]
    data["payload"]["signature"] = signature[:-4] + ("00" if signature[-4:-2] != "00" else "11") \
        + signature[-2:]
    assert data["extensions"][PAYMENT_IDENTIFIER]["info"]["id"] == payment_id
    forged = base64.b64encode(json.dumps(data).encode()).decode()
    hits = await _hits(upstream_url)

    response = await api.get(url, headers={"PAYMENT-SIGNATURE": forged})

    assert response.status_code == 402, response.text
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert first.text not in response.text
    assert await _hits(upstream_url) == hits
    assert await chain_client.balance_of(pay_to) == 20 * PER_TOKEN


async def test_concurrent_fresh_authorizations_with_one_identifier_make_one_payment(
    api, admin_headers, upto_settings, upstream_url, devchain, chain_client, pay_to
) -> None:
    payer, payment_id = await _payer(devchain, chain_client), generate_payment_id()
    url = _url(66)
    challenge = await api.get(url)
    signed = [(await sign_payment_headers(_upto_client(payer, payment_id),
                                          headers=dict(challenge.headers))).v2()
              for _ in range(4)]
    hits = await _hits(upstream_url)

    async with AsyncTestClient(app=create_app(upto_settings)) as second:
        responses = await asyncio.gather(*(
            client.get(url, headers=headers)
            for client, headers in zip([api, second] * 2, signed, strict=True)))

    served = [r for r in responses if r.status_code == 200]
    assert served, [r.text for r in responses]
    assert all(r.content == served[0].content for r in served)
    assert all(r.json()["code"] == "CONFLICT" for r in responses if r.status_code != 200), \
        [r.text for r in responses]
    assert await _hits(upstream_url) == hits + 1
    assert await chain_client.balance_of(pay_to) == 66 * PER_TOKEN
    assert (await _payment_of(api, admin_headers, payer))["amountMicros"] == 66 * PER_TOKEN
    retry = await _call(api, _upto_client(payer, payment_id), url)
    assert retry.status_code == 200, retry.text
    assert retry.content == served[0].content


async def test_a_fresh_retry_for_another_maximum_is_refused(
    api, upstream_url, devchain, chain_client, pay_to
) -> None:
    payer, payment_id = await _payer(devchain, chain_client), generate_payment_id()
    url = _url(10)
    first = await _call(api, _upto_client(payer, payment_id), url)
    assert first.status_code == 200, first.text
    challenge = await api.get(url)
    required = json.loads(base64.b64decode(challenge.headers["PAYMENT-REQUIRED"]))
    for offer in required["accepts"]:
        if offer["scheme"] == "upto":
            offer["amount"] = str(MAX - 1)
    lowered = base64.b64encode(json.dumps(required).encode()).decode()
    fresh = (await sign_payment_headers(_upto_client(payer, payment_id),
                                        headers={"PAYMENT-REQUIRED": lowered})).v2()
    hits = await _hits(upstream_url)

    response = await api.get(url, headers=fresh)

    assert response.status_code == 402, response.text
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert response.json()["details"]["reason"] == "permit2_amount_mismatch"
    assert first.text not in response.text
    assert await _hits(upstream_url) == hits
    assert await chain_client.balance_of(pay_to) == 10 * PER_TOKEN
