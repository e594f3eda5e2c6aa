"""Helpers for sign-in-with-x tests: funded wallets, passes bought and SIWX proofs made with the
x402 SDK's own client helpers."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from x402.extensions.sign_in_with_x import (
    CreateSIWxClientExtensionOptions,
    SIWxPayload,
    create_siwx_client_extension,
    create_siwx_message,
    create_siwx_payload,
    encode_siwx_header,
    sign_evm_message,
)
from x402.http.clients import x402HttpxClient

from chain.client import ChainClient
from chain.devchain import DevChain
from chain.x402.payer import build_payer_client
from tests.fixtures.chain import encode_call, transact

PRICE_1D = 10_000_000
CALL_PRICE = 10_000  # the echo provider's price (tests.gateway.helpers.PRICE)


async def funded(devchain: DevChain, chain_client: ChainClient, usdc: int) -> LocalAccount:
    account: LocalAccount = Account.create()
    if usdc:
        await transact(chain_client, devchain.accounts[0].address,
                       encode_call("mint(address,uint256)", account.address, usdc))
    return account


def sdk_client(account: LocalAccount, *, siwx: bool = True, cap: int = PRICE_1D) -> x402HttpxClient:
    """The Python SDK's httpx client paying with ``account``, with its SIWX extension."""
    client = build_payer_client(account, max_amount_micros=cap)
    if siwx:
        client.register_extension(
            create_siwx_client_extension(CreateSIWxClientExtensionOptions(signers=[account]))
        )
    return x402HttpxClient(client, timeout=60)


async def buy_pass(base: str, account: LocalAccount) -> str:
    async with sdk_client(account, siwx=False) as client:
        response = await client.post(f"{base}/v1/passes/1d")
    assert response.status_code == 201, response.text
    key: str = response.json()["data"]["apiKey"]
    return key


async def challenge(base: str, resource: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.get("/v1/siwx/challenge", params={"resource": resource})
    assert response.status_code == 200, response.text
    declared: dict[str, Any] = response.json()
    return declared


def complete(declared: dict[str, Any]) -> dict[str, Any]:
    """The info with the first supported chain selected, as the SDK's client hook does."""
    chain = declared["supportedChains"][0]
    return {**declared["info"], "chainId": chain["chainId"], "type": chain["type"]}


async def sign_in(base: str, account: LocalAccount, resource: str) -> str:
    """A SIGN-IN-WITH-X header made by the SDK's client helper (which checks the challenge is
    bound to the origin it came from)."""
    info = complete(await challenge(base, resource))
    payload = await create_siwx_payload(info, account, base + resource)
    return encode_siwx_header(payload)


async def forged(info: dict[str, Any], signer: LocalAccount, *, address: str | None = None) -> str:
    """A header for ``info`` as given (no origin check): ``signer`` signs the message for
    ``address`` (default: its own)."""
    claimed = address or signer.address
    signature = await sign_evm_message(create_siwx_message(info, claimed), signer)
    payload = SIWxPayload.model_validate({**info, "address": claimed, "signature": signature})
    return encode_siwx_header(payload)


async def credit(base: str, admin: dict[str, str], agent_id: str, micros: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.post(
            "/admin/v1/credits/adjustments", headers=admin,
            json={"agentId": agent_id, "amountMicros": micros, "reason": "siwx test credits"},
        )
    assert response.status_code == 201, response.text


async def balance_of_agent(base: str, admin: dict[str, str], agent_id: str) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.get(f"/admin/v1/agents/{agent_id}", headers=admin)
    assert response.status_code == 200, response.text
    micros: int = response.json()["creditsMicros"]
    return micros
