"""The official x402 clients retry a pass purchase with one payment identifier against a running
passgate (uvicorn + in-process worker) on anvil, on each database: the Python SDK's
``x402HttpxClient`` and the npm ``@x402/fetch`` client with ``@x402/extensions``. Each retry
answers a new 402 with a freshly signed authorization; each gets the first key, and the chain
shows one transfer."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from x402.extensions.payment_identifier import PAYMENT_IDENTIFIER, generate_payment_id
from x402.http.clients import x402HttpxClient
from x402.schemas.hooks import PaymentCreatedContext

from chain.x402.payer import build_payer_client, with_payment_identifier
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from tests.fixtures.services import in_ci
from workers.demo.server import embedded_service, free_port

NODE_DIR = Path(__file__).resolve().parents[2] / "chain" / "node"
PRICE_1D = 10_000_000
SIGNER = 8


@pytest.fixture
def served(settings_factory, devchain, pay_to) -> Iterator[str]:
    settings = settings_factory(
        redis_url="", port=free_port(),
        **chain_settings(devchain, pay_to, settle_wait=20.0,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )
    with embedded_service(settings) as base:
        yield base


async def _funded(devchain, chain_client, usdc: int):
    account = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", account.address, usdc))
    return account


async def test_the_python_sdk_client_retries_with_one_identifier_and_pays_once(
    served, devchain, chain_client, pay_to
):
    payer = await _funded(devchain, chain_client, 2 * PRICE_1D)
    client = with_payment_identifier(build_payer_client(payer, max_amount_micros=PRICE_1D),
                                     generate_payment_id())
    sent: list[dict] = []

    def keep(context: PaymentCreatedContext) -> None:
        sent.append(context.payment_payload.model_dump(by_alias=True))

    client.on_after_payment_creation(keep)

    async with x402HttpxClient(client, timeout=60) as http:
        first = await http.post(f"{served}/v1/passes/1d")
        retry = await http.post(f"{served}/v1/passes/1d")  # a new 402, a new authorization

    assert first.status_code == retry.status_code == 201, (first.text, retry.text)
    assert retry.json()["data"]["apiKey"] == first.json()["data"]["apiKey"]
    assert retry.headers["PAYMENT-RESPONSE"] == first.headers["PAYMENT-RESPONSE"]
    nonces = [p["payload"]["authorization"]["nonce"] for p in sent]
    ids = {p["extensions"][PAYMENT_IDENTIFIER]["info"]["id"] for p in sent}
    assert len(set(nonces)) == 2
    assert len(ids) == 1
    assert await chain_client.balance_of(pay_to) == PRICE_1D
    assert not await chain_client.authorization_state(payer.address, nonces[1])


async def test_the_npm_client_retries_with_one_identifier_and_pays_once(
    served, devchain, chain_client, pay_to
):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@x402" / "extensions").exists():
        if in_ci():
            pytest.fail("node and chain/node/node_modules are required in CI")
        pytest.skip("node or the npm x402 packages are not installed (make setup)")
    payer = await _funded(devchain, chain_client, 2 * PRICE_1D)
    key = payer.key.hex()
    key = key if key.startswith("0x") else "0x" + key

    result = await asyncio.to_thread(
        subprocess.run,
        [node, "buy-pass-id.mjs", f"{served}/v1/passes/1d", key, generate_payment_id(), "2"],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    first, retry = json.loads(result.stdout.strip().splitlines()[-1])["attempts"]
    assert first["status"] == retry["status"] == 201, (first, retry)
    assert retry["body"]["data"]["apiKey"] == first["body"]["data"]["apiKey"]
    assert retry["paymentResponse"] == first["paymentResponse"]
    assert first["nonce"] != retry["nonce"]
    assert await chain_client.balance_of(pay_to) == PRICE_1D
    assert not await chain_client.authorization_state(payer.address, retry["nonce"])
