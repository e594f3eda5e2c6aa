"""A wallet linked to an agent (``/v1/wallets``, no pass) signs in and spends the agent's
credits; a disabled agent's wallet is refused; the challenge endpoint's own checks."""

from __future__ import annotations

import httpx
from eth_account import Account
from x402.extensions.sign_in_with_x import SIWxExtension

from tests.fixtures.chainapp import link_wallet
from tests.siwx.conftest import Served
from tests.siwx.helpers import CALL_PRICE, balance_of_agent, credit, sdk_client, sign_in

ECHO = "/v1/gateway/echo/echo/linked"


async def _linked_agent(served: Served, wallet) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        registered = await http.post("/v1/agents/register", json={"name": "siwx-linked"})
        assert registered.status_code == 201, registered.text
        body = registered.json()
        await link_wallet(http, body["apiKey"], wallet)
    return body["agentId"], body["apiKey"]


async def test_a_linked_wallet_spends_its_agents_credits_on_the_gateway(served: Served) -> None:
    wallet = Account.create()
    agent_id, _ = await _linked_agent(served, wallet)
    before = await balance_of_agent(served.url, served.admin, agent_id)
    if before == 0:
        await credit(served.url, served.admin, agent_id, 100_000)
        before = 100_000

    async with sdk_client(wallet) as client:
        response = await client.get(f"{served.url}{ECHO}")

    assert response.status_code == 200, response.text
    assert "PAYMENT-RESPONSE" not in response.headers
    assert await balance_of_agent(served.url, served.admin, agent_id) == before - CALL_PRICE


async def test_a_linked_wallet_reads_its_balance_but_cannot_manage_keys(served: Served) -> None:
    wallet = Account.create()
    await _linked_agent(served, wallet)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        balance = await http.get("/v1/balance", headers={
            "SIGN-IN-WITH-X": await sign_in(served.url, wallet, "/v1/balance")})
        keys = await http.get("/v1/api-keys", headers={
            "SIGN-IN-WITH-X": await sign_in(served.url, wallet, "/v1/api-keys")})

    assert balance.status_code == 200, balance.text
    assert keys.status_code == 401, keys.text


async def test_a_disabled_agents_wallet_is_forbidden(served: Served) -> None:
    wallet = Account.create()
    agent_id, _ = await _linked_agent(served, wallet)
    await credit(served.url, served.admin, agent_id, 100_000)
    before = await balance_of_agent(served.url, served.admin, agent_id)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        disabled = await http.patch(f"/admin/v1/agents/{agent_id}", headers=served.admin,
                                    json={"disabled": True})
        assert disabled.status_code == 200, disabled.text
        response = await http.get(ECHO, headers={
            "SIGN-IN-WITH-X": await sign_in(served.url, wallet, ECHO)})

    assert response.status_code == 403, response.text
    assert await balance_of_agent(served.url, served.admin, agent_id) == before


async def test_the_challenge_endpoint_serves_the_sdk_shape_and_refuses_other_origins(
    served: Served,
) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        good = await http.get("/v1/siwx/challenge", params={"resource": "/v1/balance"})
        absolute = await http.get("/v1/siwx/challenge",
                                  params={"resource": "https://evil.example/x"})
        protocol_relative = await http.get("/v1/siwx/challenge",
                                           params={"resource": "//evil.example/x"})

    assert good.status_code == 200
    declared = SIWxExtension.model_validate(good.json())
    assert declared.info.uri == served.url + "/v1/balance"
    assert absolute.status_code == 400
    assert protocol_relative.status_code == 400
