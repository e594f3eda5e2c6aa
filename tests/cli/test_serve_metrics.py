"""`passgate serve --workers 2`: /metrics adds up every server process, whichever answers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.gateway.helpers import free_port, stop, wait_until_up
from tests.scrape import Scrape

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 12


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    """The operator's directory, with a file left by an earlier run (garbage, to be removed)."""
    path = tmp_path / "metrics"
    path.mkdir()
    (path / "counter_999999.db").write_bytes(b"left over from a previous run")
    return path


@contextmanager
def serving(settings_factory, metrics_dir: Path) -> Iterator[str]:
    """``passgate serve --workers 2`` sharing ``metrics_dir``, stopped (SIGTERM) on leaving."""
    settings = settings_factory()
    if not settings.is_sqlite:
        pytest.skip("the database plays no part in how processes share metrics")
    port = free_port()
    env = {
        **os.environ,
        "PASSGATE_ENVIRONMENT": "test",
        "PASSGATE_DATABASE_URL": settings.database_url,
        "PASSGATE_REDIS_URL": settings.redis_url,
        "PASSGATE_REDIS_PREFIX": settings.redis_prefix,
        "PASSGATE_KEY_PEPPER": settings.key_pepper.get_secret_value(),
        "PASSGATE_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "serve", "--workers", "2", "--port", str(port)],
        cwd=ROOT, env=env,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/v1/health/live", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def server(settings_factory, metrics_dir: Path) -> Iterator[str]:
    with serving(settings_factory, metrics_dir) as url:
        yield url


def _fresh_get(url: str) -> httpx.Response:
    # A connection per request, so the kernel may hand each to either process.
    with httpx.Client(timeout=10) as client:
        return client.get(url, headers={"Connection": "close"})


def test_every_scrape_shows_the_requests_of_both_server_processes(server, metrics_dir):
    # Given two server processes sharing a metrics directory (its stale file removed)
    before = Scrape(_fresh_get(f"{server}/metrics").text)
    labels = {"method": "GET", "route": "/v1/health/live", "status": "200"}

    # When requests arrive on new connections
    for _ in range(REQUESTS):
        assert _fresh_get(f"{server}/v1/health/live").status_code == 200

    # Then every scrape, whichever process answers it, counts all of them
    seen = {Scrape(_fresh_get(f"{server}/metrics").text).value(
        "passgate_http_requests_total", **labels) for _ in range(6)}
    assert seen == {before.value("passgate_http_requests_total", **labels) + REQUESTS}
    pids = {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("*.db")}
    assert "999999" not in pids
    assert len(pids) == 2


def test_processes_that_stop_leave_the_live_gauges_and_keep_their_counts(
    settings_factory, metrics_dir
):
    # Given two server processes that served requests
    with serving(settings_factory, metrics_dir) as url:
        assert _fresh_get(f"{url}/v1/health/live").status_code == 200
        live = sorted(path.name for path in metrics_dir.glob("gauge_livesum_*.db"))
        assert len(live) == 2

    # When they stop, their share of the live gauges (calls not yet written) goes with them,
    # while what they counted stays for the next scrape of this run's directory
    assert list(metrics_dir.glob("gauge_livesum_*.db")) == []
    assert list(metrics_dir.glob("counter_*.db"))
