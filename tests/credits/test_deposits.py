"""Deposits: USDC from a linked wallet to the deposit address becomes credits, exactly once."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from app.credits.limits import MAX_BALANCE_MICROS
from app.db.models.agents import Agent
from app.db.models.credits import LedgerEntry
from app.db.models.events import Event
from app.settings import Settings
from chain.devchain import DevChain
from tests.factories import register_agent
from tests.fixtures.chainapp import (
    USDC,
    ChainEnv,
    api_client,
    balance,
    build_env,
    link_wallet,
)


async def _deposit_events(env: ChainEnv, agent_id: str) -> list[Event]:
    async with env.sessions() as session:
        rows = await session.execute(
            select(Event).where(Event.type == "credits.deposited", Event.agent_id == agent_id)
        )
        return list(rows.scalars())


async def test_a_deposit_is_credited_once_after_its_confirmations_even_when_rescanned(
    devchain: DevChain, settings_factory: Callable[..., Settings], admin_headers
):
    # Given a network that wants 3 confirmations and an agent with a linked, funded wallet
    env = await build_env(devchain, settings_factory, chain_confirmations={"local": 3})
    async with env, api_client(env.settings) as client:
        agent = await register_agent(client)
        wallet = await env.funded_account()
        await link_wallet(client, agent["apiKey"], wallet)
        before = await balance(client, agent["apiKey"])

        # When it sends 25 USDC to the deposit address and the watcher runs at once
        tx_hash = await env.send_usdc(wallet.address, env.deposit.address, 25 * USDC)
        first = await env.watch()

        # Then the transfer is stored but not counted yet (1 of 3 confirmations)
        assert first.stored == 1
        assert first.confirmed == 0
        assert await balance(client, agent["apiKey"]) == before
        listed = await client.get(
            "/admin/v1/transfers", params={"txHash": tx_hash}, headers=admin_headers
        )
        assert [t["status"] for t in listed.json()["data"]] == ["pending"]

        # When two more blocks arrive
        await env.mine(2)
        second = await env.watch()

        # Then it is credited once, visible in the balance, the ledger and the outbox
        assert second.confirmed == 1
        assert await balance(client, agent["apiKey"]) == before + 25 * USDC
        ledger = await client.get(
            "/admin/v1/credits/ledger", params={"agentId": agent["agentId"]}, headers=admin_headers
        )
        deposits = [e for e in ledger.json()["data"] if e["kind"] == "deposit"]
        assert [e["amountMicros"] for e in deposits] == [25 * USDC]
        events = await _deposit_events(env, agent["agentId"])
        assert len(events) == 1
        assert events[0].data["transaction"] == tx_hash
        assert events[0].data["amountMicros"] == 25 * USDC
        assert events[0].data["source"] == "deposit"

        # When an operator rewinds the watcher to before the deposit and it scans again
        transfer = (
            await client.get(
                "/admin/v1/transfers", params={"txHash": tx_hash}, headers=admin_headers
            )
        ).json()["data"][0]
        rewind = await client.post(
            "/admin/v1/chain/watchers/local/rewind",
            json={"block": transfer["blockNumber"] - 1, "reason": "re-scan test"},
            headers=admin_headers,
        )
        assert rewind.status_code == 200, rewind.text
        again = await env.watch_until_idle()

        # Then nothing new is stored and nothing is credited twice
        assert sum(r.stored for r in again) == 0
        assert await balance(client, agent["apiKey"]) == before + 25 * USDC
        async with env.sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.agent_id == agent["agentId"], LedgerEntry.kind == "deposit")
            )
        assert count == 1
        assert len(await _deposit_events(env, agent["agentId"])) == 1


async def test_a_deposit_from_an_unknown_sender_is_kept_unmatched_until_an_operator_assigns_it(
    chain_env: ChainEnv, admin_headers
):
    async with api_client(chain_env.settings) as client:
        # Given a deposit from a wallet nobody linked
        agent = await register_agent(client)
        stranger = await chain_env.funded_account()
        tx_hash = await chain_env.send_usdc(stranger.address, chain_env.deposit.address, 12 * USDC)
        await chain_env.watch()
        # Then it is recorded as unmatched, credited to nobody
        unmatched = await client.get(
            "/admin/v1/transfers",
            params={"unmatched": "true", "from": stranger.address},
            headers=admin_headers,
        )
        [row] = unmatched.json()["data"]
        assert row["txHash"] == tx_hash
        assert row["status"] == "confirmed"
        assert row["purpose"] == "deposit"
        assert row["agentId"] is None
        assert row["from"] == stranger.address
        assert row["amountMicros"] == 12 * USDC

        # When the wallet is linked later, nothing is credited by itself (documented policy)
        await link_wallet(client, agent["apiKey"], stranger)
        await chain_env.watch()
        assert await balance(client, agent["apiKey"]) == 0

        # When an operator assigns it
        assigned = await client.post(
            f"/admin/v1/transfers/{row['id']}/assign",
            json={"agentId": agent["agentId"], "reason": "wallet linked after paying"},
            headers=admin_headers,
        )
        # Then it is credited once, audited, and cannot be assigned again
        assert assigned.status_code == 200, assigned.text
        assert assigned.json()["unmatched"] is False
        assert assigned.json()["agentId"] == agent["agentId"]
        assert await balance(client, agent["apiKey"]) == 12 * USDC
        audit = await client.get(
            "/admin/v1/audit-log", params={"action": "transfer.assign"}, headers=admin_headers
        )
        assert [e["targetId"] for e in audit.json()["data"]][:1] == [row["id"]]
        again = await client.post(
            f"/admin/v1/transfers/{row['id']}/assign",
            json={"agentId": agent["agentId"], "reason": "twice"},
            headers=admin_headers,
        )
        assert again.status_code == 409
        assert await balance(client, agent["apiKey"]) == 12 * USDC


async def test_a_transfer_to_the_pay_to_address_that_no_payment_claims_is_unmatched(
    chain_env: ChainEnv,
):
    # Given a linked wallet that sends to the x402 payTo address instead of the deposit address
    sender = await chain_env.funded_account()
    await chain_env.send_usdc(sender.address, chain_env.pay_to.address, USDC)
    await chain_env.watch()
    # Then it is kept for an operator, not credited as a deposit
    async with chain_env.sessions() as session:
        from app.db.models.transfers import ChainTransfer

        row = (
            await session.execute(
                select(ChainTransfer).where(ChainTransfer.from_address == sender.address.lower())
            )
        ).scalar_one()
    assert (row.status, row.purpose, row.unmatched) == ("confirmed", "unknown", True)


async def test_a_deposit_past_the_maximum_balance_is_kept_unmatched_and_others_still_count(
    devchain: DevChain, settings_factory: Callable[..., Settings], admin_headers
):
    # Given one agent whose balance is at the maximum and another with an ordinary balance,
    # both with linked wallets
    env = await build_env(devchain, settings_factory, chain_confirmations={"local": 1})
    async with env, api_client(env.settings) as client:
        full, plain = await register_agent(client), await register_agent(client)
        full_wallet, plain_wallet = await env.funded_account(), await env.funded_account()
        await link_wallet(client, full["apiKey"], full_wallet)
        await link_wallet(client, plain["apiKey"], plain_wallet)
        async with env.sessions() as session:
            agent = await session.get(Agent, full["agentId"])
            assert agent is not None
            agent.balance_micros = MAX_BALANCE_MICROS
            session.add(agent)
            await session.commit()
        before = await balance(client, plain["apiKey"])

        # When both deposit and the watcher counts them
        too_much = await env.send_usdc(full_wallet.address, env.deposit.address, 5 * USDC)
        await env.send_usdc(plain_wallet.address, env.deposit.address, 7 * USDC)
        await env.mine(1)
        await env.watch_until_idle()
        listed = await client.get("/admin/v1/transfers", params={"txHash": too_much},
                                  headers=admin_headers)

        # Then the one that would overflow is kept for an operator, uncredited; the other
        # is credited as usual
        row = listed.json()["data"][0]
        assert (row["status"], row["unmatched"]) == ("confirmed", True)
        assert await balance(client, full["apiKey"]) == MAX_BALANCE_MICROS
        assert await balance(client, plain["apiKey"]) == before + 7 * USDC
