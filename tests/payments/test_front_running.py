"""An on-chain transfer pays for exactly one thing: a buyer who paid with a signed
authorization keeps the pass whoever presents the settling transaction's hash as a pushed
payment, and whenever they do it (in the mempool, mined but not yet noticed, recorded).

Every test runs the real API, the settlement signer's steps and the chain watcher against a
dev chain of its own, and plays the attacker through the public API.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from litestar.testing import AsyncTestClient
from pydantic import SecretStr
from sqlmodel import col, select

from app.db.models.payments import Payment
from app.db.models.signer import SettlementSubmission, SettlementTransaction
from app.integrations.chain import advance, prepare
from app.main import create_app
from app.signer.config import SignerConfig, Step
from chain.usdc import (
    TokenDomain,
    encode_transfer_with_authorization,
    new_authorization,
    sign_transfer_authorization,
)
from chain.x402 import SignedPayment, decode_payment
from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.fixtures.chain import transact, wait_for_receipt
from tests.fixtures.chainapp import USDC, ChainEnv, api_client, build_env
from tests.fixtures.live import serve
from tests.fixtures.rpcproxy import RpcProxy

pytestmark = pytest.mark.chain

PRICE_1D = 10 * USDC
WITHIN = 30.0


@dataclass
class Market:
    """A dev chain, the API on it, and passgate's signer (driven step by step)."""

    env: ChainEnv
    api: AsyncTestClient[Any] | httpx.AsyncClient
    signer: SignerConfig

    async def buyer(self) -> LocalAccount:
        return await self.env.funded_account(usdc=PRICE_1D)

    async def signed_headers(self, buyer: LocalAccount) -> dict[str, str]:
        challenge = await self.api.post("/v1/passes/1d")
        assert challenge.status_code == 402, challenge.text
        client = build_payer_client(buyer, max_amount_micros=PRICE_1D)
        signed = await sign_payment_headers(client, headers=dict(challenge.headers),
                                            body=challenge.json())
        return signed.v2()

    async def pay(self, headers: dict[str, str]) -> dict[str, Any]:
        """The buyer's purchase, answered 202 (no worker runs: the test moves the signer)."""
        response = await self.api.post("/v1/passes/1d", headers=headers)
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    async def push(self, tx_hash: str) -> Any:
        return await self.api.post("/v1/passes/1d",
                                   headers={"X-Payment": tx_hash, "X-Payment-Chain": "local"})

    async def submission_of(self, payment_id: str) -> SettlementSubmission:
        async with self.env.sessions() as session:
            found = (await session.exec(
                select(SettlementSubmission)
                .where(col(SettlementSubmission.purpose_ref) == payment_id)
            )).one()
            return found

    async def signer_tx(self, payment_id: str) -> str:
        """The hash of the transaction the signer recorded (what a mempool watcher sees)."""
        submission = await self.submission_of(payment_id)
        async with self.env.sessions() as session:
            tx = (await session.exec(
                select(SettlementTransaction)
                .where(col(SettlementTransaction.submission_id) == submission.id)
            )).one()
            return tx.tx_hash

    async def record_and_broadcast(self, payment_id: str) -> str:
        submission = await self.submission_of(payment_id)
        await prepare(self.env.sessions, self.env.client, self.signer, submission.id)
        return await self.signer_tx(payment_id)

    async def settle(self, payment_id: str) -> Step:
        """Run the signer's steps as the actor would until the submission is final."""
        submission = await self.submission_of(payment_id)
        deadline = time.monotonic() + WITHIN
        while True:
            step = await advance(self.env.sessions, self.env.client, self.signer, submission.id)
            if step.delay is None:
                return step
            assert time.monotonic() < deadline, f"not final within {WITHIN}s: {step}"
            await asyncio.sleep(min(step.delay, 0.1))

    async def claim(self, pending: dict[str, Any]) -> dict[str, Any]:
        response = await self.api.get(f"/v1/payments/{pending['paymentId']}",
                                      headers={"X-Claim-Token": pending["claimToken"]})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def payment(self, payment_id: str) -> Payment:
        async with self.env.sessions() as session:
            found = await session.get(Payment, payment_id)
            assert found is not None
            return found

    async def key_works(self, key: str) -> bool:
        response = await self.api.get("/v1/api-keys/info", headers={"X-API-Key": key})
        return response.status_code == 200


async def _signer_account(env: ChainEnv) -> LocalAccount:
    account: LocalAccount = Account.create()
    await env.client.rpc("anvil_setBalance", [account.address, hex(10**20)])
    return account


@pytest.fixture
async def market(devchain_factory, settings_factory) -> AsyncIterator[Market]:
    env = await build_env(devchain_factory(), settings_factory, settle_wait=0.2,
                          key_cache_seconds=0)
    signer = await _signer_account(env)
    env.settings = env.settings.model_copy(
        update={"chain_signer_private_key": SecretStr("0x" + bytes(signer.key).hex())}
    )
    config = SignerConfig.from_settings(env.settings, env.network)
    assert config is not None
    async with env, api_client(env.settings) as api:
        yield Market(env, api, config)


async def _automine(env: ChainEnv, on: bool) -> None:
    await env.client.rpc("evm_setAutomine", [on])


async def _attacker(env: ChainEnv) -> str:
    attacker: LocalAccount = await env.funded_account(usdc=0)
    return attacker.address


def _authorization_of(market: Market, headers: dict[str, str]) -> SignedPayment:
    signed = decode_payment(headers, market.env.settings.networks().values())
    assert isinstance(signed, SignedPayment)
    return signed


async def _forwarder(env: ChainEnv) -> str:
    """A contract that calls the token with whatever calldata it is sent: a wrapper whose
    transaction names no authorization until it is mined."""
    address = Account.create().address
    token = env.client.token_address.lower().removeprefix("0x")
    # CALLDATACOPY the input, CALL the token with it, revert if that call reverted.
    code = "0x365f5f375f5f365f5f73" + token + "5af115602557005b5f5ffd"
    await env.client.rpc("anvil_setCode", [address, code])
    return address


# -- the signer's own transaction ------------------------------------------------------------


async def test_the_signers_transaction_cannot_be_pushed_while_it_is_in_the_mempool(market):
    # given a buyer's signed purchase whose settlement transaction sits in the mempool
    env = market.env
    pending = await market.pay(await market.signed_headers(await market.buyer()))
    await _automine(env, False)
    tx_hash = await market.record_and_broadcast(pending["paymentId"])

    # when someone presents that hash as a pushed payment
    stolen = await market.push(tx_hash)

    # then they are refused, and once mined the buyer's payment settles with the pass
    await _automine(env, True)
    await env.mine(1)
    step = await market.settle(pending["paymentId"])
    await env.watch_until_idle()
    claimed = await market.claim(pending)
    assert stolen.status_code == 402, stolen.text
    assert stolen.json()["code"] == "PAYMENT_ALREADY_USED"
    assert "settlement of another payment" in stolen.json()["error"]
    assert step.status == "mined"
    assert claimed["status"] == "settled"
    assert claimed["result"]["data"]["apiKey"].startswith("pass_")
    assert await env.client.balance_of(env.pay_to.address) == PRICE_1D


async def test_the_signers_transaction_cannot_be_pushed_once_mined_before_passgate_noticed(
    market,
):
    # given a settlement transaction that is mined (visible on any explorer) while passgate's
    # signer and watcher have not looked at it yet
    env = market.env
    pending = await market.pay(await market.signed_headers(await market.buyer()))
    tx_hash = await market.record_and_broadcast(pending["paymentId"])
    await wait_for_receipt(env.client, tx_hash)
    await env.mine(2)

    # when someone presents that hash as a pushed payment
    stolen = await market.push(tx_hash)

    # then they are refused, and the buyer's payment settles without getting stuck
    step = await market.settle(pending["paymentId"])
    await env.watch_until_idle()
    claimed = await market.claim(pending)
    assert stolen.status_code == 402, stolen.text
    assert stolen.json()["code"] == "PAYMENT_ALREADY_USED"
    assert step.status == "mined"
    assert claimed["status"] == "settled"
    assert claimed["result"]["data"]["apiKey"].startswith("pass_")


async def test_the_signers_transaction_cannot_be_pushed_after_it_settled(market):
    # given a buyer's payment settled by the signer and counted by the watcher
    env = market.env
    pending = await market.pay(await market.signed_headers(await market.buyer()))
    await market.settle(pending["paymentId"])
    await env.watch_until_idle()
    tx_hash = (await market.payment(pending["paymentId"])).tx_hash
    assert tx_hash is not None

    # when someone presents its hash as a pushed payment
    stolen = await market.push(tx_hash)

    # then they are refused and the buyer keeps the one pass
    claimed = await market.claim(pending)
    assert stolen.status_code == 402, stolen.text
    assert stolen.json()["code"] == "PAYMENT_ALREADY_USED"
    assert claimed["result"]["data"]["apiKey"].startswith("pass_")


# -- someone else's transaction spending the buyer's authorization ------------------------------


@pytest.mark.parametrize("mined", [True, False], ids=["mined", "in_the_mempool"])
async def test_a_copy_of_the_buyers_authorization_sent_by_someone_else_cannot_be_pushed(
    market, mined: bool
):
    # given a buyer's recorded purchase, whose authorization someone submits to the token
    # themselves (it is in the signer's transaction for anyone watching the mempool)
    env = market.env
    headers = await market.signed_headers(await market.buyer())
    pending = await market.pay(headers)
    signed = _authorization_of(market, headers)
    if not mined:
        await _automine(env, False)
    copy = await transact(env.client, await _attacker(env),
                          encode_transfer_with_authorization(signed.authorization,
                                                             signed.signature),
                          wait=mined)

    # when they present their transaction's hash as a pushed payment
    stolen = await market.push(copy)

    # then they are refused: the transfer pays for the buyer's purchase, which settles
    await _automine(env, True)
    await env.mine(2)
    step = await market.settle(pending["paymentId"])
    await env.watch_until_idle()
    claimed = await market.claim(pending)
    assert stolen.status_code == 402, stolen.text
    assert stolen.json()["code"] == "PAYMENT_ALREADY_USED"
    assert "authorization of another payment" in stolen.json()["error"]
    assert step.status == "already_used"
    assert claimed["status"] == "settled"
    assert claimed["transaction"] == copy
    assert claimed["result"]["data"]["apiKey"].startswith("pass_")
    assert await env.client.balance_of(env.pay_to.address) == PRICE_1D


@pytest.mark.parametrize("signer_first", [False, True], ids=["watcher_first", "signer_first"])
async def test_a_wrapper_transaction_pushed_from_the_mempool_loses_to_the_authorizations_buyer(
    market, signer_first: bool
):
    # given a buyer's recorded purchase, and someone who sends its authorization through a
    # contract of theirs (nothing in the pending transaction names the authorization) and
    # presents that transaction's hash while it is still in the mempool
    env = market.env
    headers = await market.signed_headers(await market.buyer())
    pending = await market.pay(headers)
    signed = _authorization_of(market, headers)
    forwarder = await _forwarder(env)
    await _automine(env, False)
    wrapped = await transact(env.client, await _attacker(env),
                             encode_transfer_with_authorization(signed.authorization,
                                                                signed.signature),
                             to=forwarder, wait=False)
    accepted = await market.push(wrapped)

    # when it is mined, and the watcher and the signer get to it (in either order)
    await _automine(env, True)
    await env.mine(2)
    if signer_first:
        await market.settle(pending["paymentId"])
        await env.watch_until_idle()
    else:
        await env.watch_until_idle()
        await market.settle(pending["paymentId"])

    # then the pushed payment bought nothing, and the buyer's purchase settled with the pass
    rival = await market.payment(accepted.json()["paymentId"])
    claimed = await market.claim(pending)
    assert accepted.status_code == 202, accepted.text
    assert rival.status == "failed"
    assert rival.failure_reason is not None
    assert rival.failure_reason.startswith("displaced")
    assert rival.result_key_id is None
    assert claimed["status"] == "settled"
    assert claimed["transaction"] == wrapped
    assert claimed["result"]["data"]["apiKey"].startswith("pass_")
    listed = await market.api.get("/admin/v1/transfers", params={"txHash": wrapped},
                                  headers=_admin())
    [transfer] = listed.json()["data"]
    assert (transfer["purpose"], transfer["reference"]) == ("payment", pending["paymentId"])


def _admin() -> dict[str, str]:
    from tests.conftest import ADMIN_TOKEN

    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# -- the race: a pushed hash recorded before the authorization's payment -------------------------


class _HeldSimulation:
    """Holds the answer to the buyer's payment simulation (the last node call of its
    verification) after the node computed it, until released: the verification then goes on
    with what the chain looked like before the attacker's transaction."""

    def __init__(self, proxy: RpcProxy) -> None:
        self.proxy = proxy
        self.armed = True
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, method: str, params: list[Any], batched: bool) -> dict[str, Any] | None:
        if method != "eth_call" or not self.armed or not params:
            return None
        data = str(params[0].get("data") or params[0].get("input") or "")
        if "e3ee160e" not in data and "cf092995" not in data:  # transferWithAuthorization
            return None
        self.armed = False
        answer = self.proxy.forward({"jsonrpc": "2.0", "id": 1, "method": method,
                                     "params": params})
        self.reached.set()
        self.release.wait(WITHIN)
        return {k: v for k, v in answer.items() if k in ("result", "error")}


async def test_a_pass_bought_with_a_pushed_hash_is_revoked_when_the_authorizations_payment_settles(
    devchain_factory, settings_factory
):
    # given an API whose node answers the buyer's payment simulation only after an attacker
    # sent the buyer's authorization through a wrapper, got it mined, and bought a pass with
    # its hash (the authorization was not recorded yet, so nothing tied the two)
    chain = devchain_factory()
    proxy = RpcProxy(chain.rpc_url)
    held = _HeldSimulation(proxy)
    proxy.override = held
    env = await build_env(chain, settings_factory, settle_wait=0.2, key_cache_seconds=0,
                          chain_rpc_urls={"local": proxy.url}, chain_rpc_timeout_seconds=20.0)
    signer = await _signer_account(env)
    env.settings = env.settings.model_copy(
        update={"chain_signer_private_key": SecretStr("0x" + bytes(signer.key).hex())}
    )
    config = SignerConfig.from_settings(env.settings, env.network)
    assert config is not None
    try:
        async with (env, serve(create_app(env.settings)) as url,
                    httpx.AsyncClient(base_url=url, timeout=WITHIN) as api):
            market = Market(env, api, config)
            headers = await market.signed_headers(await market.buyer())
            signed = _authorization_of(market, headers)
            buying = asyncio.ensure_future(market.pay(headers))
            assert await asyncio.to_thread(held.reached.wait, WITHIN)
            forwarder = await _forwarder(env)
            wrapped = await transact(env.client, await _attacker(env),
                                     encode_transfer_with_authorization(signed.authorization,
                                                                        signed.signature),
                                     to=forwarder)
            stolen = await market.push(wrapped)
            held.release.set()
            pending = await buying

            # when the signer settles the buyer's payment (the transfer already happened)
            step = await market.settle(pending["paymentId"])
            await env.watch_until_idle()

            # then the pushed payment lost the transfer and its pass, and the buyer has theirs
            claimed = await market.claim(pending)
            stolen_key = stolen.json()["data"]["apiKey"]
            stolen_works = await market.key_works(stolen_key)
            async with env.sessions() as session:
                pushes = (await session.exec(
                    select(Payment).where(col(Payment.scheme) == "push",
                                          col(Payment.tx_hash) == wrapped)
                )).all()
    finally:
        held.release.set()
        proxy.close()

    assert stolen.status_code == 201, stolen.text
    assert step.status == "already_used"
    assert [(p.status, (p.failure_reason or "")[:9]) for p in pushes] == [("failed", "displaced")]
    assert stolen_works is False
    assert claimed["status"] == "settled"
    assert claimed["transaction"] == wrapped
    assert claimed["result"]["data"]["apiKey"].startswith("pass_")


async def test_a_pushed_transfer_of_the_buyers_own_still_buys_a_pass(market):
    # given a plain USDC transfer to payTo (what an honest pushing client sends)
    env = market.env
    sender = await env.funded_account(usdc=PRICE_1D)

    # when its sender presents the hash as it broadcasts, before it is mined
    await _automine(env, False)
    tx_hash = await env.send_usdc(sender.address, env.pay_to.address, PRICE_1D, wait=False)
    pending = await market.push(tx_hash)
    await _automine(env, True)
    await env.mine(2)
    await env.watch_until_idle()

    # then the pass is theirs once it is mined and counted
    claimed = await market.claim(pending.json())
    assert pending.status_code == 202, pending.text
    assert claimed["status"] == "settled"
    assert claimed["result"]["data"]["apiKey"].startswith("pass_")


def test_an_authorization_is_read_from_a_direct_call_of_either_form():
    # given an authorization's calldata in the bytes-signature and the v,r,s forms
    from chain.usdc import authorization_in_calldata
    from tests.fixtures.chain import encode_call

    payer = Account.create()
    auth = new_authorization(payer.address, Account.create().address, 5)
    signed = sign_transfer_authorization(
        payer.key, auth, TokenDomain("USDC", "2", 84532, Account.create().address)
    )
    with_bytes = encode_transfer_with_authorization(auth, signed.signature)
    with_vrs = encode_call(
        "receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,"
        "bytes32)", auth.from_address, auth.to_address, auth.value, auth.valid_after,
        auth.valid_before, bytes.fromhex(auth.nonce[2:]), signed.v, bytes.fromhex(signed.r[2:]),
        bytes.fromhex(signed.s[2:]),
    )

    # when they are decoded
    found = [authorization_in_calldata(data) for data in (with_bytes, with_vrs)]

    # then both name the payer and nonce, and a plain transfer names none
    assert {(u.authorizer, u.nonce) for u in found if u} == {
        (payer.address.lower(), auth.nonce.lower())}
    assert authorization_in_calldata(encode_call("transfer(address,uint256)",
                                                 payer.address, 5)) is None
