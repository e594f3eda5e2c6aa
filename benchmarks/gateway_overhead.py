"""What the gateway adds to a call: latency (p50/p99) and throughput, against the bare upstream.

One run starts a minimal upstream (``app/demo/upstream.py``, plain ASGI under uvicorn), a bare
proxy in front of it (``benchmarks/_bare_proxy.py``: the same uvicorn and pooled httpx hop with
nothing of passgate) and one passgate API process with that upstream as a provider, signs up a
gateway key with plenty of credits, then:

1. latency: the same request, one at a time over a kept-alive connection, taking turns direct,
   through the bare proxy and through the gateway (so drift hits all alike); added = gateway
   minus direct, per percentile; the bare proxy's own added p50 is the floor of any gateway on
   this stack and machine, and gateway minus bare proxy is what passgate itself costs;
2. throughput: wrk against each for the same time and connections; ratio = gateway / direct.

Every gateway call is a real paid call: key check, rate limit, a reservation (usage row,
charge, spend counters) committed before forwarding, the outcome recorded after. The database
is PostgreSQL when one answers on 127.0.0.1:5432 (a scratch database, dropped afterwards),
else SQLite; ``--db`` chooses. Results go to ``benchmarks/results/gateway_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._support import ROOT, free_port, start_api, write_result, wrk

GOAL_P50_ADDED_MS = 1.5


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh, migrated database URL for the run."""
    from app.db import migrate
    from app.settings import Settings

    if kind == "sqlite":
        workdir = Path(tempfile.mkdtemp(prefix="passgate-gw-bench-"))
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        migrate.upgrade(Settings(database_url=url))
        yield url
        return
    import psycopg

    name = f"passgate_gwbench_{uuid.uuid4().hex[:8]}"
    admin = {"host": "127.0.0.1", "user": "postgres", "dbname": "postgres", "autocommit": True}
    with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        migrate.upgrade(Settings(database_url=url))
        yield url
    finally:
        with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def serve(app: str, probe: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``app`` (module:attribute, plain ASGI) under uvicorn on a free port, once ``probe``
    answers; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}{probe}", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def latencies(targets: list[tuple[str, dict[str, str]]], count: int) -> list[list[float]]:
    """Milliseconds per request for each (url, headers) target, taking turns request by
    request over one kept-alive connection each, so the machine's drift hits all alike."""
    samples: list[list[float]] = [[] for _ in targets]
    with httpx.Client(timeout=10) as http:
        for _ in range(200):  # warm-up: connections, caches, the JIT-less interpreter's paths
            for url, headers in targets:
                http.get(url, headers=headers)
        for _ in range(count):
            for (url, headers), timings in zip(targets, samples, strict=True):
                started = time.perf_counter()
                response = http.get(url, headers=headers)
                timings.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
    return samples


def reference_latency(url: str, key: str, count: int) -> list[float]:
    """One authenticated read (``/v1/balance``: one database transaction), for scale."""
    samples: list[float] = []
    with httpx.Client(timeout=10) as http:
        for _ in range(count):
            started = time.perf_counter()
            http.get(url, headers={"X-API-Key": key}).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--db", choices=["postgres", "sqlite"], default="postgres" if reachable(5432) else "sqlite"
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    with (
        database(args.db) as url,
        serve("workers.demo.upstream:app", "/ping") as upstream_base,
        serve("benchmarks._bare_proxy:app", "/ping",
              {"BARE_PROXY_UPSTREAM": upstream_base}) as bare_proxy_base,
    ):
        env = {
            "PASSGATE_DATABASE_URL": url,
            "PASSGATE_REDIS_URL": "redis://127.0.0.1:6379/0" if reachable(6379) else "",
            "PASSGATE_REDIS_PREFIX": f"gwbench:{uuid.uuid4().hex[:6]}",
            "PASSGATE_KEY_PEPPER": uuid.uuid4().hex,
            "PASSGATE_STARTER_CREDITS_MICROS": str(10**14),
            "PASSGATE_PLAN_FREE_PER_MINUTE": str(10**8),
            "PASSGATE_CREDITS_LOW_THRESHOLD_MICROS": "0",
            "PASSGATE_LOG_LEVEL": "WARNING",
            "PASSGATE_PROVIDERS": json.dumps(
                [
                    {
                        "name": "bench",
                        "base_url": upstream_base,
                        "price_micros": 1,
                        "headers": {"Authorization": "Bearer sk-bench"},
                    }
                ]
            ),
        }
        port = free_port()
        proc = start_api(env, port)
        base = f"http://127.0.0.1:{port}"
        try:
            signup = httpx.post(f"{base}/v1/keys", json={"email": "bench@example.com"})
            signup.raise_for_status()
            key = signup.json()["api_key"]
            direct_url = f"{upstream_base}/v1/ping"
            gateway_url = f"{base}/v1/gateway/bench/v1/ping"
            plain, floor, proxied = latencies(
                [(direct_url, {}), (f"{bare_proxy_base}/v1/ping", {}),
                 (gateway_url, {"X-API-Key": key})],
                args.requests,
            )
            one_read = reference_latency(f"{base}/v1/balance", key, min(args.requests, 500))
            wrk(gateway_url, 2, args.connections, headers={"X-API-Key": key})  # warm-up
            bare = wrk(direct_url, args.seconds, args.connections)
            through = wrk(gateway_url, args.seconds, args.connections, headers={"X-API-Key": key})
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    figures = {
        "database": args.db,
        "rate_limit_store": "redis" if env["PASSGATE_REDIS_URL"] else "memory",
        "cpus": os.cpu_count(),
        "sequential_requests": args.requests,
        "direct_p50_ms": round(statistics.median(plain), 3),
        "direct_p99_ms": round(percentile(plain, 0.99), 3),
        "gateway_p50_ms": round(statistics.median(proxied), 3),
        "gateway_p99_ms": round(percentile(proxied, 0.99), 3),
        "added_p50_ms": round(statistics.median(proxied) - statistics.median(plain), 3),
        "added_p99_ms": round(percentile(proxied, 0.99) - percentile(plain, 0.99), 3),
        # The same hop through a bare proxy (benchmarks/_bare_proxy.py: uvicorn, plain ASGI,
        # the same pooled httpx client, nothing of passgate): the stack's own floor here.
        "bare_proxy_p50_ms": round(statistics.median(floor), 3),
        "bare_proxy_added_p50_ms": round(statistics.median(floor) - statistics.median(plain), 3),
        # What passgate itself adds on top (framework, key, rate limit, billing, usage).
        "passgate_added_p50_ms": round(statistics.median(proxied) - statistics.median(floor), 3),
        # For scale: an authenticated endpoint doing one database read, on the same process.
        "balance_read_p50_ms": round(statistics.median(one_read), 3),
        "direct_rps": round(bare["rps"], 1),
        "gateway_rps": round(through["rps"], 1),
        "gateway_non_2xx": through["non_2xx"],
        "throughput_ratio": round(through["rps"] / bare["rps"], 3),
        "wrk_connections": args.connections,
        "wrk_seconds": args.seconds,
        "goal_added_p50_ms": GOAL_P50_ADDED_MS,
    }
    for name, value in figures.items():
        print(f"{name:>22}: {value}")
    print(f"written to {write_result('gateway_overhead', figures)}")


if __name__ == "__main__":
    main()
