"""Pass purchases end to end: x402 v2 signed payments settled on a 1 s-block dev chain.

Starts anvil (1 s blocks, 1 confirmation) and passgate in embedded mode (API + in-process
worker with the settlement signer), funds N buyers, then buys N 1d passes, CONCURRENCY at a
time. Prints purchases/s and p50/p95 latency from the paid request to its 201 (goal: p95 <=
2.5 s), and writes benchmarks/results/pass_purchase.json.

The identifier variant, in the same run: N more buyers each buy with an x402
``payment-identifier`` (p50/p95 of that purchase), then retry it as a client that lost the
answer would, answering a new 402 with a freshly signed authorization and the same identifier
(p50/p95 of the retry, which replays the first key and is never settled).
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

from x402.extensions.payment_identifier import generate_payment_id

from app.db import migrate
from app.settings import Settings
from benchmarks._support import write_result
from chain.devchain import start_devchain
from chain.x402.payer import build_payer_client, sign_payment_headers, with_payment_identifier
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


async def _buy(http: httpx.AsyncClient, buyer, payment_id: str | None = None) -> float:
    challenge = await http.post("/v1/passes/1d")
    client = build_payer_client(buyer, max_amount_micros=PRICE)
    if payment_id is not None:
        with_payment_identifier(client, payment_id)
    signed = await sign_payment_headers(client, headers=dict(challenge.headers),
                                        body=challenge.json())
    started = time.perf_counter()
    response = await http.post("/v1/passes/1d", headers=signed.v2())
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"purchase failed: {response.status_code} {response.text[:200]}")
    return elapsed


async def _buy_and_retry(http: httpx.AsyncClient, buyer) -> tuple[float, float]:
    payment_id = generate_payment_id()
    first = await _buy(http, buyer, payment_id)
    return first, await _buy(http, buyer, payment_id)


Pairs = list[tuple[float, float]]


async def _run(base: str, buyers, identified) -> tuple[list[float], float, Pairs]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        async def one(buyer) -> float:
            async with gate:
                return await _buy(http, buyer)

        async def twice(buyer) -> tuple[float, float]:
            async with gate:
                return await _buy_and_retry(http, buyer)

        started = time.perf_counter()
        latencies = await asyncio.gather(*(one(b) for b in buyers))
        wall = time.perf_counter() - started
        pairs = await asyncio.gather(*(twice(b) for b in identified))
        return list(latencies), wall, list(pairs)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3)


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
        identified = [Account.create() for _ in range(PURCHASES)]
        asyncio.run(_fund(chain, buyers + identified))
        with embedded_service(settings) as base:
            latencies, wall, pairs = asyncio.run(_run(base, buyers, identified))
    finally:
        chain.stop()
    ordered = sorted(latencies)
    figures = {
        "purchases": PURCHASES,
        "concurrency": CONCURRENCY,
        "block_time_s": 1.0,
        "purchases_per_s": round(PURCHASES / wall, 2),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": _p95(ordered),
        "max_s": round(ordered[-1], 3),
        "goal_p95_s": 2.5,
        "identifier_p50_s": round(statistics.median(p[0] for p in pairs), 3),
        "identifier_p95_s": _p95([p[0] for p in pairs]),
        "identifier_retry_p50_s": round(statistics.median(p[1] for p in pairs), 3),
        "identifier_retry_p95_s": _p95([p[1] for p in pairs]),
    }
    for name, value in figures.items():
        print(f"{name:>22}: {value}")
    print(f"written to {write_result('pass_purchase', figures)}")


if __name__ == "__main__":
    main()
