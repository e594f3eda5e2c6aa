"""Reorgs: orphaned transfers are marked ``reorged`` and whatever they caused is undone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from app.db.models.credits import LedgerEntry
from app.db.models.transfers import ChainTransfer
from app.settings import Settings
from tests.factories import register_agent
from tests.fixtures.chain import encode_call, wait_for_receipt
from tests.fixtures.chainapp import USDC, ChainEnv, api_client, balance, build_env, link_wallet


def _signed_transfer(env: ChainEnv, account: LocalAccount, nonce: int, amount: int) -> str:
    """A raw transfer signed locally with fixed fees: sent twice, it is the same transaction."""
    tx = {
        "type": 2,
        "chainId": env.chain.chain_id,
        "nonce": nonce,
        "to": env.chain.token_address,
        "value": 0,
        "gas": 120_000,
        "maxFeePerGas": 50 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "data": encode_call("transfer(address,uint256)", env.deposit.address, amount),
    }
    return "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()


async def _send_raw(env: ChainEnv, raw: str) -> str:
    tx_hash = await env.client.send_raw_transaction(raw)
    await wait_for_receipt(env.client, tx_hash)
    return tx_hash


async def _transfer(env: ChainEnv, tx_hash: str) -> ChainTransfer:
    async with env.sessions() as session:
        row = (
            await session.execute(select(ChainTransfer).where(ChainTransfer.tx_hash == tx_hash))
        ).scalar_one()
        return row


async def _ledger(env: ChainEnv, agent_id: str) -> list[tuple[str, int]]:
    async with env.sessions() as session:
        rows = await session.execute(
            select(LedgerEntry).where(LedgerEntry.agent_id == agent_id).order_by(LedgerEntry.id)
        )
        return [(e.kind, e.amount_micros) for e in rows.scalars()]


async def _setup(
    devchain_factory: Callable[..., Any],
    settings_factory: Callable[..., Settings],
    confirmations: int,
) -> ChainEnv:
    chain = devchain_factory()
    return await build_env(chain, settings_factory, chain_confirmations={"local": confirmations})


async def test_a_counted_deposit_orphaned_by_a_reorg_is_marked_reorged_and_reversed(
    devchain_factory, settings_factory, admin_headers
):
    # Given a credited deposit (1 confirmation) made after a snapshot of the chain
    env = await _setup(devchain_factory, settings_factory, confirmations=1)
    async with env, api_client(env.settings) as api:
        agent = await register_agent(api)
        wallet = await env.funded_account()
        await link_wallet(api, agent["apiKey"], wallet)
        await env.watch()
        snapshot = await env.client.rpc("evm_snapshot", [])
        tx_hash = await env.send_usdc(wallet.address, env.deposit.address, 40 * USDC)
        await env.watch()
        assert await balance(api, agent["apiKey"]) == 40 * USDC

        # When the chain reorganises without that block (revert, then longer empty chain)
        assert await env.client.rpc("evm_revert", [snapshot]) is True
        await env.mine(3)
        report = await env.watch()

        # Then the transfer is reorged, the credit reversed with a ledger entry, and the
        # operator sees it
        assert report.reorged == 1
        transfer = await _transfer(env, tx_hash)
        assert transfer.status == "reorged"
        assert transfer.reversed_at is not None
        assert await balance(api, agent["apiKey"]) == 0
        assert await _ledger(env, agent["agentId"]) == [
            ("deposit", 40 * USDC),
            ("reversal", -40 * USDC),
        ]
        listed = await api.get(
            "/admin/v1/transfers", params={"status": "reorged"}, headers=admin_headers
        )
        assert [t["txHash"] for t in listed.json()["data"]] == [tx_hash]


async def test_an_unconfirmed_deposit_orphaned_by_a_reorg_is_never_credited(
    devchain_factory, settings_factory
):
    # Given a deposit seen with 1 of 3 confirmations
    env = await _setup(devchain_factory, settings_factory, confirmations=3)
    async with env, api_client(env.settings) as api:
        agent = await register_agent(api)
        wallet = await env.funded_account()
        await link_wallet(api, agent["apiKey"], wallet)
        await env.watch()
        snapshot = await env.client.rpc("evm_snapshot", [])
        tx_hash = await env.send_usdc(wallet.address, env.deposit.address, 7 * USDC)
        first = await env.watch()
        assert first.stored == 1
        assert first.confirmed == 0

        # When a reorg drops it and the new chain grows well past the confirmations
        await env.client.rpc("evm_revert", [snapshot])
        await env.mine(5)
        await env.watch()
        await env.mine(3)
        await env.watch()

        # Then it is reorged and was never credited
        transfer = await _transfer(env, tx_hash)
        assert transfer.status == "reorged"
        assert transfer.confirmed_at is None
        assert transfer.ledger_entry_id is None
        assert await balance(api, agent["apiKey"]) == 0
        assert await _ledger(env, agent["agentId"]) == []


async def test_a_reorged_deposit_mined_again_is_credited_again_once(
    devchain_factory, settings_factory
):
    # Given a credited deposit from a locally signed transaction, then orphaned
    env = await _setup(devchain_factory, settings_factory, confirmations=1)
    async with env, api_client(env.settings) as api:
        agent = await register_agent(api)
        wallet = await env.funded_account()
        await link_wallet(api, agent["apiKey"], wallet)
        await env.watch()
        nonce = await env.client.get_nonce(wallet.address)
        raw = _signed_transfer(env, wallet, nonce, 9 * USDC)
        snapshot = await env.client.rpc("evm_snapshot", [])
        tx_hash = await _send_raw(env, raw)
        await env.watch()
        await env.client.rpc("evm_revert", [snapshot])
        await env.mine(2)
        await env.watch()
        assert (await _transfer(env, tx_hash)).status == "reorged"

        # When the very same transaction is mined again in the new chain
        assert await _send_raw(env, raw) == tx_hash
        await env.watch()
        await env.watch()  # a second pass changes nothing

        # Then the same row is confirmed again (epoch 1) and credited exactly once more
        transfer = await _transfer(env, tx_hash)
        assert transfer.status == "confirmed"
        assert transfer.epoch == 1
        assert await balance(api, agent["apiKey"]) == 9 * USDC
        assert await _ledger(env, agent["agentId"]) == [
            ("deposit", 9 * USDC),
            ("reversal", -9 * USDC),
            ("deposit", 9 * USDC),
        ]
