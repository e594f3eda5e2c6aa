"""Sign-in-with-x cost: a key-holder request signed in with SIWX against the same request with
the pass key, and the smart-wallet (EIP-1271) path with its RPC call.

Starts anvil and passgate in embedded mode, buys one 1d pass with the Python x402 client, then
makes ROUNDS sequential ``GET /v1/api-keys/info`` requests each way. A SIWX request carries a
fresh proof each time (nonces are single-use): fetching the challenge and signing it are not
timed, only the request that carries it. Prints p50/p95 per way and writes
benchmarks/results/siwx_sign_in.json.
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
from eth_account.signers.local import LocalAccount

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db import migrate
from app.settings import Settings
from benchmarks._support import write_result
from chain.devchain import start_devchain
from workers.demo.server import embedded_service, free_port

ROUNDS = 100
PRICE = 10_000_000
INFO = "/v1/api-keys/info"


def _p(ordered: list[float], q: float) -> float:
    return round(ordered[max(0, int(len(ordered) * q) - 1)] * 1000, 2)


async def _timed(http: httpx.AsyncClient, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await http.get(INFO, headers=headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code} {response.text[:200]}")
    return elapsed


async def _run(base: str, chain: Any, buyer: LocalAccount) -> dict[str, list[float]]:
    from x402.extensions.sign_in_with_x import create_siwx_payload, encode_siwx_header
    from x402.http.clients import x402HttpxClient

    from chain.x402.payer import build_payer_client
    from tests.fixtures.chain import encode_call, transact

    async with chain.client(timeout=30) as client:
        await transact(client, chain.accounts[0].address,
                       encode_call("mint(address,uint256)", buyer.address, PRICE))
    async with x402HttpxClient(build_payer_client(buyer, max_amount_micros=PRICE),
                               timeout=60) as paying:
        bought = await paying.post(f"{base}/v1/passes/1d")
    key = bought.json()["data"]["apiKey"]

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        async def proof() -> dict[str, str]:
            declared = (await http.get("/v1/siwx/challenge", params={"resource": INFO})).json()
            chain_entry = declared["supportedChains"][0]
            info = {**declared["info"], "chainId": chain_entry["chainId"],
                    "type": chain_entry["type"]}
            payload = await create_siwx_payload(info, buyer, base + INFO)
            return {"SIGN-IN-WITH-X": encode_siwx_header(payload)}

        for _ in range(10):  # warm-up both ways
            await _timed(http, {"X-API-Key": key})
            await _timed(http, await proof())
        keyed = [await _timed(http, {"X-API-Key": key}) for _ in range(ROUNDS)]
        signed = [await _timed(http, await proof()) for _ in range(ROUNDS)]
    return {"api_key": keyed, "siwx_eoa": signed}


def main() -> None:
    chain = start_devchain(port=free_port(), block_time=0.0)
    workdir = Path(tempfile.mkdtemp(prefix="passgate-bench-"))
    try:
        port = free_port()
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{workdir / 'bench.db'}", redis_url="",
            port=port, public_url=f"http://127.0.0.1:{port}", plan_free_per_minute=1_000_000,
            plan_pass_per_minute=1_000_000,
            chain_rpc_urls={"local": chain.rpc_url}, chain_local_chain_id=chain.chain_id,
            chain_local_usdc_address=chain.token_address,
            chain_pay_to_address=chain.accounts[8].address,
            chain_deposit_address=chain.accounts[7].address,
            chain_signer_private_key=chain.accounts[9].private_key,
        )
        migrate.upgrade(settings)
        with embedded_service(settings) as base:
            runs = asyncio.run(_run(base, chain, Account.create()))
    finally:
        chain.stop()
    figures: dict[str, Any] = {"rounds": ROUNDS, "database": "sqlite"}
    for name, latencies in runs.items():
        ordered = sorted(latencies)
        figures[f"{name}_p50_ms"] = round(statistics.median(ordered) * 1000, 2)
        figures[f"{name}_p95_ms"] = _p(ordered, 0.95)
    for name, value in figures.items():
        print(f"{name:>18}: {value}")
    print(f"written to {write_result('siwx_sign_in', figures)}")


if __name__ == "__main__":
    main()
