"""The discovery listing with many gateway providers: the first request (items built) and
later ones (built items filtered), so a public request stays cheap however many are sold.

Starts passgate (one uvicorn process, SQLite, payments and a signer configured; no chain is
contacted to list), adds PROVIDERS admin providers, then times ``GET /v1/discovery/resources``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._support import free_port, start_api, write_result

PROVIDERS = 1000
ROUNDS = 50
# anvil's first public dev key: a signer address for a process that never settles anything.
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def _timed(http: httpx.Client, params: dict[str, str]) -> float:
    started = time.perf_counter()
    http.get("/v1/discovery/resources", params=params).raise_for_status()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="passgate-bench-"))
    admin = "adm-bench-" + uuid.uuid4().hex
    env = {
        "PASSGATE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "PASSGATE_REDIS_URL": "",
        "PASSGATE_ADMIN_TOKEN": admin,
        "PASSGATE_KEY_PEPPER": uuid.uuid4().hex,
        "PASSGATE_CHAIN_RPC_URLS": '{"local": "http://127.0.0.1:9"}',
        "PASSGATE_CHAIN_PAY_TO_ADDRESS": "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
        "PASSGATE_CHAIN_SIGNER_PRIVATE_KEY": DEV_KEY,
    }
    from app.db import migrate
    from app.settings import Settings

    migrate.upgrade(Settings(database_url=env["PASSGATE_DATABASE_URL"]))
    port = free_port()
    proc = start_api(env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            headers = {"Authorization": f"Bearer {admin}"}
            for i in range(PROVIDERS):
                http.post("/admin/v1/providers", headers=headers, json={
                    "name": f"p{i:05d}", "baseUrl": "http://127.0.0.1:9/",
                    "priceMicros": 1000 + i}).raise_for_status()
            time.sleep(2.5)  # past the provider cache: the next listing builds afresh
            cold = _timed(http, {"limit": "100"})
            warm = sorted(_timed(http, {"limit": "100"}) for _ in range(ROUNDS))
            filtered = sorted(_timed(http, {"scheme": "exact", "resource": "p009", "limit": "100"})
                              for _ in range(ROUNDS))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    figures = {
        "providers": PROVIDERS,
        "first_listing_ms": round(cold, 1),
        "listing_median_ms": round(statistics.median(warm), 1),
        "listing_p95_ms": round(warm[int(ROUNDS * 0.95) - 1], 1),
        "filtered_median_ms": round(statistics.median(filtered), 1),
    }
    print(figures)
    print(f"wrote {write_result('discovery_listing', figures)}")


if __name__ == "__main__":
    main()
