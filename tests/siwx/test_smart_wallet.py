"""Smart wallets sign in like EOAs. EIP-1271: the owner signs the SIWE message for a deployed
contract wallet's address, checked with ``isValidSignature`` on the network's RPC. EIP-6492: a
wallet not deployed yet, whose signature carries its factory call, checked by simulation (siwe's
universal validator). Both against small test contracts on anvil (chain/contracts)."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from x402.extensions.sign_in_with_x import (
    CreateSIWxClientExtensionOptions,
    create_siwx_client_extension,
)
from x402.http.clients import x402HttpxClient

from app.db.models.agents import Agent
from app.db.models.wallets import Wallet
from app.ids import new_id
from chain.x402.payer import build_payer_client
from tests.fixtures.chain import encode_call
from tests.gateway.helpers import database
from tests.siwx.conftest import Served
from tests.siwx.helpers import (
    CALL_PRICE,
    balance_of_agent,
    challenge,
    complete,
    credit,
    forged,
)

ROOT = Path(__file__).resolve().parents[2]
ECHO = "/v1/gateway/echo/echo/smart"
EIP6492_SUFFIX = bytes.fromhex("6492" * 16)


@dataclass(frozen=True)
class SmartWalletSigner:
    """What the SDK's SIWX helpers need of an EVM signer: the wallet's address, and an
    account (the owner) that signs the message."""

    address: str
    _account: LocalAccount


def _artifact(name: str) -> dict[str, str]:
    compiled = json.loads((ROOT / "chain/contracts/TestSmartWallet.json").read_text())
    contract: dict[str, str] = compiled["contracts"][name]
    return contract


async def _create(devchain, chain_client, data: str) -> str:
    tx_hash = await chain_client.rpc(
        "eth_sendTransaction", [{"from": devchain.accounts[0].address, "data": data}]
    )
    for _ in range(200):
        receipt = await chain_client.rpc("eth_getTransactionReceipt", [tx_hash])
        if receipt:
            assert int(receipt["status"], 16) == 1
            return to_checksum_address(receipt["contractAddress"])
        await asyncio.sleep(0.05)
    raise TimeoutError("the contract was not mined")


async def _deploy(devchain, chain_client, owner: str) -> str:
    bytecode = _artifact("TestSmartWallet")["bytecode"]
    return await _create(devchain, chain_client, bytecode + abi_encode(["address"], [owner]).hex())


async def _agent_owning(served: Served, address: str) -> str:
    """An agent linked to the contract wallet. passgate's own linking proves an EOA signature
    (EIP-191 recovery), so the link is written here as the operator would."""
    agent_id = new_id("agt")
    async with database(served.settings) as sessions, sessions() as session:
        session.add(Agent(id=agent_id, name="smart wallet"))
        await session.flush()
        session.add(Wallet(id=new_id("wal"), agent_id=agent_id, address=address.lower()))
        await session.commit()
    return agent_id


async def test_a_smart_wallet_signs_in_with_its_owners_signature(
    served: Served, devchain, chain_client
) -> None:
    owner: LocalAccount = Account.create()
    wallet = await _deploy(devchain, chain_client, owner.address)
    agent_id = await _agent_owning(served, wallet)
    await credit(served.url, served.admin, agent_id, 100_000)

    # The SDK client with its SIWX extension, signing as the contract wallet.
    payer = build_payer_client(owner, max_amount_micros=CALL_PRICE)
    payer.register_extension(create_siwx_client_extension(
        CreateSIWxClientExtensionOptions(signers=[SmartWalletSigner(wallet, owner)])
    ))
    async with x402HttpxClient(payer, timeout=60) as client:
        response = await client.get(f"{served.url}{ECHO}")

    assert response.status_code == 200, response.text
    assert "PAYMENT-RESPONSE" not in response.headers
    assert await balance_of_agent(served.url, served.admin, agent_id) == 100_000 - CALL_PRICE


async def test_a_smart_wallet_proof_signed_by_someone_else_is_refused(
    served: Served, devchain, chain_client
) -> None:
    owner: LocalAccount = Account.create()
    wallet = await _deploy(devchain, chain_client, owner.address)
    agent_id = await _agent_owning(served, wallet)
    await credit(served.url, served.admin, agent_id, 100_000)
    info = complete(await challenge(served.url, ECHO))

    header = await forged(info, Account.create(), address=wallet)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        response = await http.get(ECHO, headers={"SIGN-IN-WITH-X": header})

    assert response.status_code == 401, response.text
    assert response.json()["details"]["reason"] == "invalid_siwx_signature"
    assert await balance_of_agent(served.url, served.admin, agent_id) == 100_000


@dataclass(frozen=True)
class CounterfactualSigner:
    """An EIP-6492 signer: the wallet is not deployed yet, so the owner's signature travels
    wrapped with the factory call that would deploy it."""

    address: str
    owner: LocalAccount
    factory: str
    factory_call: bytes

    def sign_message(self, signable: Any) -> SimpleNamespace:
        inner = self.owner.sign_message(signable).signature
        wrapped = abi_encode(["address", "bytes", "bytes"],
                             [self.factory, self.factory_call, bytes(inner)])
        return SimpleNamespace(signature=wrapped + EIP6492_SUFFIX)


async def test_a_counterfactual_wallet_signs_in_with_an_eip6492_signature(
    served: Served, devchain, chain_client
) -> None:
    owner: LocalAccount = Account.create()
    factory = await _create(devchain, chain_client,
                            _artifact("TestSmartWalletFactory")["bytecode"])
    factory_call = encode_call("deploy(address,bytes32)", owner.address, os.urandom(32))
    returned = await chain_client.rpc("eth_call", [{"to": factory, "data": factory_call},
                                                   "latest"])
    wallet = to_checksum_address("0x" + returned[-40:])
    assert await chain_client.rpc("eth_getCode", [wallet, "latest"]) in ("0x", "0x0")
    agent_id = await _agent_owning(served, wallet)
    await credit(served.url, served.admin, agent_id, 100_000)

    payer = build_payer_client(owner, max_amount_micros=CALL_PRICE)
    signer = CounterfactualSigner(wallet, owner, factory, bytes.fromhex(factory_call[2:]))
    payer.register_extension(create_siwx_client_extension(
        CreateSIWxClientExtensionOptions(signers=[signer])
    ))
    async with x402HttpxClient(payer, timeout=60) as client:
        response = await client.get(f"{served.url}{ECHO}")

    assert response.status_code == 200, response.text
    assert "PAYMENT-RESPONSE" not in response.headers
    assert await balance_of_agent(served.url, served.admin, agent_id) == 100_000 - CALL_PRICE
    # Verified by simulation: the wallet is still not deployed.
    assert await chain_client.rpc("eth_getCode", [wallet, "latest"]) in ("0x", "0x0")
