"""``/v1/health`` tells the truth about the background: what ran, what did not, and why."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from eth_account import Account
from litestar.testing import AsyncTestClient

from app.main import create_app
from chain.devchain import DevChain
from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.conftest import delete_prefixed_keys
from tests.fixtures.chain import encode_call, transact
from tests.payments.conftest import chain_settings
from workers import actor_context
from workers.runner import start_worker

PRICE_1D = 10_000_000
PERIODIC_JOBS = {"chain_tick", "settlement_sweep", "webhook_sweep", "expire_keys",
                 "expire_payments", "gateway_release_stale"}


async def _health_until(client: Any, done: Callable[[Any], bool], within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        response = await client.get("/v1/health")
        if done(response) or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)  # heartbeats are written by another thread's worker


async def test_a_new_api_reports_the_background_it_has_not_seen_yet_as_starting(fresh_settings):
    # Given an API that has just started on a database no worker has used
    async with AsyncTestClient(app=create_app(fresh_settings())) as client:
        # When health is asked at once
        response = await client.get("/v1/health")

    # Then the parts it expects are "starting", not a failure
    body = response.json()
    assert response.status_code == 200, body
    assert body["reasons"] == []
    assert {job["name"]: job["status"] for job in body["jobs"]} == {
        "expire_keys": "starting", "settlement_sweep": "starting", "webhook_sweep": "starting"}
    assert body["scheduler"]["status"] == "starting"
    assert body["signer"]["status"] == "unused"
    assert body["webhooks"]["oldestUndelivered"] is None


async def test_health_follows_a_worker_running_the_periodic_jobs_and_its_stop(
    fresh_settings, redis_url
):
    # Given an API and a worker that also sends the periodic jobs, with a 2 s threshold
    prefix = f"health:{uuid.uuid4().hex[:8]}"
    settings = fresh_settings(redis_prefix=prefix, health_stale_after_seconds=2.0)
    worker = start_worker(settings, threads=2, schedule=True)
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            # When every periodic job has had its first run (a job shows once it has run)
            running = await _health_until(
                client, lambda r: r.status_code == 200 and PERIODIC_JOBS.issubset(
                    job["name"] for job in r.json()["jobs"]) and all(
                    job["status"] == "ok" for job in r.json()["jobs"]), within=60)
            # And the worker stops for longer than the chain tick's threshold (3 x 1 s)
            await asyncio.to_thread(worker.stop, 10_000)
            stopped = await _health_until(client, lambda r: r.status_code == 503, within=15)
    finally:
        worker.stop(timeout=1_000)
        actor_context.configure(None)
        delete_prefixed_keys(redis_url, prefix)

    # Then health was ok with every job's last success and lag, and then says what stopped
    body = running.json()
    assert running.status_code == 200, body
    assert PERIODIC_JOBS.issubset(job["name"] for job in body["jobs"])
    assert all(job["lastSuccessAt"] and job["queueDelaySeconds"] >= 0 for job in body["jobs"])
    assert body["scheduler"]["status"] == "ok"
    assert body["webhooks"]["status"] == "ok"
    late = stopped.json()
    assert stopped.status_code == 503, late
    assert late["status"] == "degraded"
    assert any(reason.startswith("chain_tick has not succeeded for") for reason in late["reasons"])
    assert late["scheduler"]["status"] == "late"


async def test_health_is_degraded_when_payments_are_on_without_a_signer(
    fresh_settings, devchain: DevChain
):
    # Given chain payments configured without a settlement signer
    settings = fresh_settings(**chain_settings(devchain, Account.create().address))

    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/v1/health")

    # Then signed payments could never settle: degraded, saying which setting is missing
    body = response.json()
    assert response.status_code == 503, body
    assert body["signer"]["status"] == "not_configured"
    assert body["signer"]["configured"] is False
    assert any("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY" in reason for reason in body["reasons"])


async def test_health_is_degraded_when_the_signer_has_no_gas_money(
    fresh_settings, devchain: DevChain
):
    # Given a signer whose address holds no ETH
    signer = Account.create()
    settings = fresh_settings(**chain_settings(
        devchain, Account.create().address,
        chain_signer_private_key="0x" + bytes(signer.key).hex()))

    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/v1/health")

    # Then health names the signer, its balance and what one settlement needs
    body = response.json()
    assert response.status_code == 503, body
    assert body["signer"]["status"] == "no_gas"
    [network] = body["signer"]["networks"]
    assert (network["network"], network["gasBalanceWei"], network["funded"]) == ("local", "0",
                                                                              False)
    assert int(network["minimumWei"]) > 0
    assert any(reason.startswith(f"the settlement signer {signer.address} has 0 wei on local")
               for reason in body["reasons"])


async def test_health_shows_the_oldest_unsettled_payment_and_undelivered_webhook(
    fresh_settings, devchain: DevChain, chain_client, admin_headers
):
    # Given an API whose background is not running, a funded signer, and a webhook endpoint
    signer = devchain.accounts[0]
    settings = fresh_settings(**chain_settings(
        devchain, Account.create().address, settle_wait=0.0,
        chain_signer_private_key=signer.private_key))
    payer = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", payer.address, PRICE_1D))
    async with AsyncTestClient(app=create_app(settings)) as client:
        before = (await client.get("/v1/health")).json()
        created = await client.post("/admin/v1/webhooks", headers=admin_headers,
                                    json={"url": "http://127.0.0.1:9/hook"})
        assert created.status_code == 201, created.text

        # When an agent registers and a pass is paid for, with nothing to process either
        await client.post("/v1/agents/register", json={"name": "waiting"})
        challenge = await client.post("/v1/passes/1d")
        signed = await sign_payment_headers(
            build_payer_client(payer, max_amount_micros=PRICE_1D),
            headers=dict(challenge.headers), body=challenge.json())
        pending = await client.post("/v1/passes/1d", headers=signed.v2())
        after = (await client.get("/v1/health")).json()

    # Then health names the oldest of each, with its age
    assert before["signer"]["oldestUnsettledPayment"] is None
    assert before["webhooks"]["oldestUndelivered"] is None
    assert pending.status_code == 202, pending.text
    oldest_payment = after["signer"]["oldestUnsettledPayment"]
    assert oldest_payment["id"] == pending.json()["paymentId"]
    assert oldest_payment["status"] == "pending"
    assert oldest_payment["ageSeconds"] >= 0
    oldest_webhook = after["webhooks"]["oldestUndelivered"]
    assert oldest_webhook["status"] == "not_fanned_out"
    assert oldest_webhook["id"].startswith("evt_")
    assert oldest_webhook["createdAt"].endswith("Z")


def test_health_expects_only_jobs_the_workers_schedule() -> None:
    from app.health.verdict import EXPECTED_JOBS
    from workers.actors import all_actors
    from workers.periodic import registered

    assert all_actors()
    assert set(EXPECTED_JOBS) <= {job.actor.actor_name for job in registered()}

