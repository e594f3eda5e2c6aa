"""Deposit latency: from the block holding a deposit to the credit visible in the API
(1 s blocks, 1 confirmation; goal p95 <= 2.5 s).

Starts anvil with a block every second, the API (uvicorn) and the workers as separate
processes on one SQLite file: with Redis on 127.0.0.1:6379 a ``passgate worker`` plus the
``passgate scheduler``, else an embedded worker that schedules its own periodic jobs. An agent
links a wallet, then makes N deposits one after another at random moments. For each, the
clock starts when the deposit's block is available from the node (receipts polled every 20 ms)
and stops when ``GET /v1/balance`` shows the credit (polled every 20 ms).

Prints p50/p95/max; writes benchmarks/results/settlement_latency.json.
Usage: ``python benchmarks/settlement_latency.py [N]`` (default 30).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak

from benchmarks._support import ROOT, free_port, start_api, write_result
from chain.devchain import start_devchain

AMOUNT = 1_000_000
POLL = 0.02
TIMEOUT = 30.0


def redis_running() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def rpc(url: str, method: str, *params: Any) -> Any:
    body = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                 "params": list(params)}, timeout=10).json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


def call(signature: str, types: list[str], args: list[Any]) -> str:
    return "0x" + (keccak(text=signature)[:4] + abi_encode(types, args)).hex()


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "workers.cli", *args], cwd=ROOT,
                            env={**os.environ, **env})


def main(count: int) -> None:
    chain = start_devchain(block_time=1.0)
    workdir = Path(tempfile.mkdtemp(prefix="passgate-latency-"))
    deposit = Account.create().address
    use_redis = redis_running()
    env = {
        "PASSGATE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'latency.db'}",
        "PASSGATE_REDIS_URL": "redis://127.0.0.1:6379/0" if use_redis else "",
        "PASSGATE_REDIS_PREFIX": f"bench:{uuid.uuid4().hex[:6]}",
        "PASSGATE_KEY_PEPPER": uuid.uuid4().hex,
        "PASSGATE_PLAN_FREE_PER_MINUTE": "1000000",
        "PASSGATE_CHAIN_RPC_URLS": f'{{"local": "{chain.rpc_url}"}}',
        "PASSGATE_CHAIN_LOCAL_USDC_ADDRESS": chain.token_address,
        "PASSGATE_CHAIN_DEPOSIT_ADDRESS": deposit,
        "PASSGATE_CHAIN_CONFIRMATIONS": '{"local": 1}',
        "PASSGATE_LOG_LEVEL": "WARNING",
    }
    from app.db import migrate
    from app.settings import Settings

    migrate.upgrade(Settings(database_url=env["PASSGATE_DATABASE_URL"]))
    processes = [spawn(["worker", "--threads", "2"], env)]
    if use_redis:
        processes.append(spawn(["scheduler"], env))
    port = free_port()
    processes.append(start_api(env, port))
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    try:
        with httpx.Client(base_url=base, timeout=10) as api:
            agent = api.post("/v1/agents/register", json={"name": "latency"}).json()
            headers = {"X-API-Key": agent["apiKey"]}
            wallet = Account.create()
            challenge = api.post("/v1/wallets/challenge", json={"address": wallet.address},
                                 headers=headers).json()
            signature = wallet.sign_message(encode_defunct(text=challenge["message"])).signature
            api.post("/v1/wallets", headers=headers, json={
                "address": wallet.address, "message": challenge["message"],
                "signature": "0x" + bytes(signature).hex().removeprefix("0x"),
            }).raise_for_status()
            rpc(chain.rpc_url, "anvil_setBalance", wallet.address, hex(10**20))
            rpc(chain.rpc_url, "anvil_impersonateAccount", wallet.address)
            rpc(chain.rpc_url, "eth_sendTransaction", {
                "from": chain.accounts[0].address, "to": chain.token_address,
                "data": call("mint(address,uint256)", ["address", "uint256"],
                             [wallet.address, AMOUNT * (count + 1)])})
            time.sleep(2.5)  # the mint's block
            transfer = call("transfer(address,uint256)", ["address", "uint256"],
                            [deposit, AMOUNT])
            balance = api.get("/v1/balance", headers=headers).json()["creditsMicros"]
            for index in range(count):
                time.sleep(random.uniform(0.0, 1.0))  # land anywhere in the watcher's cycle
                tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", {
                    "from": wallet.address, "to": chain.token_address, "data": transfer})
                deadline = time.monotonic() + TIMEOUT
                while rpc(chain.rpc_url, "eth_getTransactionReceipt", tx_hash) is None:
                    assert time.monotonic() < deadline, "deposit not mined"
                    time.sleep(POLL)
                mined_at = time.monotonic()
                while True:
                    now = api.get("/v1/balance", headers=headers).json()["creditsMicros"]
                    if now >= balance + AMOUNT:
                        break
                    assert time.monotonic() < deadline, "deposit not credited"
                    time.sleep(POLL)
                latency = time.monotonic() - mined_at
                balance = now
                latencies.append(latency)
                print(f"deposit {index + 1:>3}: credited {latency:.3f}s after its block",
                      flush=True)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        chain.stop()

    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"\n{count} deposits, 1 s blocks, 1 confirmation, "
          f"{'Redis worker + scheduler' if use_redis else 'embedded worker'}")
    print(f"block -> credit visible: p50 {p50:.3f}s  p95 {p95:.3f}s  max {ordered[-1]:.3f}s "
          f"(goal p95 <= 2.5s)")
    path = write_result("settlement_latency", {
        "deposits": count, "block_time_s": 1.0, "confirmations": 1,
        "mode": "redis" if use_redis else "embedded", "database": "sqlite",
        "p50_s": round(p50, 3), "p95_s": round(p95, 3), "max_s": round(ordered[-1], 3),
        "goal_p95_s": 2.5,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
