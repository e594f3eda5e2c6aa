"""A pushed transfer named while still in the mempool: 202 at once (nothing can be checked
yet), then the watcher holds the mined transfer to the price before the payment settles."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from app.db.models.events import Event
from tests.fixtures.chainapp import USDC, ChainEnv, api_client, build_env

PRICE_1D = 10 * USDC


async def _unmined_push(env: ChainEnv, amount: int) -> tuple[str, str]:
    """A transfer of ``amount`` to payTo that sits in the mempool; (sender, tx hash)."""
    sender = await env.funded_account()
    await env.client.rpc("evm_setAutomine", [False])
    tx_hash = await env.send_usdc(sender.address, env.pay_to.address, amount, wait=False)
    return sender.address, tx_hash


async def _mine_and_watch(env: ChainEnv) -> None:
    await env.client.rpc("evm_setAutomine", [True])
    await env.mine(2)
    await env.watch_until_idle()


async def _payment_events(env: ChainEnv, payment_id: str) -> list[str]:
    async with env.sessions() as session:
        rows = await session.exec(
            select(Event).where(col(Event.type).startswith("payment."))
            .order_by(col(Event.created_at))
        )
        return [e.type for e in rows.all() if e.data.get("paymentId") == payment_id]


async def _status(api: Any, pending: Any) -> Any:
    body = pending.json()
    return await api.get(f"/v1/payments/{body['paymentId']}",
                         headers={"X-Claim-Token": body["claimToken"]})


async def test_a_mempool_push_that_pays_less_than_the_price_fails_and_stays_unmatched(
    devchain_factory, settings_factory, admin_headers
):
    env = await build_env(devchain_factory(), settings_factory, settle_wait=0.2)
    async with env, api_client(env.settings) as api:
        # given a pass named with a 1-micro transfer that is not mined yet
        sender, tx_hash = await _unmined_push(env, 1)
        pending = await api.post("/v1/passes/1d",
                                 headers={"X-Payment": tx_hash, "X-Payment-Chain": "local"})

        # when it is mined and the watcher counts it
        await _mine_and_watch(env)

        # then the payment failed as underpaid, bought nothing, and the money waits for an
        # operator
        status = await _status(api, pending)
        listed = await api.get("/admin/v1/transfers", params={"txHash": tx_hash},
                               headers=admin_headers)
        events = await _payment_events(env, pending.json()["paymentId"])

    assert pending.status_code == 202, pending.text
    assert status.status_code == 200, status.text
    payment = status.json()
    assert payment["status"] == "failed"
    assert payment["reason"] == "underpaid: 1 of 10000000 micros"
    assert payment["result"] is None
    assert payment["payer"] == sender.lower()
    [transfer] = listed.json()["data"]
    assert (transfer["status"], transfer["purpose"], transfer["unmatched"]) == (
        "confirmed", "unknown", True)
    assert transfer["amountMicros"] == 1
    assert events == ["payment.pending", "payment.failed"]


async def test_a_mempool_push_that_pays_more_than_the_price_settles_with_its_payer(
    devchain_factory, settings_factory, admin_headers
):
    env = await build_env(devchain_factory(), settings_factory, settle_wait=0.2)
    async with env, api_client(env.settings) as api:
        # given a pass named with a 12 USDC transfer (price 10) that is not mined yet
        sender, tx_hash = await _unmined_push(env, 12 * USDC)
        pending = await api.post("/v1/passes/1d",
                                 headers={"X-Payment": tx_hash, "X-Payment-Chain": "local"})

        # when it is mined and the watcher counts it
        await _mine_and_watch(env)

        # then the payment settled (the key is claimable), naming who paid; the transfer row
        # is the payment's and shows the whole amount
        status = await _status(api, pending)
        listed = await api.get("/admin/v1/transfers", params={"txHash": tx_hash},
                               headers=admin_headers)

    assert pending.status_code == 202, pending.text
    assert pending.json()["status"] == "pending"
    assert status.status_code == 200, status.text
    payment = status.json()
    assert payment["status"] == "settled"
    assert payment["payer"] == sender.lower()
    assert payment["amountMicros"] == PRICE_1D
    assert payment["result"]["data"]["apiKey"].startswith("pass_")
    [transfer] = listed.json()["data"]
    assert (transfer["purpose"], transfer["unmatched"]) == ("payment", False)
    assert transfer["reference"] == payment["paymentId"]
    assert transfer["amountMicros"] == 12 * USDC
