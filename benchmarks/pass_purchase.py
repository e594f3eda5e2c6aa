"""Pass purchases end to end: x402 v2 signed payments settled on a 1 s-block dev chain.

Starts anvil (1 s blocks, 1 confirmation) and passgate in embedded mode (API + in-process
worker with the settlement signer), funds N buyers, then buys N 1d passes, CONCURRENCY at a
time. Prints purchases/s and p50/p95 latency from the paid request to its 201 (goal: p95 <=
2.5 s), and writes benchmarks/results/pass_purchase.json.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db import migrate
from app.settings import Settings
from benchmarks._support import write_result
from chain.devchain import start_devchain
from chain.x402.payer import build_payer_client, sign_payment_headers
from workers.demo.server import embedded_service, free_port

PURCHASES = 24
CONCURRENCY = 4
PRICE = 10_000_000


async def _fund(chain, buyers) -> None:
    from tests.fixtures.chain import encode_call, transact

    async with chain.client(timeout=30) as client:
        for buyer in buyers:
            await transact(client, chain.accounts[0].address,
                           encode_call("mint(address,uint256)", buyer.address, PRICE))


async def _buy(http: httpx.AsyncClient, buyer) -> float:
    challenge = await http.post("/v1/passes/1d")
    signed = await sign_payment_headers(build_payer_client(buyer, max_amount_micros=PRICE),
                                        headers=dict(challenge.headers), body=challenge.json())
    started = time.perf_counter()
    response = await http.post("/v1/passes/1d", headers=signed.v2())
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"purchase failed: {response.status_code} {response.text[:200]}")
    return elapsed


async def _run(base: str, buyers) -> tuple[list[float], float]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        async def one(buyer) -> float:
            async with gate:
                return await _buy(http, buyer)

        started = time.perf_counter()
        latencies = await asyncio.gather(*(one(b) for b in buyers))
        return list(latencies), time.perf_counter() - started


def main() -> None:
    chain = start_devchain(port=free_port(), block_time=1.0)
    workdir = Path(tempfile.mkdtemp(prefix="passgate-bench-"))
    try:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{workdir / 'bench.db'}", redis_url="",
            port=free_port(), plan_free_per_minute=1_000_000, signup_per_minute=1_000_000,
            chain_rpc_urls={"local": chain.rpc_url}, chain_local_chain_id=chain.chain_id,
            chain_local_usdc_address=chain.token_address,
            chain_pay_to_address=chain.accounts[8].address,
            chain_deposit_address=chain.accounts[7].address,
            chain_signer_private_key=chain.accounts[9].private_key,
        )
        migrate.upgrade(settings)
        buyers = [Account.create() for _ in range(PURCHASES)]
        asyncio.run(_fund(chain, buyers))
        with embedded_service(settings) as base:
            latencies, wall = asyncio.run(_run(base, buyers))
    finally:
        chain.stop()
    ordered = sorted(latencies)
    figures = {
        "purchases": PURCHASES,
        "concurrency": CONCURRENCY,
        "block_time_s": 1.0,
        "purchases_per_s": round(PURCHASES / wall, 2),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "max_s": round(ordered[-1], 3),
        "goal_p95_s": 2.5,
    }
    for name, value in figures.items():
        print(f"{name:>16}: {value}")
    print(f"written to {write_result('pass_purchase', figures)}")


if __name__ == "__main__":
    main()
