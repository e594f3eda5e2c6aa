"""`passgate worker` serves its own metrics port (PASSGATE_WORKER_METRICS_PORT), behind the
metrics token when one is set; its counters move as it delivers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.factories import bearer
from tests.fixtures.webhook_receiver import Receiver, Reply
from tests.gateway.helpers import free_port, stop, wait_until_up
from tests.scrape import Scrape
from tests.webhooks.conftest import create_endpoint, deliveries, new_platform, wait_for
from tests.webhooks.test_delivery import TEST_ONLY, send_test

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "worker-metrics-token-0123456789"
ATTEMPTS = "passgate_webhook_attempts_total"


@pytest.fixture
def worker_metrics(wh_settings: Settings) -> Iterator[str]:
    """A `passgate worker` process on the test's database and Redis namespace."""
    port = free_port()
    env = {
        **os.environ,
        "PASSGATE_ENVIRONMENT": "test",
        "PASSGATE_DATABASE_URL": wh_settings.database_url,
        "PASSGATE_REDIS_URL": wh_settings.redis_url,
        "PASSGATE_REDIS_PREFIX": wh_settings.redis_prefix,
        "PASSGATE_KEY_PEPPER": wh_settings.key_pepper.get_secret_value(),
        "PASSGATE_WEBHOOK_ALLOWED_CIDRS": '["127.0.0.0/8"]',
        "PASSGATE_WORKER_METRICS_PORT": str(port),
        "PASSGATE_METRICS_TOKEN": TOKEN,
        "PASSGATE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", "--threads", "2"],
                            cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until_up(url, proc)
        yield url
    finally:
        stop(proc)


async def _scrape(url: str) -> Scrape:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url, headers=bearer(TOKEN))
    assert response.status_code == 200, response.text
    return Scrape(response.text)


async def test_a_worker_counts_its_deliveries_on_its_own_port(
    api, admin_headers, receiver: Receiver, worker_metrics: str
):
    # Given a worker process, an endpoint answering 200, and the worker's counts before
    receiver.routes["/hook"] = Reply(200)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"), **TEST_ONLY)
    before = await _scrape(worker_metrics)

    # When the API sends a test event, which the worker delivers
    message_id = await send_test(api, platform["key"], endpoint["id"])

    async def delivered() -> bool:
        rows = await deliveries(api, platform["key"], endpoint["id"])
        return any(r["id"] == message_id and r["status"] == "delivered" for r in rows)

    await wait_for(delivered, what="the worker's delivery")

    # Then the worker's own port counts the successful attempt
    after = await _scrape(worker_metrics)
    assert after.value(ATTEMPTS, outcome="success") == before.value(ATTEMPTS, outcome="success") + 1


async def test_a_worker_port_wants_the_metrics_token(worker_metrics: str):
    # When asked without the token, and with a wrong one
    async with httpx.AsyncClient(timeout=10) as client:
        missing = await client.get(worker_metrics)
        wrong = await client.get(worker_metrics, headers=bearer("not-the-token-at-all"))

    # Then both are refused
    assert missing.status_code == 401
    assert wrong.status_code == 401
