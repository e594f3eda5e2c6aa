"""Usage-priced gateway calls end to end: x402 ``upto`` (Permit2) settled on a 1 s-block chain.

Starts anvil (1 s blocks, 1 confirmation) with Permit2 and the upto proxy, the test upstream
(an LLM-like answer with ``usage.total_tokens``) and passgate in embedded mode (API + in-process
worker with the settlement signer). Funds CALLS payers (each approves Permit2 once), then makes
CALLS usage-priced calls paid with ``upto`` and, as the baseline in the same run, CALLS calls to
the same provider paid with ``exact`` (its fixed price), CONCURRENCY at a time. Prints p50/p95
from the paid request to the answer with its settlement (goal: upto p95 <= 2.5 s) and the
ratio to the baseline; writes benchmarks/results/upto_call.json.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from x402 import x402Client
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.mechanisms.evm.upto import UptoEvmClientScheme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db import migrate
from app.settings import Settings
from benchmarks._support import write_result
from chain.devchain import start_devchain
from chain.permit2 import encode_approve_permit2
from chain.x402.payer import build_payer_client, sign_payment_headers
from workers.demo.server import embedded_service, free_port

CALLS = 16
CONCURRENCY = 4
FUNDS = 1_000_000
PATH = "/v1/gateway/llm/usage?tokens=1234"


async def _fund(chain: Any, payers: list[Any]) -> None:
    from tests.fixtures.chain import encode_call, transact

    async with chain.client(timeout=30) as client:
        for payer in payers:
            await transact(client, chain.accounts[0].address,
                           encode_call("mint(address,uint256)", payer.address, FUNDS))
            await client.rpc("anvil_setBalance", [payer.address, hex(10**17)])
            await client.rpc("anvil_impersonateAccount", [payer.address])
            await transact(client, payer.address, encode_approve_permit2())


def _upto_client(payer: Any) -> x402Client:
    client = x402Client()
    client.register("eip155:*", UptoEvmClientScheme(EthAccountSigner(payer)))
    client.set_spend_controls({"allowed_assets": True, "max_amount_per_payment": "$1"})
    return client


async def _call(http: httpx.AsyncClient, payer: Any, scheme: str) -> float:
    challenge = await http.get(PATH)
    client = _upto_client(payer) if scheme == "upto" else build_payer_client(payer)
    signed = await sign_payment_headers(client, headers=dict(challenge.headers))
    started = time.perf_counter()
    response = await http.get(PATH, headers=signed.v2())
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or "payment-response" not in response.headers:
        raise RuntimeError(f"{scheme} call failed: {response.status_code} {response.text[:200]}")
    return elapsed


async def _run(base: str, payers: list[Any], scheme: str) -> list[float]:
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        async def one(payer: Any) -> float:
            async with gate:
                return await _call(http, payer, scheme)

        return list(await asyncio.gather(*(one(p) for p in payers)))


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)]


def main() -> None:
    from tests.gateway.helpers import start_uvicorn, stop, wait_until_up

    chain = start_devchain(port=free_port(), block_time=1.0)
    upstream_port = free_port()
    upstream = start_uvicorn("tests.gateway.upstream:app", upstream_port)
    workdir = Path(tempfile.mkdtemp(prefix="passgate-bench-"))
    try:
        wait_until_up(f"http://127.0.0.1:{upstream_port}/__hits", upstream)
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{workdir / 'bench.db'}", redis_url="",
            port=free_port(), plan_free_per_minute=1_000_000, signup_per_minute=1_000_000,
            providers=[{"name": "llm", "base_url": f"http://127.0.0.1:{upstream_port}",
                        "price_micros": 30_000,
                        "usage_pricing": {"field": "usage.total_tokens", "micros_per_unit": 20,
                                          "max_micros": 100_000}}],
            chain_rpc_urls={"local": chain.rpc_url}, chain_local_chain_id=chain.chain_id,
            chain_local_usdc_address=chain.token_address,
            chain_pay_to_address=chain.accounts[8].address,
            chain_deposit_address=chain.accounts[7].address,
            chain_signer_private_key=chain.accounts[9].private_key,
        )
        migrate.upgrade(settings)
        upto_payers = [Account.create() for _ in range(CALLS)]
        exact_payers = [Account.create() for _ in range(CALLS)]
        asyncio.run(_fund(chain, upto_payers + exact_payers))
        with embedded_service(settings) as base:
            upto = asyncio.run(_run(base, upto_payers, "upto"))
            exact = asyncio.run(_run(base, exact_payers, "exact"))
    finally:
        stop(upstream)
        chain.stop()
    figures = {
        "calls_each": CALLS,
        "concurrency": CONCURRENCY,
        "block_time_s": 1.0,
        "upto_p50_s": round(statistics.median(upto), 3),
        "upto_p95_s": round(_p95(upto), 3),
        "exact_p50_s": round(statistics.median(exact), 3),
        "exact_p95_s": round(_p95(exact), 3),
        "upto_to_exact_p95": round(_p95(upto) / _p95(exact), 2),
        "goal_upto_p95_s": 2.5,
    }
    for name, value in figures.items():
        print(f"{name:>18}: {value}")
    print(f"written to {write_result('upto_call', figures)}")


if __name__ == "__main__":
    main()
