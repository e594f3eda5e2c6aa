"""What checking a pooled PostgreSQL connection costs per checkout.

A gateway call checks out one connection on its hot path (its reservation). This measures a
checkout plus one ``SELECT 1`` with three engines on the same database, taking turns so drift
hits all alike (the added cost is the median of each round's difference to ``bare``):

- ``bare``: no check at all;
- ``passgate``: ``app.db.engine.create_engine`` (closed-by-server flag on every checkout, a
  ping only after 2 s idle);
- ``pre_ping``: SQLAlchemy's ``pool_pre_ping`` (a ping on every checkout).

Needs PostgreSQL on 127.0.0.1:5432 (a scratch database, dropped afterwards; skipped without).
Results go to ``benchmarks/results/pg_checkout.json``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchmarks._support import write_result

ROUNDS = 21
CHECKOUTS = 500
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


async def per_checkout_us(engine: AsyncEngine) -> float:
    started = time.perf_counter()
    for _ in range(CHECKOUTS):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    return (time.perf_counter() - started) / CHECKOUTS * 1e6


async def main(url: str) -> dict[str, float]:
    from app.db.engine import create_engine
    from app.settings import Settings

    engines = {
        "bare": create_async_engine(url, pool_size=1),
        "passgate": create_engine(Settings(database_url=url, database_pool_size=1)),
        "pre_ping": create_async_engine(url, pool_size=1, pool_pre_ping=True),
    }
    runs: dict[str, list[float]] = {name: [] for name in engines}
    try:
        for engine in engines.values():  # warm up: connect, prepare
            await per_checkout_us(engine)
        for _ in range(ROUNDS):
            for name, engine in engines.items():
                runs[name].append(await per_checkout_us(engine))
    finally:
        for engine in engines.values():
            await engine.dispose()
    result = {f"{name}_us": round(statistics.median(values), 1) for name, values in runs.items()}
    # Each round's own difference: load from other processes shifts whole rounds, not one
    # engine within a round.
    for name in ("passgate", "pre_ping"):
        added = [mine - bare for mine, bare in zip(runs[name], runs["bare"], strict=True)]
        result[f"{name}_added_us"] = round(statistics.median(added), 1)
    return result


def run() -> None:
    name = f"passgate_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(ADMIN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"skipped: no PostgreSQL on 127.0.0.1:5432 ({type(exc).__name__})")
        return
    try:
        result = asyncio.run(main(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"))
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for key, value in result.items():
        print(f"{key:>20}: {value}")
    write_result("pg_checkout", result)


if __name__ == "__main__":
    run()
