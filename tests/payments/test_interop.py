"""Real x402 clients buy a 1d pass from a running passgate (uvicorn + worker) on anvil:
the Python SDK's ``x402HttpxClient`` and the npm ``@x402/fetch`` client driven through node."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from x402.http.clients import x402HttpxClient

from app.db import migrate
from app.settings import Settings
from chain.x402.payer import build_payer_client
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from tests.fixtures.services import in_ci
from workers.demo.server import embedded_service, free_port

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "chain" / "node"
PRICE_1D = 10_000_000
SIGNER = 4


@pytest.fixture
def served(tmp_path, devchain, pay_to) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'interop.db'}"
    migrate.upgrade(Settings(database_url=url))
    settings = Settings(
        database_url=url, redis_url="", port=free_port(), key_pepper="interop-pepper",
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


async def test_the_python_sdk_client_buys_a_pass(served, devchain, chain_client, pay_to):
    payer = await _funded(devchain, chain_client, PRICE_1D)

    async with x402HttpxClient(build_payer_client(payer, max_amount_micros=PRICE_1D),
                               timeout=60) as client:
        response = await client.post(f"{served}/v1/passes/1d")

    assert response.status_code == 201, response.text
    assert response.json()["data"]["apiKey"].startswith("pass_")
    assert "PAYMENT-RESPONSE" in response.headers
    assert await chain_client.balance_of(pay_to) == PRICE_1D


async def test_the_npm_fetch_client_buys_a_pass(served, devchain, chain_client, pay_to):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@x402" / "fetch").exists():
        if in_ci():
            pytest.fail("node and chain/node/node_modules are required in CI")
        pytest.skip("node or the npm x402 client is not installed (make setup)")
    payer = await _funded(devchain, chain_client, PRICE_1D)
    key = payer.key.hex()
    key = key if key.startswith("0x") else "0x" + key

    result = await asyncio.to_thread(
        subprocess.run, [node, "buy-pass.mjs", f"{served}/v1/passes/1d", key],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 201, outcome
    assert outcome["body"]["data"]["apiKey"].startswith("pass_")
    settlement = json.loads(base64.b64decode(outcome["paymentResponse"]))
    assert settlement["success"] is True
    assert await chain_client.balance_of(pay_to) == PRICE_1D
