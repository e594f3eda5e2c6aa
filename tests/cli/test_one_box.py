"""A new operator's one box: ``passgate migrate && passgate serve`` with chain settings and no
other process, on SQLite and on PostgreSQL. Real processes, a real anvil chain, the Python x402
client, a local webhook receiver checked with the ``standardwebhooks`` package."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from standardwebhooks import Webhook
from x402.http.clients import x402HttpxClient

from chain.devchain import DevChain
from chain.x402.payer import build_payer_client
from tests.factories import key_headers
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.chainapp import link_wallet
from tests.fixtures.onebox import Served, fresh_database, operator_env, passgate, serving
from tests.fixtures.webhook_receiver import Receiver, Reply

pytestmark = pytest.mark.chain

PRICE_1D = 10_000_000
SHORT = "5s"
PRICE_SHORT = 10_000
ADMIN_TOKEN = "adm-onebox-" + "7" * 32
PEPPER = "onebox-pepper-" + "3" * 32
# Expiry runs every 15 s: a 5 s pass is marked expired within about 20 s.
EXPIRY_WAIT = 45.0
WEBHOOK_WAIT = 10.0


@dataclass
class Box:
    served: Served
    kind: str
    receiver: Receiver
    secret: str
    signer: LocalAccount
    pay_to: str
    deposit: str
    secrets: list[str]

    @property
    def base(self) -> str:
        return self.served.base

    def events(self, event_type: str) -> list[dict[str, Any]]:
        """Every delivered event of ``event_type``, each verified with standardwebhooks."""
        found = []
        for request in self.receiver.hits("/hook"):
            payload: dict[str, Any] = Webhook(self.secret).verify(request.body, request.headers)
            if payload["type"] == event_type:
                found.append(payload)
        return found

    async def event(self, event_type: str, within: float, **data: Any) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for payload in self.events(event_type):
                if all(payload["data"].get(k) == v for k, v in data.items()):
                    return payload
            await asyncio.sleep(0.1)  # the receiver runs on this loop: poll its log
        raise AssertionError(f"no {event_type} {data} within {within:g} s; got "
                             f"{[r.body[:120] for r in self.receiver.hits('/hook')]}")


def _rpc(chain: DevChain, method: str, *params: Any) -> Any:
    return httpx.post(chain.rpc_url, timeout=10, json={
        "jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()["result"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def box(
    request: pytest.FixtureRequest, devchain: DevChain, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Box]:
    """Given an operator who migrates then serves, with chain settings and nothing else."""
    kind: str = request.param
    directory: Path = tmp_path_factory.mktemp(f"onebox-{kind}")
    signer, pay_to, deposit = Account.create(), Account.create(), Account.create()
    _rpc(devchain, "anvil_setBalance", signer.address, hex(10**19))
    signer_key = "0x" + bytes(signer.key).hex()
    receiver = await Receiver({"/hook": Reply(200)}).start()
    with fresh_database(kind, directory) as database_url:
        env = operator_env(
            database_url,
            key_pepper=PEPPER, admin_token=ADMIN_TOKEN, log_level="WARNING",
            webhook_allowed_cidrs='["127.0.0.0/8"]',
            chain_rpc_urls=json.dumps({"local": devchain.rpc_url}),
            chain_local_chain_id=str(devchain.chain_id),
            chain_local_usdc_address=devchain.token_address,
            chain_start_blocks=json.dumps({"local": int(_rpc(devchain, "eth_blockNumber"), 16)}),
            chain_pay_to_address=pay_to.address, chain_deposit_address=deposit.address,
            chain_signer_private_key=signer_key,
            passes=json.dumps([
                {"period": "1d", "seconds": 86_400, "price_micros": PRICE_1D},
                {"period": SHORT, "seconds": 5, "price_micros": PRICE_SHORT},
            ]),
        )
        migrated = passgate("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
        with serving(env, directory / "serve.log") as served:
            async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
                endpoint = await http.post(
                    "/admin/v1/webhooks", json={"url": receiver.url("/hook")},
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert endpoint.status_code == 201, endpoint.text
            yield Box(served, kind, receiver, endpoint.json()["secret"], signer, pay_to.address,
                      deposit.address, secrets=[signer_key, signer_key[2:], PEPPER, ADMIN_TOKEN])
    await receiver.stop()


async def _payer(devchain: DevChain, chain_client: Any, micros: int) -> LocalAccount:
    account: LocalAccount = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", account.address, micros))
    return account


async def _buy(base: str, payer: LocalAccount, period: str, price: int) -> httpx.Response:
    async with x402HttpxClient(build_payer_client(payer, max_amount_micros=price),
                               timeout=60) as client:
        response: httpx.Response = await client.post(f"{base}/v1/passes/{period}")
        return response


async def test_serve_prints_one_start_up_line_naming_what_it_runs_and_no_secret(box: Box):
    # When the operator reads what `passgate serve` printed
    output = box.served.output()
    first = output.splitlines()[0]

    # Then its first line says what runs, against what, and no secret appears anywhere
    assert first.startswith("passgate serve: API on 127.0.0.1:"), output
    assert "background in this process" in first
    assert "jobs chain_tick/1s" in first
    assert "webhook_sweep/10s" in first
    assert "broker embedded" in first
    database = "database sqlite " if box.kind == "sqlite" else "database postgresql at 127.0.0.1"
    assert database in first
    assert "networks local (chain " in first
    assert f"signer {box.signer.address}" in first
    assert not [secret for secret in box.secrets if secret in output]


async def test_a_pass_bought_with_the_python_x402_client_settles_within_the_wait(
    box: Box, devchain: DevChain, chain_client: Any
):
    # Given a wallet holding the price of a 1-day pass
    payer = await _payer(devchain, chain_client, PRICE_1D)
    before = await chain_client.balance_of(box.pay_to)

    # When the Python x402 client buys the pass
    response = await _buy(box.base, payer, "1d", PRICE_1D)

    # Then the in-process signer settled it inside the wait: 201 with the settlement
    assert response.status_code == 201, response.text
    assert response.json()["data"]["apiKey"].startswith("pass_")
    settlement = json.loads(base64.b64decode(response.headers["PAYMENT-RESPONSE"]))
    assert settlement["success"] is True
    assert await chain_client.balance_of(box.pay_to) == before + PRICE_1D


async def test_a_webhook_arrives_within_seconds_and_verifies_with_standardwebhooks(box: Box):
    # When an agent registers
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=box.base, timeout=30) as http:
        agent = (await http.post("/v1/agents/register", json={"name": "hooked"})).json()

    # Then its agent.registered arrives within seconds, signed with the endpoint's secret
    event = await box.event("agent.registered", WEBHOOK_WAIT, agentId=agent["agentId"])
    assert time.monotonic() - started < WEBHOOK_WAIT
    assert event["data"]["agentName"] == "hooked"


async def test_a_deposit_from_a_linked_wallet_is_credited_and_announced(
    box: Box, devchain: DevChain, chain_client: Any
):
    # Given an agent with a linked wallet holding USDC
    async with httpx.AsyncClient(base_url=box.base, timeout=30) as http:
        agent = (await http.post("/v1/agents/register", json={"name": "depositor"})).json()
        wallet: LocalAccount = Account.create()
        await link_wallet(http, agent["apiKey"], wallet)
        await chain_client.rpc("anvil_setBalance", [wallet.address, hex(10**18)])
        await chain_client.rpc("anvil_impersonateAccount", [wallet.address])
        await transact(chain_client, devchain.accounts[0].address,
                       encode_call("mint(address,uint256)", wallet.address, 3_000_000))

        # When the wallet sends 2.5 USDC to the deposit address
        await transact(chain_client, wallet.address,
                       encode_call("transfer(address,uint256)", box.deposit, 2_500_000))

        # Then the watcher credits it once, and credits.deposited is delivered
        event = await box.event("credits.deposited", 30.0, agentId=agent["agentId"])
        balance = await http.get("/v1/balance", headers=key_headers(agent["apiKey"]))
    assert event["data"]["amountMicros"] == 2_500_000
    assert balance.json()["creditsMicros"] == 2_500_000


async def test_a_short_pass_expires_with_a_key_expired_webhook(
    box: Box, devchain: DevChain, chain_client: Any
):
    # Given a 5-second pass bought with x402
    payer = await _payer(devchain, chain_client, PRICE_SHORT)
    bought = await _buy(box.base, payer, SHORT, PRICE_SHORT)
    assert bought.status_code == 201, bought.text
    key = bought.json()["data"]["apiKey"]
    async with httpx.AsyncClient(base_url=box.base, timeout=30) as http:
        info = (await http.get("/v1/api-keys/info", headers=key_headers(key))).json()

        # When its time is up, Then the scheduler's expiry marks it and key.expired arrives
        event = await box.event("key.expired", EXPIRY_WAIT, keyId=info["id"])
        refused = await http.get("/v1/api-keys/info", headers=key_headers(key))
    assert event["data"]["keyType"] == "x402"
    assert refused.status_code == 401


async def test_health_is_ok_and_reports_every_background_part_running(box: Box):
    # When the operator asks for health once every periodic job had its first run
    async with httpx.AsyncClient(base_url=box.base, timeout=30) as http:
        deadline = time.monotonic() + 30
        while True:
            response = await http.get("/v1/health")
            jobs = response.json()["jobs"]
            if all(job["status"] == "ok" for job in jobs) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)  # the first runs are sent at start; wait for them

    # Then every part says it ran, and nothing is wrong
    body = response.json()
    assert response.status_code == 200, body
    assert (body["status"], body["reasons"]) == ("ok", [])
    assert {job["name"] for job in jobs} >= {
        "chain_tick", "settlement_sweep", "webhook_sweep", "expire_keys", "expire_payments",
        "gateway_release_stale"}
    assert all(job["lastSuccessAt"] and job["queueDelaySeconds"] is not None for job in jobs)
    [chain] = body["chains"]
    assert (chain["network"], chain["status"]) == ("local", "ok")
    assert body["signer"]["status"] == "ok"
    assert body["signer"]["address"] == box.signer.address
    assert body["signer"]["networks"][0]["funded"] is True
    assert body["webhooks"]["status"] == "ok"
    assert body["scheduler"]["status"] == "ok"
    assert body["broker"]["status"] == "ok"
