"""Paid gateway calls retried with their x402 payment identifier: the kept answer, never a second
upstream call or charge; other terms are 409; a streamed answer is not kept (409)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from litestar.testing import AsyncTestClient
from x402.extensions.payment_identifier import PAYMENT_IDENTIFIER, generate_payment_id
from x402.http.clients import x402HttpxClient

from app.main import create_app
from chain.x402 import SignedPayment, decode_payment
from chain.x402.payer import build_payer_client, sign_payment_headers, with_payment_identifier
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from tests.fixtures.services import in_ci
from tests.gateway.helpers import (
    PRICE,
    free_port,
    provider_config,
    start_uvicorn,
    stop,
    wait_until_up,
)
from workers.demo.server import embedded_service
from workers.runner import start_worker

SIGNER = 9
NODE_DIR = Path(__file__).resolve().parents[2] / "chain" / "node"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    proc = start_uvicorn("tests.gateway.upstream:app", port)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/__hits", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def gw_settings(settings_factory, devchain, pay_to, upstream):
    return settings_factory(
        redis_url="",
        providers=[provider_config(upstream)],
        **chain_settings(devchain, pay_to, settle_wait=20.0,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )


@pytest.fixture
async def api(gw_settings) -> AsyncIterator[AsyncTestClient]:
    worker = start_worker(gw_settings, threads=2)
    try:
        async with AsyncTestClient(app=create_app(gw_settings)) as client:
            yield client
    finally:
        worker.stop(timeout=10_000)


async def _payer(devchain, chain_client, account=None):
    account = account or Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", account.address, 1_000_000))
    return account


async def _signed(api, account, path: str, payment_id: str, body=None) -> dict[str, str]:
    challenge = await api.post(path, json=body or {"q": 1})
    assert challenge.status_code == 402, challenge.text
    client = with_payment_identifier(build_payer_client(account, max_amount_micros=1_000_000),
                                     payment_id)
    signed = await sign_payment_headers(client, headers=dict(challenge.headers),
                                        body=challenge.json())
    return signed.v2()


async def _hits(upstream: str, path: str) -> int:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{upstream}/__hits", params={"path": path})
    return int(response.json()["hits"])


def _path() -> str:
    return f"/echo/{uuid.uuid4().hex}"


async def test_a_paid_call_402_declares_the_payment_identifier(api):
    response = await api.post("/v1/gateway/echo/echo/x", json={"q": 1})

    required = json.loads(base64.b64decode(response.headers["PAYMENT-REQUIRED"]))
    assert required["extensions"][PAYMENT_IDENTIFIER]["info"] == {"required": False}


async def test_a_retry_with_a_fresh_authorization_gets_the_kept_answer_without_a_new_call(
    api, gw_settings, upstream, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client)
    path, payment_id = _path(), generate_payment_id()
    first = await api.post(f"/v1/gateway/echo{path}", json={"q": 1},
                           headers=await _signed(api, payer, f"/v1/gateway/echo{path}",
                                                 payment_id))
    assert first.status_code == 200, first.text
    retry_headers = await _signed(api, payer, f"/v1/gateway/echo{path}", payment_id)

    retry = await api.post(f"/v1/gateway/echo{path}", json={"q": 1}, headers=retry_headers)

    assert retry.status_code == 200, retry.text
    assert retry.content == first.content
    assert retry.headers["PAYMENT-RESPONSE"] == first.headers["PAYMENT-RESPONSE"]
    assert await _hits(upstream, path) == 1
    assert await chain_client.balance_of(pay_to) == PRICE
    signed = decode_payment(retry_headers, gw_settings.networks().values())
    assert isinstance(signed, SignedPayment)
    assert not await chain_client.authorization_state(payer.address, signed.authorization.nonce)


async def test_a_streamed_answer_is_kept_once_relayed_and_replayed_to_the_retry(
    api, upstream, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client)
    payment_id = generate_payment_id()
    url = "/v1/gateway/echo/sse?events=3&interval=0"
    first = await api.post(url, json={"q": 1}, headers=await _signed(api, payer, url, payment_id))
    assert first.status_code == 200, first.text
    hits = await _hits(upstream, "/sse")

    retry = await api.post(url, json={"q": 1}, headers=await _signed(api, payer, url, payment_id))

    assert retry.status_code == 200, retry.text
    assert retry.content == first.content
    assert retry.headers["content-type"] == first.headers["content-type"]
    assert retry.headers["PAYMENT-RESPONSE"] == first.headers["PAYMENT-RESPONSE"]
    assert await _hits(upstream, "/sse") == hits
    assert await chain_client.balance_of(pay_to) == PRICE


async def test_the_same_identifier_for_another_call_is_409(
    api, upstream, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client)
    path, payment_id = _path(), generate_payment_id()
    url = f"/v1/gateway/echo{path}"
    first = await api.post(url, json={"q": 1},
                           headers=await _signed(api, payer, url, payment_id))
    assert first.status_code == 200, first.text

    other = await api.post(url, json={"q": 2},
                           headers=await _signed(api, payer, url, payment_id, {"q": 2}))

    assert other.status_code == 409, other.text
    assert other.json()["code"] == "CONFLICT"
    assert await _hits(upstream, path) == 1
    assert await chain_client.balance_of(pay_to) == PRICE


async def test_the_same_identifier_from_another_payer_is_409_and_gets_no_answer(
    api, upstream, devchain, chain_client, pay_to
):
    payer, other = await _payer(devchain, chain_client), await _payer(devchain, chain_client)
    path, payment_id = _path(), generate_payment_id()
    url = f"/v1/gateway/echo{path}"
    first = await api.post(url, json={"q": 1}, headers=await _signed(api, payer, url, payment_id))
    assert first.status_code == 200, first.text

    response = await api.post(url, json={"q": 1},
                              headers=await _signed(api, other, url, payment_id))

    assert response.status_code == 409, response.text
    assert path not in response.text
    assert await _hits(upstream, path) == 1
    assert await chain_client.balance_of(pay_to) == PRICE


async def test_an_answer_over_64_kib_is_not_kept_and_its_retry_is_409_without_a_new_call(
    api, upstream, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client)
    payment_id = generate_payment_id()
    url = "/v1/gateway/echo/large?bytes=100000"
    first = await api.post(url, json={"q": 1}, headers=await _signed(api, payer, url, payment_id))
    assert first.status_code == 200, first.text
    assert len(first.content) == 100_000
    hits = await _hits(upstream, "/large")

    retry = await api.post(url, json={"q": 1}, headers=await _signed(api, payer, url, payment_id))

    assert retry.status_code == 409, retry.text
    assert "not kept" in retry.json()["error"]
    assert await _hits(upstream, "/large") == hits
    assert await chain_client.balance_of(pay_to) == PRICE


async def test_a_call_that_failed_upstream_is_retried_with_the_first_authorization_only(
    api, gw_settings, upstream, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client)
    payment_id = generate_payment_id()
    url = "/v1/gateway/echo/status/500"
    first_headers = await _signed(api, payer, url, payment_id)
    failed = await api.post(url, json={"q": 1}, headers=first_headers)
    assert failed.status_code == 502, failed.text

    retry = await api.post(url, json={"q": 1}, headers=await _signed(api, payer, url, payment_id))

    assert retry.status_code == 502, retry.text  # called again: nothing was answered before
    assert await chain_client.balance_of(pay_to) == 0
    signed = decode_payment(first_headers, gw_settings.networks().values())
    assert isinstance(signed, SignedPayment)
    assert not await chain_client.authorization_state(payer.address, signed.authorization.nonce)


async def test_concurrent_retries_with_one_identifier_make_one_call_and_one_charge(
    api, gw_settings, upstream, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client)
    path, payment_id = _path(), generate_payment_id()
    url = f"/v1/gateway/echo{path}"
    headers = [await _signed(api, payer, url, payment_id) for _ in range(6)]
    async with AsyncTestClient(app=create_app(gw_settings)) as second:
        clients = [api, second] * 3

        responses = await asyncio.gather(
            *(c.post(url, json={"q": 1}, headers=h) for c, h in zip(clients, headers, strict=True))
        )

    statuses = [r.status_code for r in responses]
    assert 200 in statuses, [r.text for r in responses]
    assert set(statuses) <= {200, 409}, [r.text for r in responses]
    assert all(r.json()["code"] == "CONFLICT" for r in responses if r.status_code == 409)
    assert len({r.content for r in responses if r.status_code == 200}) == 1
    assert await _hits(upstream, path) == 1
    assert await chain_client.balance_of(pay_to) == PRICE


@pytest.fixture
def served(gw_settings) -> Iterator[str]:
    settings = gw_settings.model_copy(update={"port": free_port()})
    with embedded_service(settings) as base:
        yield base


async def test_the_python_sdk_client_retries_a_paid_call_and_it_runs_once(
    served, upstream, devchain, chain_client, pay_to
):
    payer = await _payer(devchain, chain_client)
    client = with_payment_identifier(build_payer_client(payer, max_amount_micros=1_000_000),
                                     generate_payment_id())
    path = _path()

    async with x402HttpxClient(client, timeout=60) as http:
        first = await http.post(f"{served}/v1/gateway/echo{path}", json={"q": 1})
        retry = await http.post(f"{served}/v1/gateway/echo{path}", json={"q": 1})

    assert first.status_code == retry.status_code == 200, (first.text, retry.text)
    assert retry.content == first.content
    assert retry.headers["PAYMENT-RESPONSE"] == first.headers["PAYMENT-RESPONSE"]
    assert await _hits(upstream, path) == 1
    assert await chain_client.balance_of(pay_to) == PRICE


async def test_the_npm_client_retries_a_paid_call_and_it_runs_once(
    served, upstream, devchain, chain_client, pay_to
):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@x402" / "extensions").exists():
        if in_ci():
            pytest.fail("node and chain/node/node_modules are required in CI")
        pytest.skip("node or the npm x402 packages are not installed (make setup)")
    payer = await _payer(devchain, chain_client)
    key = payer.key.hex()
    key = key if key.startswith("0x") else "0x" + key
    path = _path()

    result = await asyncio.to_thread(
        subprocess.run,
        [node, "buy-pass-id.mjs", f"{served}/v1/gateway/echo{path}", key, generate_payment_id(),
         "2"],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    first, retry = json.loads(result.stdout.strip().splitlines()[-1])["attempts"]
    assert first["status"] == retry["status"] == 200, (first, retry)
    assert retry["body"] == first["body"]
    assert retry["paymentResponse"] == first["paymentResponse"]
    assert first["nonce"] != retry["nonce"]
    assert await _hits(upstream, path) == 1
    assert await chain_client.balance_of(pay_to) == PRICE
    assert not await chain_client.authorization_state(payer.address, retry["nonce"])


async def test_a_retry_before_the_call_settles_waits_for_the_settlement_for_its_answer(
    settings_factory, devchain, chain_client, pay_to, upstream
):
    # given a paid call answered upstream but not settled yet (no worker runs the signer)
    settings = settings_factory(
        redis_url="", providers=[provider_config(upstream)],
        **chain_settings(devchain, pay_to, settle_wait=0.0,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )
    payer = await _payer(devchain, chain_client)
    path = "/v1/gateway/echo" + _path()
    async with AsyncTestClient(app=create_app(settings)) as api:
        headers = await _signed(api, payer, path, generate_payment_id())
        first = await api.post(path, json={"q": 1}, headers=headers)
        assert first.status_code == 200, first.text
        assert first.headers["x-payment-status"] == "pending"

        # when the same identifier comes back while the payer could still spend its funds
        retry = await api.post(path, json={"q": 1}, headers=headers)

        # then the kept answer waits for the settlement: 409 in progress, no second call
        assert retry.status_code == 409, retry.text
        assert retry.json()["code"] == "CONFLICT"
        assert "in progress" in retry.json()["error"]

        # and once the signer settled the payment, the retry gets the kept answer
        worker = start_worker(settings, threads=2)
        try:
            later = retry
            for _ in range(100):  # bounded: 20 s
                later = await api.post(path, json={"q": 1}, headers=headers)
                if later.status_code == 200:
                    break
                await asyncio.sleep(0.2)
        finally:
            worker.stop(timeout=10_000)
    assert later.status_code == 200, later.text
    assert later.json() == first.json()
    assert await _hits(upstream, path.removeprefix("/v1/gateway/echo")) == 1
