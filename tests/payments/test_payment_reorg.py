"""A reorg that orphans a settled payment's transfer: the payment fails, its pass is revoked."""

from __future__ import annotations

from app.db.models.payments import Payment
from app.db.models.signer import SettlementTransaction
from app.ids import new_id
from app.signer.service import request_settlement
from chain.usdc import new_authorization
from tests.fixtures.chainapp import USDC, api_client, build_env

PRICE_1D = 10 * USDC


async def test_a_settled_payment_orphaned_by_a_reorg_fails_and_its_pass_key_is_revoked(
    devchain_factory, settings_factory, admin_headers
):
    # given a pass bought with a pushed transfer that the watcher counted as that payment
    env = await build_env(devchain_factory(), settings_factory,
                          chain_confirmations={"local": 1})
    async with env, api_client(env.settings) as api:
        buyer = await env.funded_account()
        await env.watch()
        snapshot = await env.client.rpc("evm_snapshot", [])
        tx_hash = await env.send_usdc(buyer.address, env.pay_to.address, PRICE_1D)
        bought = await api.post("/v1/passes/1d",
                                headers={"X-Payment": tx_hash, "X-Payment-Chain": "local"})
        key = bought.json()["data"]["apiKey"]
        await env.watch()
        counted = await api.get("/admin/v1/transfers", params={"txHash": tx_hash},
                                headers=admin_headers)

        # when the chain reorganises without the payment's block
        assert await env.client.rpc("evm_revert", [snapshot]) is True
        await env.mine(3)
        report = await env.watch()

        # then the payment is failed (reorged), and the key it bought no longer works
        payments = await api.get("/admin/v1/payments", params={"payer": buyer.address},
                                 headers=admin_headers)
        refused = await api.get("/v1/api-keys/info", headers={"X-API-Key": key})

    assert bought.status_code == 201, bought.text
    assert counted.json()["data"][0]["purpose"] == "payment"
    assert counted.json()["data"][0]["unmatched"] is False
    assert report.reorged == 1
    payment = payments.json()["data"][0]
    assert payment["status"] == "failed"
    assert payment["reason"].startswith("reorged")
    assert refused.status_code == 401


async def test_a_push_named_after_the_watcher_counted_its_transfer_is_reversed_by_a_reorg(
    devchain_factory, settings_factory, admin_headers
):
    # given a pass bought with a pushed transfer that the watcher had already counted (as
    # nobody's) when the client named it: the usual order once a client waits for confirmations
    env = await build_env(devchain_factory(), settings_factory,
                          chain_confirmations={"local": 1})
    async with env, api_client(env.settings) as api:
        buyer = await env.funded_account()
        await env.watch()
        snapshot = await env.client.rpc("evm_snapshot", [])
        tx_hash = await env.send_usdc(buyer.address, env.pay_to.address, PRICE_1D)
        await env.watch()
        bought = await api.post("/v1/passes/1d",
                                headers={"X-Payment": tx_hash, "X-Payment-Chain": "local"})
        key = bought.json()["data"]["apiKey"]
        counted = await api.get("/admin/v1/transfers", params={"txHash": tx_hash},
                                headers=admin_headers)
        before = await api.get("/admin/v1/payments", params={"payer": buyer.address},
                               headers=admin_headers)

        # when the chain reorganises without the payment's block
        assert await env.client.rpc("evm_revert", [snapshot]) is True
        await env.mine(3)
        report = await env.watch()

        # then the payment is failed (reorged), and the key it bought no longer works
        after = await api.get("/admin/v1/payments", params={"payer": buyer.address},
                              headers=admin_headers)
        refused = await api.get("/v1/api-keys/info", headers={"X-API-Key": key})

    assert bought.status_code == 201, bought.text
    [transfer] = counted.json()["data"]
    [payment] = before.json()["data"]
    assert (transfer["purpose"], transfer["unmatched"]) == ("payment", False)
    assert transfer["reference"] == payment["paymentId"]
    assert report.reorged == 1
    assert after.json()["data"][0]["status"] == "failed"
    assert after.json()["data"][0]["reason"].startswith("reorged")
    assert refused.status_code == 401


async def test_a_replaced_settlement_transaction_that_got_mined_is_counted_as_its_payment(
    devchain_factory, settings_factory, admin_headers
):
    # given a payment whose settlement transaction was replaced (stuck), and the original -
    # not the replacement the submission now names - mined before the signer looked again
    env = await build_env(devchain_factory(), settings_factory,
                          chain_confirmations={"local": 1})
    async with env, api_client(env.settings) as api:
        buyer = await env.funded_account()
        await env.watch()
        original = await env.send_usdc(buyer.address, env.pay_to.address, PRICE_1D)
        authorization = new_authorization(buyer.address, env.pay_to.address, PRICE_1D)
        async with env.sessions() as session:
            payment = Payment(
                id=new_id("pay"), purpose="pass", resource="POST /v1/passes/1d",
                fingerprint="f" * 64, network="local", scheme="exact",
                payer=buyer.address.lower(), pay_to=env.pay_to.address.lower(),
                amount_micros=PRICE_1D, auth_nonce=authorization.nonce, status="submitted",
            )
            session.add(payment)
            submission = await request_settlement(session, env.network, authorization,
                                                  "0x" + "00" * 65, purpose_ref=payment.id)
            replacement = "0x" + "ab" * 32
            for tx_hash, fee in ((original, 1), (replacement, 2)):
                session.add(SettlementTransaction(
                    id=new_id("stx"), submission_id=submission.id, chain_id=env.network.chain_id,
                    signer=buyer.address, nonce=0, tx_hash=tx_hash, raw_tx="0x",
                    max_fee_per_gas=fee, max_priority_fee_per_gas=fee, gas_limit=100_000,
                ))
            submission.tx_hash = replacement
            session.add(submission)
            await session.commit()

        # when the watcher counts the mined transfer
        await env.watch()
        counted = await api.get("/admin/v1/transfers", params={"txHash": original},
                                headers=admin_headers)

    # then it is the payment's (so a reorg would undo it), not an unmatched transfer
    row = counted.json()["data"][0]
    assert (row["purpose"], row["unmatched"]) == ("payment", False)
