"""Buying key passes: the 402 challenge, pushed-transfer payments, replays and refusals."""

from __future__ import annotations

import base64
import json

from eth_account import Account
from x402.http import decode_payment_required_header

from chain.devchain import DevChain
from tests.factories import key_headers, register_agent
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.chainapp import link_wallet

PRICE_1D = 10_000_000


async def _push_usdc(chain_client, devchain: DevChain, to: str, amount: int) -> str:
    sender = devchain.accounts[1].address
    call = encode_call("transfer(address,uint256)", to, amount)
    return await transact(chain_client, sender, call)


def _push_headers(tx_hash: str) -> dict[str, str]:
    return {"X-Payment": tx_hash, "X-Payment-Chain": "local"}


async def test_an_unknown_period_is_invalid_duration_before_any_payment(paid_client):
    response = await paid_client.post("/v1/passes/2d")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_DURATION"
    assert response.json()["error"] == "Use 1d, 1w, or 4w."
    assert "payment-required" not in response.headers


async def test_a_pass_without_payment_answers_402_with_v1_and_v2_requirements(
    paid_client, pay_to, devchain
):
    response = await paid_client.post("/v1/passes/1d")

    assert response.status_code == 402
    body = response.json()
    assert body["code"] == "PAYMENT_REQUIRED"
    assert body["x402Version"] == 1
    v1 = body["accepts"][0]
    assert v1["maxAmountRequired"] == str(PRICE_1D)
    assert v1["payTo"].lower() == pay_to.lower()
    required = decode_payment_required_header(response.headers["PAYMENT-REQUIRED"])
    offer = required.accepts[0]
    assert required.x402_version == 2
    assert offer.network == f"eip155:{devchain.chain_id}"
    assert offer.amount == str(PRICE_1D)
    assert offer.extra["name"] == "USDC"
    assert offer.extra["version"] == "2"


async def test_a_pushed_transfer_buys_a_1d_pass_with_the_spec_body(
    paid_client, chain_client, devchain, pay_to
):
    tx_hash = await _push_usdc(chain_client, devchain, pay_to, PRICE_1D)

    response = await paid_client.post("/v1/passes/1d", headers=_push_headers(tx_hash))

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"status", "data"}
    assert body["status"] == 201
    data = body["data"]
    assert set(data) == {"apiKey", "expiresAt", "period", "type", "scopes", "rateLimit",
                         "warning"}
    assert data["period"] == "1d"
    assert data["type"] == "x402"
    assert data["rateLimit"] == {"requestsPerMinute": 30, "requestsPerDay": 10000}
    assert data["warning"] == "Save this API key now. It will not be shown again."
    settlement = json.loads(base64.b64decode(response.headers["X-PAYMENT-RESPONSE"]))
    assert settlement["success"] is True
    assert settlement["transaction"] == tx_hash
    info = await paid_client.get("/v1/api-keys/info", headers={"X-API-Key": data["apiKey"]})
    assert info.status_code == 200
    assert info.json()["period"] == "1d"
    assert info.json()["expiresAt"] == data["expiresAt"]
    assert info.json()["type"] == "x402"


async def test_a_pushed_hash_presented_again_gets_no_second_look_at_the_key(
    paid_client, chain_client, devchain, pay_to
):
    # given a pass bought with a pushed hash (public the moment it was broadcast)
    tx_hash = await _push_usdc(chain_client, devchain, pay_to, PRICE_1D)
    first = await paid_client.post("/v1/passes/1d", headers=_push_headers(tx_hash))
    assert first.status_code == 201, first.text

    # when anyone presents the same hash again
    again = await paid_client.post("/v1/passes/1d", headers=_push_headers(tx_hash))

    # then it is the same payment, already used: no key, no claim token
    assert again.status_code == 402, again.text
    assert again.json()["code"] == "PAYMENT_ALREADY_USED"
    assert again.json()["details"]["paymentId"]
    assert first.json()["data"]["apiKey"] not in again.text
    assert "claimToken" not in again.text


async def test_a_payment_cannot_buy_a_second_different_thing(
    paid_client, chain_client, devchain, pay_to
):
    tx_hash = await _push_usdc(chain_client, devchain, pay_to, 100_000_000)
    first = await paid_client.post("/v1/passes/4w", headers=_push_headers(tx_hash))

    other = await paid_client.post("/v1/passes/1d", headers=_push_headers(tx_hash))

    assert first.status_code == 201
    assert other.status_code == 402
    assert other.json()["code"] == "PAYMENT_ALREADY_USED"


async def test_a_transfer_to_another_address_is_payment_invalid(
    paid_client, chain_client, devchain
):
    tx_hash = await _push_usdc(chain_client, devchain, devchain.accounts[5].address, PRICE_1D)

    response = await paid_client.post("/v1/passes/1d", headers=_push_headers(tx_hash))

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert "PAYMENT-REQUIRED" in response.headers


async def test_too_small_a_transfer_is_payment_invalid(paid_client, chain_client, devchain, pay_to):
    tx_hash = await _push_usdc(chain_client, devchain, pay_to, PRICE_1D - 1)

    response = await paid_client.post("/v1/passes/1d", headers=_push_headers(tx_hash))

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_INVALID"


async def test_an_unknown_tx_hash_is_payment_invalid(paid_client):
    response = await paid_client.post("/v1/passes/1d", headers=_push_headers("0x" + "ab" * 32))

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_INVALID"


async def test_a_garbled_payment_header_is_payment_invalid(paid_client):
    response = await paid_client.post("/v1/passes/1d", headers={"PAYMENT-SIGNATURE": "%%%"})

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_INVALID"


async def test_admins_find_payments_by_status_network_and_payer(
    paid_client, chain_client, devchain, pay_to, admin_headers
):
    tx_hash = await _push_usdc(chain_client, devchain, pay_to, PRICE_1D)
    await paid_client.post("/v1/passes/1d", headers=_push_headers(tx_hash))
    payer = devchain.accounts[1].address

    found = await paid_client.get(
        "/admin/v1/payments",
        params={"status": "settled", "network": "local",
                "payer": "0x" + payer[2:].upper()},
        headers=admin_headers,
    )
    one = await paid_client.get(f"/admin/v1/payments/{found.json()['data'][0]['paymentId']}",
                                headers=admin_headers)

    assert found.status_code == 200, found.text
    assert tx_hash in [p["transaction"] for p in found.json()["data"]]
    assert one.json()["payer"] == payer.lower()


async def test_a_pushed_transfer_neither_links_nor_reaches_the_senders_wallet(
    paid_client, chain_client, devchain, pay_to
):
    # Given a sender whose wallet is linked to its own agent, and another sender's transfer
    sender = Account.from_key(devchain.accounts[1].private_key)
    owner = await register_agent(paid_client)
    await link_wallet(paid_client, owner["apiKey"], sender)
    stranger = Account.from_key(devchain.accounts[2].private_key)
    linked_tx = await _push_usdc(chain_client, devchain, pay_to, PRICE_1D)
    stranger_tx = await transact(chain_client, stranger.address,
                                 encode_call("transfer(address,uint256)", pay_to, PRICE_1D))

    # When anybody names those hashes
    bought = await paid_client.post("/v1/passes/1d", headers=_push_headers(linked_tx))
    other = await paid_client.post("/v1/passes/1d", headers=_push_headers(stranger_tx))

    # Then the passes belong to agents of their own: not the linked sender's agent, and the
    # unlinked sender's wallet stays free for its owner to link
    assert bought.status_code == other.status_code == 201
    for response in (bought, other):
        info = await paid_client.get("/v1/api-keys/info",
                                     headers=key_headers(response.json()["data"]["apiKey"]))
        assert info.json()["agentId"] != owner["agentId"]
    claimant = await register_agent(paid_client)
    await link_wallet(paid_client, claimant["apiKey"], stranger)
