"""The npm reference client (@x402/fetch with @x402/evm's upto scheme, driven through node)
makes a usage-priced call against a running passgate (uvicorn + worker) on anvil."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.paid import chain_settings
from tests.fixtures.services import in_ci
from tests.gateway.helpers import provider_config
from tests.upto.test_upto_calls import FUNDS, MAX, PER_TOKEN, _payer
from workers.demo.server import embedded_service, free_port

NODE_DIR = Path(__file__).resolve().parents[2] / "chain" / "node"
SIGNER = 8  # the facilitator of this module's server; no other test uses it


@pytest.fixture
def served(settings_factory, devchain, pay_to, upstream_url) -> Iterator[str]:
    usage = {"field": "usage.total_tokens", "microsPerUnit": PER_TOKEN, "maxMicros": MAX}
    settings = settings_factory(
        redis_url="", port=free_port(),
        providers=[provider_config(upstream_url, name="llm", price_micros=7_000,
                                   route_prices={}, model_prices={}, usage_pricing=usage)],
        **chain_settings(devchain, pay_to, settle_wait=20.0,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )
    with embedded_service(settings) as base:
        yield base


async def test_the_npm_upto_client_pays_the_usage(served, devchain, chain_client, pay_to):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@x402" / "evm").exists():
        if in_ci():
            pytest.fail("node and chain/node/node_modules are required in CI")
        pytest.skip("node or the npm x402 client is not installed (make setup)")
    payer = await _payer(devchain, chain_client)
    key = payer.key.hex()
    key = key if key.startswith("0x") else "0x" + key

    result = await asyncio.to_thread(
        subprocess.run, [node, "usage-call.mjs", f"{served}/v1/gateway/llm/usage?tokens=321",
                         key],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 200, answer
    settlement = json.loads(base64.b64decode(answer["paymentResponse"]))
    assert (settlement["success"], settlement["amount"]) == (True, str(321 * PER_TOKEN))
    assert answer["cost"] == str(321 * PER_TOKEN)
    assert await chain_client.balance_of(pay_to) == 321 * PER_TOKEN
    assert await chain_client.balance_of(payer.address) == FUNDS - 321 * PER_TOKEN
