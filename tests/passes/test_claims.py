"""Slow settlement: 202 with a claim token, the key fetched once, and a worker restart."""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account
from litestar.testing import AsyncTestClient

from app.main import create_app
from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from workers.runner import start_worker

PRICE_1D = 10_000_000
SIGNER = 3


async def _funded(chain, usdc: int):
    account = Account.create()
    async with chain.client(timeout=10) as client:
        await transact(client, chain.accounts[0].address,
                       encode_call("mint(address,uint256)", account.address, usdc))
    return account


async def _pay(api, account) -> dict[str, str]:
    challenge = await api.post("/v1/passes/1d")
    payer = build_payer_client(account, max_amount_micros=PRICE_1D)
    signed = await sign_payment_headers(payer, headers=dict(challenge.headers),
                                        body=challenge.json())
    return signed.v2()


async def _claim_until_settled(api, payment_id: str, token: str, within: float = 30.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        response = await api.get(f"/v1/payments/{payment_id}", headers={"X-Claim-Token": token})
        if response.status_code != 200 or response.json()["status"] == "settled":
            return response
        await asyncio.sleep(0.5)
    raise AssertionError("the payment did not settle in time")


@pytest.fixture
def slow_chain(devchain_factory):
    return devchain_factory(block_time=2.0)


async def test_a_slow_chain_answers_202_then_the_claim_returns_the_key_once(
    settings_factory, slow_chain
):
    pay_to = Account.create().address
    settings = settings_factory(
        redis_url="", **chain_settings(slow_chain, pay_to, settle_wait=0.2,
                                       chain_signer_private_key=slow_chain.accounts[SIGNER].private_key),
    )
    payer = await _funded(slow_chain, PRICE_1D)
    worker = start_worker(settings, threads=2)
    try:
        async with AsyncTestClient(app=create_app(settings)) as api:
            pending = await api.post("/v1/passes/1d", headers=await _pay(api, payer))
            body = pending.json()
            claimed = await _claim_until_settled(api, body["paymentId"], body["claimToken"])
            again = await api.get(f"/v1/payments/{body['paymentId']}",
                                  headers={"X-Claim-Token": body["claimToken"]})
            wrong = await api.get(f"/v1/payments/{body['paymentId']}",
                                  headers={"X-Claim-Token": "clt_wrong"})
    finally:
        worker.stop(timeout=10_000)

    assert pending.status_code == 202, pending.text
    assert body["status"] == "pending"
    assert body["statusUrl"].endswith(f"/v1/payments/{body['paymentId']}")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["result"]["data"]["apiKey"].startswith("pass_")
    assert again.status_code == 409
    assert wrong.status_code == 404


async def test_a_payment_recorded_while_no_worker_runs_settles_when_one_starts(
    settings_factory, devchain
):
    pay_to = Account.create().address
    settings = settings_factory(
        redis_url="", **chain_settings(devchain, pay_to, settle_wait=0.2,
                                       chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )
    payer = await _funded(devchain, PRICE_1D)
    async with AsyncTestClient(app=create_app(settings)) as api:
        # given the request was answered while no worker was running (crashed, not started)
        pending = await api.post("/v1/passes/1d", headers=await _pay(api, payer))
        body = pending.json()
        still = await api.get(f"/v1/payments/{body['paymentId']}",
                              headers={"X-Claim-Token": body["claimToken"]})
        # when a worker starts, its sweeper finds the queued settlement in the database
        worker = start_worker(settings, threads=2)
        try:
            claimed = await _claim_until_settled(api, body["paymentId"], body["claimToken"], 45)
        finally:
            worker.stop(timeout=10_000)

    assert pending.status_code == 202
    assert still.json()["status"] == "pending"
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["result"]["data"]["apiKey"].startswith("pass_")
    async with devchain.client(timeout=10) as client:
        assert await client.balance_of(pay_to) == PRICE_1D
