"""The discovery listing with many gateway providers: the first request (items built), later
ones (built items filtered), and one after a single provider changed (only its item rebuilt),
so a public request stays cheap however many are sold. While the first listing builds, a
probe thread asks ``/v1/health/live`` over and over: its longest wait is how long the build
held the event loop (every other call of the process) at once. Figures are also given as
ratios to the warm listing measured in the same run.

Starts passgate (one uvicorn process, SQLite, payments and a signer configured; no chain is
contacted to list), adds PROVIDERS admin providers, then times ``GET /v1/discovery/resources``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
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


def _probe(base: str, stop: threading.Event, waits: list[float]) -> None:
    """Time ``/v1/health/live`` back to back until ``stop`` (the event loop's responsiveness)."""
    with httpx.Client(base_url=base, timeout=60) as http:
        while not stop.is_set():
            started = time.perf_counter()
            http.get("/v1/health/live")
            waits.append((time.perf_counter() - started) * 1000)


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
            stop, waits = threading.Event(), []
            probe = threading.Thread(target=_probe, args=(str(http.base_url), stop, waits))
            probe.start()
            time.sleep(0.3)
            try:
                cold = _timed(http, {"limit": "100"})
                time.sleep(0.3)
            finally:
                stop.set()
                probe.join()
            warm = sorted(_timed(http, {"limit": "100"}) for _ in range(ROUNDS))
            filtered = sorted(_timed(http, {"scheme": "exact", "resource": "p009", "limit": "100"})
                              for _ in range(ROUNDS))
            http.patch("/admin/v1/providers/p00500", headers=headers,
                       json={"priceMicros": 7}).raise_for_status()
            time.sleep(2.5)
            one_changed = _timed(http, {"limit": "100"})
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    figures = {
        "providers": PROVIDERS,
        "first_listing_ms": round(cold, 1),
        "listing_median_ms": round(statistics.median(warm), 1),
        "listing_p95_ms": round(warm[int(ROUNDS * 0.95) - 1], 1),
        "filtered_median_ms": round(statistics.median(filtered), 1),
        "one_changed_listing_ms": round(one_changed, 1),
        "longest_probe_wait_during_first_listing_ms": round(max(waits), 1),
        "probe_median_ms": round(statistics.median(waits), 1),
    }
    median = figures["listing_median_ms"]
    figures["ratios_to_warm_listing"] = {
        "first_listing": round(cold / median, 1),
        "one_changed_listing": round(one_changed / median, 1),
        "longest_probe_wait": round(max(waits) / median, 1),
    }
    print(figures)
    print(f"wrote {write_result('discovery_listing', figures)}")


if __name__ == "__main__":
    main()
