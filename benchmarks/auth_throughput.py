"""Authenticated vs bare throughput of one API process (goal: ratio >= 0.75).

Starts passgate with one uvicorn process on SQLite (and Redis for rate limits when one runs on
127.0.0.1:6379), registers an agent with a rate limit high enough not to interfere, then loads
``GET /v1/health/live`` (no auth) and ``GET /v1/api-keys/info`` (valid key) with wrk, in
alternating rounds; the ratio is the median of the rounds' ratios.
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._support import free_port, start_api, write_result, wrk

SECONDS = 5
ROUNDS = 4
CONNECTIONS = 32


def redis_running() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="passgate-bench-"))
    admin = "adm-bench-" + uuid.uuid4().hex
    env = {
        "PASSGATE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "PASSGATE_REDIS_URL": "redis://127.0.0.1:6379/0" if redis_running() else "",
        "PASSGATE_REDIS_PREFIX": f"bench:{uuid.uuid4().hex[:6]}",
        "PASSGATE_ADMIN_TOKEN": admin,
        "PASSGATE_KEY_PEPPER": uuid.uuid4().hex,
    }
    from app.db import migrate
    from app.settings import Settings

    migrate.upgrade(Settings(database_url=env["PASSGATE_DATABASE_URL"]))
    port = free_port()
    proc = start_api(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        agent = httpx.post(f"{base}/v1/agents/register", json={"name": "bench"}).json()
        httpx.patch(
            f"{base}/admin/v1/keys/{agent['keyId']}",
            json={"rateLimitPerMinute": 10_000_000},
            headers={"Authorization": f"Bearer {admin}"},
        ).raise_for_status()
        key = {"X-API-Key": agent["apiKey"]}
        wrk(f"{base}/v1/health/live", 2, CONNECTIONS)  # warm-up
        wrk(f"{base}/v1/api-keys/info", 2, CONNECTIONS, headers=key)
        # Alternating rounds: this machine's speed drifts by tens of percent within a minute,
        # and drift must not land on one side of the comparison only.
        bare_rounds, auth_rounds = [], []
        for _ in range(ROUNDS):
            bare_rounds.append(wrk(f"{base}/v1/health/live", SECONDS, CONNECTIONS))
            auth_rounds.append(wrk(f"{base}/v1/api-keys/info", SECONDS, CONNECTIONS,
                                   headers=key))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ratios = sorted(a["rps"] / b["rps"] for b, a in zip(bare_rounds, auth_rounds, strict=True))
    bare, authed = _median(bare_rounds), _median(auth_rounds)
    figures = {
        "rate_limit_store": "redis" if env["PASSGATE_REDIS_URL"] else "memory",
        "rounds": ROUNDS,
        "seconds_per_round": SECONDS,
        "bare_rps": round(bare["rps"], 1),
        "bare_p99_ms": bare["p99_ms"],
        "auth_rps": round(authed["rps"], 1),
        "auth_p99_ms": authed["p99_ms"],
        "auth_non_2xx": sum(a["non_2xx"] for a in auth_rounds),
        "round_ratios": [round(r, 3) for r in ratios],
        "ratio": round(statistics.median(ratios), 3),
        "goal": 0.75,
    }
    for name, value in figures.items():
        print(f"{name:>18}: {value}")
    print(f"written to {write_result('auth_throughput', figures)}")


def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The round with the median throughput (its p99 comes with it)."""
    return sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2]


if __name__ == "__main__":
    main()
