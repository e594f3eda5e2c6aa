"""The npm reference client (@x402/fetch with @x402/extensions' sign-in-with-x client extension,
``chain/node/siwx-fetch.mjs``) signs in instead of paying, and pays when the wallet owns
nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.fixtures.services import in_ci
from tests.siwx.conftest import Served
from tests.siwx.helpers import (
    CALL_PRICE,
    PRICE_1D,
    balance_of_agent,
    buy_pass,
    credit,
    funded,
)

NODE_DIR = Path(__file__).resolve().parents[2] / "chain" / "node"
ECHO = "/v1/gateway/echo/echo/npm"


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@x402" / "extensions").exists():
        if in_ci():
            pytest.fail("node and chain/node/node_modules are required in CI")
        pytest.skip("node or the npm x402 clients are not installed (make setup)")
    return node


async def _fetch(url: str, account: LocalAccount) -> dict[str, Any]:
    key = account.key.hex()
    key = key if key.startswith("0x") else "0x" + key
    result = await asyncio.to_thread(
        subprocess.run, [_node(), "siwx-fetch.mjs", url, key],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


async def test_the_npm_client_signs_in_and_is_billed_to_credits(
    served: Served, devchain, chain_client
) -> None:
    _node()
    wallet = await funded(devchain, chain_client, PRICE_1D)
    key = await buy_pass(served.url, wallet)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        info = await http.get("/v1/api-keys/info", headers={"X-API-Key": key})
    agent_id = info.json()["agentId"]
    await credit(served.url, served.admin, agent_id, 500_000)
    paid_before = await chain_client.balance_of(served.pay_to)

    outcome = await _fetch(served.url + ECHO, wallet)

    assert outcome["status"] == 200, outcome
    assert outcome["paymentResponse"] is None
    assert outcome["usageId"]
    assert await balance_of_agent(served.url, served.admin, agent_id) == 500_000 - CALL_PRICE
    assert await chain_client.balance_of(served.pay_to) == paid_before


async def test_the_npm_client_pays_when_the_wallet_owns_nothing(
    served: Served, devchain, chain_client
) -> None:
    _node()
    wallet = await funded(devchain, chain_client, CALL_PRICE)
    paid_before = await chain_client.balance_of(served.pay_to)

    outcome = await _fetch(served.url + ECHO, wallet)

    assert outcome["status"] == 200, outcome
    settlement = json.loads(base64.b64decode(outcome["paymentResponse"]))
    assert settlement["success"] is True
    assert await chain_client.balance_of(served.pay_to) == paid_before + CALL_PRICE
