"""The same payment sent at once to two API processes (separate OS processes, one PostgreSQL
database, one Redis) with a separate worker process settling: one key, one transfer."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from x402.extensions.payment_identifier import generate_payment_id

from chain.x402.payer import build_payer_client, sign_payment_headers, with_payment_identifier
from tests.fixtures.chain import encode_call, transact
from tests.gateway.helpers import free_port, start_uvicorn, stop, wait_until_up

ROOT = Path(__file__).resolve().parents[2]
PRICE_1D = 10_000_000
SIGNER = 6


@pytest.fixture
def stack(settings_factory, devchain, pay_to) -> Iterator[list[str]]:
    settings = settings_factory()
    if settings.is_sqlite:
        pytest.skip("multi-process: SQLite is one local file; scale-out runs on PostgreSQL")
    env = {
        **os.environ,
        "PASSGATE_ENVIRONMENT": "test",
        "PASSGATE_DATABASE_URL": settings.database_url,
        "PASSGATE_REDIS_URL": settings.redis_url,
        "PASSGATE_REDIS_PREFIX": f"mp:{uuid.uuid4().hex[:8]}",
        "PASSGATE_KEY_PEPPER": settings.key_pepper.get_secret_value(),
        "PASSGATE_CHAIN_RPC_URLS": json.dumps({"local": devchain.rpc_url}),
        "PASSGATE_CHAIN_PAY_TO_ADDRESS": pay_to,
        "PASSGATE_CHAIN_DEPOSIT_ADDRESS": Account.create().address,
        "PASSGATE_CHAIN_SIGNER_PRIVATE_KEY": devchain.accounts[SIGNER].private_key,
        "PASSGATE_SETTLE_WAIT": "30",
        "PASSGATE_DATABASE_POOL_SIZE": "4",
        "PASSGATE_DATABASE_MAX_OVERFLOW": "4",
        "PASSGATE_LOG_LEVEL": "WARNING",
    }
    ports = [free_port(), free_port()]
    apis = [start_uvicorn("app.main:create_app", port, env, factory=True) for port in ports]
    worker = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", "--threads", "2"],
                              cwd=ROOT, env=env)
    try:
        for port, proc in zip(ports, apis, strict=True):
            wait_until_up(f"http://127.0.0.1:{port}/v1/health/live", proc)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for proc in [*apis, worker]:
            stop(proc)


async def test_one_signature_sent_eight_times_to_two_processes_buys_one_key(
    stack, devchain, chain_client, pay_to
):
    payer = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", payer.address, PRICE_1D))
    async with httpx.AsyncClient(timeout=60) as http:
        challenge = await http.post(f"{stack[0]}/v1/passes/1d")
        signed = await sign_payment_headers(
            build_payer_client(payer, max_amount_micros=PRICE_1D),
            headers=dict(challenge.headers), body=challenge.json(),
        )

        responses = await asyncio.gather(*(
            http.post(f"{stack[i % 2]}/v1/passes/1d", headers=signed.v2()) for i in range(8)
        ))

    keys = {r.json()["data"]["apiKey"] for r in responses if r.status_code == 201}
    others = [r.json()["code"] for r in responses if r.status_code != 201]
    assert len(keys) == 1, [r.text for r in responses]
    assert set(others) <= {"PAYMENT_ALREADY_USED"}
    assert await chain_client.balance_of(pay_to) == PRICE_1D
    assert await chain_client.balance_of(payer.address) == 0


async def test_eight_fresh_authorizations_with_one_payment_identifier_buy_one_key(
    stack, devchain, chain_client, pay_to
):
    # A client retrying on two processes at once, signing anew each time, one identifier.
    payer = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", payer.address, 8 * PRICE_1D))
    payment_id = generate_payment_id()
    async with httpx.AsyncClient(timeout=60) as http:
        headers = []
        for i in range(8):
            challenge = await http.post(f"{stack[i % 2]}/v1/passes/1d")
            client = with_payment_identifier(
                build_payer_client(payer, max_amount_micros=PRICE_1D), payment_id)
            signed = await sign_payment_headers(client, headers=dict(challenge.headers),
                                                body=challenge.json())
            headers.append(signed.v2())

        responses = await asyncio.gather(*(
            http.post(f"{stack[i % 2]}/v1/passes/1d", headers=h) for i, h in enumerate(headers)
        ))

    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert len({r.json()["data"]["apiKey"] for r in responses}) == 1
    assert await chain_client.balance_of(pay_to) == PRICE_1D
    assert await chain_client.balance_of(payer.address) == 7 * PRICE_1D
