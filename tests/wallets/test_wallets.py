"""Linking wallets with an EIP-191 signed challenge."""

from __future__ import annotations

import asyncio

from eth_account import Account
from eth_account.messages import encode_defunct
from litestar.testing import AsyncTestClient

from app.main import create_app
from tests.factories import key_headers, register_agent, unique


async def _challenge(client, key: str, address: str) -> dict:
    response = await client.post("/v1/wallets/challenge", json={"address": address},
                                 headers=key_headers(key))
    assert response.status_code == 201, response.text
    return response.json()


def _sign(account, message: str) -> str:
    signature = account.sign_message(encode_defunct(text=message)).signature
    return "0x" + signature.hex().removeprefix("0x")


async def test_a_signed_challenge_links_the_wallet_and_lists_it(client):
    agent = await register_agent(client)
    wallet = Account.create()
    challenge = await _challenge(client, agent["apiKey"], wallet.address)

    linked = await client.post(
        "/v1/wallets",
        json={"address": wallet.address, "message": challenge["message"],
              "signature": _sign(wallet, challenge["message"])},
        headers=key_headers(agent["apiKey"]),
    )
    listed = await client.get("/v1/wallets", headers=key_headers(agent["apiKey"]))

    assert linked.status_code == 201, linked.text
    assert linked.json()["address"] == wallet.address
    assert [w["address"] for w in listed.json()["data"]] == [wallet.address]


async def test_a_signature_by_another_key_is_refused(client):
    agent = await register_agent(client)
    wallet, impostor = Account.create(), Account.create()
    challenge = await _challenge(client, agent["apiKey"], wallet.address)

    response = await client.post(
        "/v1/wallets",
        json={"address": wallet.address, "message": challenge["message"],
              "signature": _sign(impostor, challenge["message"])},
        headers=key_headers(agent["apiKey"]),
    )

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "signature" in response.json()["error"]


async def test_an_expired_challenge_is_refused(settings_factory):
    async with AsyncTestClient(create_app(settings_factory(wallet_challenge_seconds=1))) as client:
        agent = await register_agent(client)
        wallet = Account.create()
        challenge = await _challenge(client, agent["apiKey"], wallet.address)
        await asyncio.sleep(1.5)

        response = await client.post(
            "/v1/wallets",
            json={"address": wallet.address, "message": challenge["message"],
                  "signature": _sign(wallet, challenge["message"])},
            headers=key_headers(agent["apiKey"]),
        )

    assert response.status_code == 400
    assert "expired" in response.json()["error"]


async def test_a_challenge_works_only_once(client):
    agent = await register_agent(client)
    wallet = Account.create()
    challenge = await _challenge(client, agent["apiKey"], wallet.address)
    body = {"address": wallet.address, "message": challenge["message"],
            "signature": _sign(wallet, challenge["message"])}
    first = await client.post("/v1/wallets", json=body, headers=key_headers(agent["apiKey"]))

    again = await client.post("/v1/wallets", json=body, headers=key_headers(agent["apiKey"]))

    assert first.status_code == 201
    assert again.status_code == 400
    assert "already used" in again.json()["error"]


async def test_a_wallet_linked_to_one_agent_cannot_be_linked_to_another(client):
    first, second = await register_agent(client), await register_agent(client)
    wallet = Account.create()
    for agent, expected in ((first, 201), (second, 409)):
        challenge = await _challenge(client, agent["apiKey"], wallet.address)
        response = await client.post(
            "/v1/wallets",
            json={"address": wallet.address, "message": challenge["message"],
                  "signature": _sign(wallet, challenge["message"])},
            headers=key_headers(agent["apiKey"]),
        )
        assert response.status_code == expected, response.text
    assert response.json()["code"] == "CONFLICT"


async def test_a_malformed_address_or_signature_is_a_validation_error(client):
    agent = await register_agent(client)

    bad_address = await client.post("/v1/wallets/challenge", json={"address": "0x123"},
                                    headers=key_headers(agent["apiKey"]))
    bad_signature = await client.post(
        "/v1/wallets",
        json={"address": "0x" + "ab" * 20, "message": "x", "signature": "0xzz"},
        headers=key_headers(agent["apiKey"]),
    )

    assert bad_address.status_code == 400
    assert bad_signature.status_code == 400
    assert bad_signature.json()["code"] == "VALIDATION_ERROR"


async def test_a_gateway_only_key_cannot_link_wallets(client):
    response = await client.post("/v1/keys", json={"email": f"{unique()}@example.com"})
    gw_key = response.json()["api_key"]

    refused = await client.post("/v1/wallets/challenge", json={"address": "0x" + "ab" * 20},
                                headers=key_headers(gw_key))

    assert refused.status_code == 403
