"""Chain ingest: the watcher's backfill vs a bare eth_getLogs + decode loop (goal: ratio >= 0.6).

Starts an automining anvil with TestUSDC, creates N USDC transfers to one deposit address
(``multiTransfer`` batches, empty blocks between them), then, on the same chain and the same
block ranges:

- raw: ``ChainClient.get_transfer_logs`` over the ranges, decoding every log, storing nothing;
- watcher: ``run_watcher`` until it has caught up on a fresh SQLite database: the same logs,
  plus block headers for reorg tracking, storing every transfer (unique insert), advancing the
  cursor per range, and counting every transfer through the deposit purpose (the sender is not
  a linked wallet, so each is recorded as unmatched).

Each run times the raw loop and then the watcher, back to back, after one warm-up run that is
printed but not counted. Prints logs/s for both (medians
of the runs) and the ratio: the median of the runs' own watcher/raw ratios, since this VM's
speed drifts between runs more than within one; the ratio of the two medians is printed too.
Writes benchmarks/results/chain_ingest.json (with
``--db postgres``: a fresh PostgreSQL database per run on 127.0.0.1:5432, written to
chain_ingest_postgres.json).
Usage: ``python benchmarks/chain_ingest.py [N] [--db sqlite|postgres]`` (default 20,000, SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.crypto import keccak

from app.db import migrate
from app.db.engine import create_engine, session_factory
from app.integrations.chain import TransferCounting
from app.settings import Settings
from app.transfers.watch_config import WatchConfig
from app.transfers.watcher import run_watcher
from benchmarks._support import write_result
from chain.client import ChainClient
from chain.devchain import start_devchain
from workers.runner import settle_heap

BATCH = 250  # transfers per multiTransfer transaction
RANGE = 2_000  # blocks per eth_getLogs call, for both loops (the hosted-provider default)
RUNS = 5


def _call(signature: str, types: list[str], args: list[object]) -> str:
    return "0x" + (keccak(text=signature)[:4] + abi_encode(types, args)).hex()


async def make_transfers(client: ChainClient, sender: str, deposit: str, count: int) -> None:
    data = _call("multiTransfer(address[],uint256[])", ["address[]", "uint256[]"],
                 [[deposit] * BATCH, [1_000] * BATCH])
    for _ in range(count // BATCH):
        tx_hash = await client.rpc("eth_sendTransaction", [
            {"from": sender, "to": client.token_address, "data": data}])
        receipt = None
        for _ in range(200):  # automine: the receipt shows up within milliseconds
            receipt = await client.get_receipt(tx_hash)
            if receipt is not None:
                break
            await asyncio.sleep(0.01)
        assert receipt is not None, "multiTransfer not mined"
        assert receipt.status == 1, "multiTransfer failed"
        for _ in range(3):  # spread the batches over many blocks
            await client.rpc("evm_mine", [])


async def raw_loop(client: ChainClient, start: int, head: int, deposit: str) -> tuple[int, float]:
    began = time.perf_counter()
    total = 0
    for low in range(start, head + 1, RANGE):
        logs = await client.get_transfer_logs(low, min(low + RANGE - 1, head),
                                              to_addresses=[deposit])
        total += len(logs)
    return total, time.perf_counter() - began


async def watcher_loop(settings: Settings, client: ChainClient) -> tuple[int, float]:
    network = settings.networks()["local"]
    engine = create_engine(settings)
    sessions = session_factory(engine)
    config = WatchConfig.from_settings(settings, network)
    counting = TransferCounting.from_settings(settings)
    began = time.perf_counter()
    stored = 0
    while True:
        report = await run_watcher(sessions, client, config, counting, due_only=False)
        if report.error:
            raise RuntimeError(report.error)
        stored += report.stored
        if not report.more:
            break
    elapsed = time.perf_counter() - began
    await engine.dispose()
    return stored, elapsed


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh, empty database URL (not migrated yet)."""
    if kind == "sqlite":
        workdir = Path(tempfile.mkdtemp(prefix="passgate-ingest-"))
        yield f"sqlite+aiosqlite:///{workdir / 'ingest.db'}"
        return
    import psycopg

    name = f"passgate_ingest_{uuid.uuid4().hex[:8]}"
    admin = {"host": "127.0.0.1", "user": "postgres", "dbname": "postgres", "autocommit": True}
    with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main(count: int, kind: str) -> None:
    chain = start_devchain(block_time=0)
    try:
        deposit = Account.create().address
        sender = chain.accounts[1].address
        async with chain.client(timeout=60) as client:
            start = await client.block_number() + 1
            print(f"creating {count:,} transfers on anvil ...", flush=True)
            await make_transfers(client, sender, deposit, count)
            head = await client.block_number()
            print(f"{count:,} transfers in blocks {start}..{head}", flush=True)

            # As `passgate worker` does once its actors are loaded (workers.runner).
            settle_heap()
            raw_rates, watch_rates = [], []
            # Run 0 warms up and is not counted: a worker process imports its modules (the
            # payment purpose among them) and fills SQLAlchemy's statement caches once, at
            # start, not on every scan.
            for run in range(RUNS + 1):
                found, raw_seconds = await raw_loop(client, start, head, deposit)
                assert found == count, f"raw loop found {found}"
                with database(kind) as url:
                    settings = Settings(
                        database_url=url,
                        chain_rpc_urls={"local": chain.rpc_url},
                        chain_local_usdc_address=chain.token_address,
                        chain_deposit_address=deposit,
                        chain_start_blocks={"local": start},
                        chain_max_log_range={"local": RANGE},
                        chain_scan_budget_seconds=600,
                        log_level="WARNING",
                    )
                    migrate.upgrade(settings)
                    stored, watch_seconds = await watcher_loop(settings, client)
                assert stored == count, f"watcher stored {stored}"
                if run:
                    raw_rates.append(count / raw_seconds)
                    watch_rates.append(count / watch_seconds)
                label = f"run {run}" if run else "warm-up"
                print(f"{label}: raw {count / raw_seconds:,.0f} logs/s "
                      f"({raw_seconds:.2f}s), watcher {count / watch_seconds:,.0f} logs/s "
                      f"({watch_seconds:.2f}s)", flush=True)
    finally:
        chain.stop()

    raw = statistics.median(raw_rates)
    watcher = statistics.median(watch_rates)
    ratio = statistics.median(w / r for w, r in zip(watch_rates, raw_rates, strict=True))
    print(f"\nraw eth_getLogs+decode: {raw:,.0f} logs/s (median of {RUNS})")
    print(f"watcher (store + count): {watcher:,.0f} logs/s (median of {RUNS})")
    print(f"ratio {ratio:.2f}, median of the runs' own (goal >= 0.6); "
          f"ratio of the medians {watcher / raw:.2f}")
    path = write_result("chain_ingest" if kind == "sqlite" else f"chain_ingest_{kind}", {
        "transfers": count, "blocks": head - start + 1, "range_blocks": RANGE,
        "database": kind, "raw_logs_per_s": round(raw), "watcher_logs_per_s": round(watcher),
        "ratio": round(ratio, 3), "ratio_of_medians": round(watcher / raw, 3),
        "goal_ratio": 0.6, "runs": RUNS,
        "raw_runs_logs_per_s": [round(rate) for rate in raw_rates],
        "watcher_runs_logs_per_s": [round(rate) for rate in watch_rates],
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("count", type=int, nargs="?", default=20_000)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.db))
