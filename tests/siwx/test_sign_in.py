"""A wallet that paid signs in with x402's sign-in-with-x and uses what it owns, through HTTP
with the Python SDK (its httpx client and SIWX extension), on anvil, both databases."""

from __future__ import annotations

import base64
import json

import httpx
from x402.extensions.sign_in_with_x import SIWxExtension

from tests.siwx.conftest import Served
from tests.siwx.helpers import (
    CALL_PRICE,
    PRICE_1D,
    balance_of_agent,
    buy_pass,
    credit,
    funded,
    sdk_client,
    sign_in,
)

ECHO = "/v1/gateway/echo/echo/siwx"


def _declared(response: httpx.Response) -> dict[str, object]:
    required = json.loads(base64.b64decode(response.headers["PAYMENT-REQUIRED"]))
    extensions: dict[str, object] = required["extensions"]
    return extensions


async def test_the_gateway_402_declares_a_sign_in_with_x_challenge_per_the_sdk(
    served: Served, devchain
) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        first = await http.get(ECHO)
        second = await http.get(ECHO)

    assert first.status_code == 402
    declared = SIWxExtension.model_validate(_declared(first)["sign-in-with-x"])
    port = served.url.rsplit(":", 1)[1]
    assert declared.info.domain == f"127.0.0.1:{port}"
    assert declared.info.uri == served.url + "/v1/gateway/echo/echo/siwx"
    assert declared.info.nonce
    assert len(declared.info.nonce) == 32
    assert declared.info.expiration_time
    assert declared.info.issued_at
    assert [(c.chain_id, c.type) for c in declared.supported_chains] == [
        (f"eip155:{devchain.chain_id}", "eip191")
    ]
    again = SIWxExtension.model_validate(_declared(second)["sign-in-with-x"])
    assert again.info.nonce != declared.info.nonce


async def test_a_pass_wallet_acts_as_its_pass_key_on_key_holder_routes(
    served: Served, devchain, chain_client
) -> None:
    wallet = await funded(devchain, chain_client, PRICE_1D)
    key = await buy_pass(served.url, wallet)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        by_key = (await http.get("/v1/api-keys/info", headers={"X-API-Key": key})).json()
        header = await sign_in(served.url, wallet, "/v1/api-keys/info")

        response = await http.get("/v1/api-keys/info", headers={"SIGN-IN-WITH-X": header})

    assert response.status_code == 200, response.text
    assert response.json()["id"] == by_key["id"]
    assert response.json()["period"] == "1d"


async def test_a_wallet_with_credits_calls_the_gateway_without_a_key_and_without_paying(
    served: Served, devchain, chain_client
) -> None:
    """The SDK client meets the 402, signs in instead of paying, and the call is billed to the
    credits of the pass's agent: no second on-chain transfer."""
    wallet = await funded(devchain, chain_client, PRICE_1D)
    key = await buy_pass(served.url, wallet)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        agent_id = (await http.get("/v1/api-keys/info", headers={"X-API-Key": key})).json()[
            "agentId"]
    await credit(served.url, served.admin, agent_id, 1_000_000)
    paid_before = await chain_client.balance_of(served.pay_to)

    async with sdk_client(wallet) as client:
        response = await client.get(f"{served.url}{ECHO}")

    assert response.status_code == 200, response.text
    assert "PAYMENT-RESPONSE" not in response.headers
    assert response.headers["X-Gateway-Cost-Micros"] == str(CALL_PRICE)
    # The proof is passgate's credential: it never reaches the upstream.
    assert "sign-in-with-x" not in {name for name, _ in response.json()["headers"]}
    assert await balance_of_agent(served.url, served.admin, agent_id) == 1_000_000 - CALL_PRICE
    assert await chain_client.balance_of(served.pay_to) == paid_before
    assert await chain_client.balance_of(wallet.address) == 0


async def test_a_wallet_that_never_paid_gets_the_normal_402_and_pays(
    served: Served, devchain, chain_client
) -> None:
    wallet = await funded(devchain, chain_client, CALL_PRICE)
    paid_before = await chain_client.balance_of(served.pay_to)

    async with sdk_client(wallet) as client:
        response = await client.get(f"{served.url}{ECHO}")

    assert response.status_code == 200, response.text
    settlement = json.loads(base64.b64decode(response.headers["PAYMENT-RESPONSE"]))
    assert settlement["success"] is True
    assert await chain_client.balance_of(served.pay_to) == paid_before + CALL_PRICE
    assert await chain_client.balance_of(wallet.address) == 0


async def test_a_pass_wallet_without_credits_gets_the_402_on_the_gateway(
    served: Served, devchain, chain_client
) -> None:
    """Gateway calls are billed to credits; a pass without any pays per call instead."""
    wallet = await funded(devchain, chain_client, PRICE_1D)
    await buy_pass(served.url, wallet)
    header = await sign_in(served.url, wallet, ECHO)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        response = await http.get(ECHO, headers={"SIGN-IN-WITH-X": header})

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_REQUIRED"
    assert "sign-in-with-x" in _declared(response)


async def test_a_wallet_that_owns_nothing_is_refused_on_a_key_holder_route(
    served: Served, devchain, chain_client
) -> None:
    wallet = await funded(devchain, chain_client, 0)
    header = await sign_in(served.url, wallet, "/v1/api-keys/info")
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        response = await http.get("/v1/api-keys/info", headers={"SIGN-IN-WITH-X": header})

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


async def test_a_revoked_pass_is_not_signed_in_to(served: Served, devchain, chain_client) -> None:
    """Nothing is cached: the pass is looked up on every sign-in. Once revoked, the wallet is
    only its agent's (it was linked when it paid), without the pass's scopes."""
    wallet = await funded(devchain, chain_client, PRICE_1D)
    key = await buy_pass(served.url, wallet)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        pass_id = (await http.get("/v1/api-keys/info", headers={"X-API-Key": key})).json()["id"]
        revoked = await http.post(f"/admin/v1/keys/{pass_id}/revoke", headers=served.admin)
        assert revoked.status_code == 200, revoked.text
        header = await sign_in(served.url, wallet, "/v1/api-keys/info")

        response = await http.get("/v1/api-keys/info", headers={"SIGN-IN-WITH-X": header})

    assert response.status_code == 200, response.text
    assert response.json()["id"] != pass_id
    assert "api:read" not in response.json()["scopes"]
