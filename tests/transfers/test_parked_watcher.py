"""A network's watcher whose run cannot succeed is parked for an operator after a bounded
number of runs (``chain_watch``, kind ``chain_watcher``, ref: the network), and scans again
once the operator has fixed the cause and retried it."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete
from sqlmodel import col

from app.db.models.attention import CHAIN_WATCHER, AttentionItem
from app.db.models.credits import LedgerEntry
from app.ids import new_id
from app.settings import Settings
from chain.devchain import DevChain
from tests.factories import register_agent
from tests.fixtures.chainapp import USDC, ChainEnv, api_client, balance, build_env, link_wallet
from tests.fixtures.workers import running_actors
from workers.chain import watch

LIMIT = 3


async def _plant_ledger_entry(env: ChainEnv, agent_id: str, tx_hash: str) -> str:
    """A ledger entry a hand edit left under the deposit's idempotency key, for another amount:
    crediting the deposit is refused as a reused key, on every run."""
    receipt = await env.client.get_receipt(tx_hash)
    assert receipt is not None
    [log] = receipt.transfers
    entry = LedgerEntry(id=new_id("led"), agent_id=agent_id, kind="deposit", amount_micros=1,
                        balance_after_micros=0, reason="hand edit",
                        idempotency_key=f"deposit:{env.chain.chain_id}:{tx_hash}:"
                                        f"{log.log_index}")
    async with env.sessions() as session:
        session.add(entry)
        await session.commit()
    return entry.id


async def _forget(env: ChainEnv, *ledger_ids: str) -> None:
    async with env.sessions() as session:
        await session.execute(delete(LedgerEntry).where(col(LedgerEntry.id).in_(ledger_ids)))
        await session.commit()


async def test_a_watcher_that_cannot_count_a_deposit_is_parked_then_credits_it_once_fixed(
    devchain: DevChain, settings_factory: Callable[..., Settings], admin_headers
):
    # given a linked wallet's deposit whose ledger key a hand edit already used for another
    # amount (counting it is refused, whichever run meets it)
    env = await build_env(devchain, settings_factory, job_max_failures=LIMIT)
    async with env, api_client(env.settings) as api:
        agent = await register_agent(api)
        wallet = await env.funded_account()
        await link_wallet(api, agent["apiKey"], wallet)
        before = await balance(api, agent["apiKey"])
        tx_hash = await env.send_usdc(wallet.address, env.deposit.address, 25 * USDC)
        planted = await _plant_ledger_entry(env, agent["agentId"], tx_hash)
        try:
            async with running_actors(env.settings) as run:
                # when the watcher runs more often than the limit
                for _ in range(LIMIT + 1):
                    await run(watch, "local", retries=0)
                listed = await api.get("/admin/v1/attention",
                                       params={"kind": CHAIN_WATCHER, "ref": "local"},
                                       headers=admin_headers)
                health = await api.get("/v1/health")
                parked_balance = await balance(api, agent["apiKey"])
                transfers = await api.get("/admin/v1/transfers", params={"txHash": tx_hash},
                                          headers=admin_headers)

                # and an operator removes the stray entry and retries the watcher
                await _forget(env, planted)
                [item] = listed.json()["data"]
                retried = await api.post(f"/admin/v1/attention/{item['id']}/retry",
                                         json={"reason": "removed a stray ledger entry"},
                                         headers=admin_headers)
                await run(watch, "local", retries=0)
                await run(watch, "local", retries=0)  # a second run counts nothing again
                after = await balance(api, agent["apiKey"])
        finally:
            await _forget(env, planted)
            async with env.sessions() as session:
                await session.execute(delete(AttentionItem).where(
                    col(AttentionItem.kind) == CHAIN_WATCHER,
                    col(AttentionItem.ref) == "local"))
                await session.commit()

    # then the watcher was parked after the limit (counted no further) with the conflict,
    # health names it, nothing was stored or credited half-way; after the retry the deposit
    # is stored and credited exactly once
    assert (item["kind"], item["ref"], item["status"], item["attempts"], item["actor"]) == (
        "chain_watcher", "local", "open", LIMIT, "watch")
    assert "Conflict" in item["errorType"]
    assert health.status_code == 503
    assert health.json()["attention"]["byKind"]["chain_watcher"] == 1
    assert parked_balance == before
    assert transfers.json()["data"] == []
    assert retried.status_code == 200, retried.text
    assert after == before + 25 * USDC
