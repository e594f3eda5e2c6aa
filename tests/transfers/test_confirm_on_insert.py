"""Counting on insert: transfers that already have their confirmations when a range is scanned
are counted in the transaction that stores them and moves the cursor, exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from httpx import AsyncClient
from sqlalchemy import func, insert, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db.models.credits import LedgerEntry
from app.db.models.events import Event
from app.db.models.transfers import ChainTransfer, ChainWatcher
from app.db.types import utcnow
from app.integrations import chain as purposes_module
from app.integrations.chain import PurposeContext, TransferPurpose
from app.settings import Settings
from app.transfers.counting import Candidate, Counted
from chain.devchain import DevChain
from tests.factories import register_agent
from tests.fixtures.chainapp import USDC, ChainEnv, api_client, balance, build_env, link_wallet


class QuietPurpose:
    """What the test purposes below share: nothing of theirs is ever reversed."""

    async def reverse(
        self, session: AsyncSession, transfer: ChainTransfer, ctx: PurposeContext
    ) -> None:
        return None


class Spy(QuietPurpose):
    """Claims nothing; records every transfer it is offered (by chain key), so a test can
    tell how many times each transfer went through counting, rolled-back attempts included."""

    name = "spy"

    def __init__(self) -> None:
        self.offered: list[tuple[str, int]] = []

    async def claim(
        self, session: AsyncSession, candidates: Sequence[Candidate], ctx: PurposeContext
    ) -> dict[str, Counted]:
        self.offered += [(c.tx_hash, c.log_index) for c in candidates]
        return {}


def install(monkeypatch: pytest.MonkeyPatch, *first: TransferPurpose) -> None:
    """Put ``first`` before the real purposes for the rest of the test."""
    real: Callable[[], list[TransferPurpose]] = purposes_module.purposes
    monkeypatch.setattr(purposes_module, "purposes", lambda: [*first, *real()])


async def agent_with_wallet(
    client: AsyncClient, env: ChainEnv
) -> tuple[dict[str, Any], LocalAccount]:
    """A registered agent with a funded wallet linked to it."""
    agent = await register_agent(client)
    wallet = await env.funded_account()
    await link_wallet(client, agent["apiKey"], wallet)
    return agent, wallet


async def _deposits(env: ChainEnv, agent_id: str) -> tuple[int, int]:
    """(deposit ledger entries, credits.deposited events) of an agent."""
    async with env.sessions() as session:
        entries = await session.scalar(
            select(func.count()).select_from(LedgerEntry)
            .where(LedgerEntry.agent_id == agent_id, LedgerEntry.kind == "deposit")
        )
        events = await session.scalar(
            select(func.count()).select_from(Event)
            .where(Event.type == "credits.deposited", Event.agent_id == agent_id)
        )
        return int(entries or 0), int(events or 0)


async def _transfers(env: ChainEnv) -> list[ChainTransfer]:
    async with env.sessions() as session:
        rows = await session.execute(
            select(ChainTransfer).where(ChainTransfer.to_address == env.deposit.address.lower())
            .order_by(ChainTransfer.block_number, ChainTransfer.log_index)
        )
        return list(rows.scalars())


async def _cursor(env: ChainEnv) -> int | None:
    async with env.sessions() as session:
        watcher = await session.get(ChainWatcher, "local")
        return None if watcher is None else watcher.cursor


async def test_a_deposit_confirmed_at_scan_time_is_credited_once_even_when_rescanned(
    chain_env: ChainEnv, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy()
    install(monkeypatch, spy)
    async with api_client(chain_env.settings) as client:
        # Given an agent with a linked wallet, and a network that wants 1 confirmation
        agent, wallet = await agent_with_wallet(client, chain_env)
        # When it deposits 7 USDC and the watcher scans the block
        tx_hash = await chain_env.send_usdc(wallet.address, chain_env.deposit.address, 7 * USDC)
        first = await chain_env.watch()
        # Then the transfer is stored already counted: credited once, in its final state
        assert (first.stored, first.confirmed) == (1, 1)
        [row] = await _transfers(chain_env)
        assert (row.tx_hash, row.status, row.purpose, row.unmatched) == (
            tx_hash, "confirmed", "deposit", False)
        assert row.agent_id == agent["agentId"]
        assert row.ledger_entry_id is not None
        assert row.confirmed_at is not None
        assert await balance(client, agent["apiKey"]) == 7 * USDC
        assert await _deposits(chain_env, agent["agentId"]) == (1, 1)

        # When the watcher runs again, and after an operator rewinds it before the deposit
        again = await chain_env.watch()
        rewind = await client.post(
            "/admin/v1/chain/watchers/local/rewind",
            json={"block": row.block_number, "reason": "re-scan test"},
            headers=admin_headers,
        )
        assert rewind.status_code == 200, rewind.text
        rescan = await chain_env.watch_until_idle()

        # Then nothing is stored, offered to a purpose or credited a second time
        assert (again.stored, again.confirmed) == (0, 0)
        assert sum(r.stored for r in rescan) == 0
        assert sum(r.confirmed for r in rescan) == 0
        assert spy.offered == [(tx_hash, row.log_index)]
        assert await balance(client, agent["apiKey"]) == 7 * USDC
        assert await _deposits(chain_env, agent["agentId"]) == (1, 1)
        assert [t.status for t in await _transfers(chain_env)] == ["confirmed"]


class Boom(QuietPurpose):
    """A purpose that fails the first time it is offered anything."""

    name = "boom"

    def __init__(self) -> None:
        self.calls = 0

    async def claim(
        self, session: AsyncSession, candidates: Sequence[Candidate], ctx: PurposeContext
    ) -> dict[str, Counted]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("purpose failed")
        return {}


async def test_a_purpose_failing_while_counting_on_insert_leaves_nothing_and_the_next_run_retries(
    chain_env: ChainEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    boom = Boom()
    install(monkeypatch, boom)
    async with api_client(chain_env.settings) as client:
        # Given a linked wallet's deposit in a block that already has its confirmation
        agent, wallet = await agent_with_wallet(client, chain_env)
        await chain_env.send_usdc(wallet.address, chain_env.deposit.address, 3 * USDC)
        start = chain_env.config().start_block
        assert start is not None

        # When a purpose raises while the range is being stored
        with pytest.raises(RuntimeError, match="purpose failed"):
            await chain_env.watch()

        # Then the range left no trace: no row, no credit, no event, the cursor where it was
        assert await _transfers(chain_env) == []
        assert await _cursor(chain_env) == start - 1
        assert await balance(client, agent["apiKey"]) == 0
        assert await _deposits(chain_env, agent["agentId"]) == (0, 0)

        # When the watcher runs again (the failed run released its lease)
        retry = await chain_env.watch()

        # Then the range is stored and counted once
        assert retry.ran
        assert (retry.stored, retry.confirmed) == (1, 1)
        assert [t.status for t in await _transfers(chain_env)] == ["confirmed"]
        assert await balance(client, agent["apiKey"]) == 3 * USDC
        assert await _deposits(chain_env, agent["agentId"]) == (1, 1)
        assert boom.calls == 2


async def test_transfers_short_of_confirmations_are_stored_pending_and_counted_later_once(
    devchain: DevChain, settings_factory: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy()
    install(monkeypatch, spy)
    # Given a network that wants 3 confirmations, and three deposits in three blocks in a row
    env = await build_env(devchain, settings_factory, chain_confirmations={"local": 3})
    async with env, api_client(env.settings) as client:
        agent, wallet = await agent_with_wallet(client, env)
        for amount in (1, 2, 4):
            await env.send_usdc(wallet.address, env.deposit.address, amount * USDC)

        # When the watcher scans them all in one range
        first = await env.watch()

        # Then the oldest (3 confirmations) is counted as it is stored, the others wait
        assert (first.stored, first.confirmed) == (3, 1)
        assert [t.status for t in await _transfers(env)] == ["confirmed", "pending", "pending"]
        assert await balance(client, agent["apiKey"]) == 1 * USDC

        # When two more blocks arrive
        await env.mine(2)
        second = await env.watch()

        # Then the two pending ones are counted; every transfer went through counting once
        assert (second.stored, second.confirmed) == (0, 2)
        rows = await _transfers(env)
        assert [t.status for t in rows] == ["confirmed"] * 3
        assert await balance(client, agent["apiKey"]) == 7 * USDC
        assert await _deposits(env, agent["agentId"]) == (3, 3)
        assert Counter(spy.offered) == Counter({(t.tx_hash, t.log_index): 1 for t in rows})


class Intruder(QuietPurpose):
    """Plays a concurrent writer: the first time it is offered transfers, it stores the first
    one's (chain, tx, log index) key itself, in the watcher's own transaction, just before the
    watcher inserts the range."""

    name = "intruder"

    def __init__(self) -> None:
        self.calls = 0

    async def claim(
        self, session: AsyncSession, candidates: Sequence[Candidate], ctx: PurposeContext
    ) -> dict[str, Counted]:
        self.calls += 1
        if self.calls == 1:
            c = candidates[0]
            now = utcnow()
            await session.execute(insert(ChainTransfer).values(
                id="trf_intruder" + c.id[-12:], network=c.network, chain_id=c.chain_id,
                tx_hash=c.tx_hash, log_index=c.log_index, block_number=c.block_number,
                block_hash="0x" + "00" * 32, from_address=c.from_address,
                to_address=c.to_address, value=str(c.amount_micros),
                amount_micros=c.amount_micros, status="pending", unmatched=False, epoch=0,
                seen_at=now, updated_at=now,
            ))
        return {}


async def test_a_range_whose_transfer_was_stored_concurrently_is_counted_once_after_all(
    chain_env: ChainEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    intruder = Intruder()
    install(monkeypatch, intruder)
    async with api_client(chain_env.settings) as client:
        # Given two deposits from a linked wallet, confirmed when scanned
        agent, wallet = await agent_with_wallet(client, chain_env)
        for amount in (5, 6):
            await chain_env.send_usdc(wallet.address, chain_env.deposit.address, amount * USDC)

        # When one of their keys is stored by someone else while the range is being counted
        report = await chain_env.watch()

        # Then the counted-on-insert attempt is rolled back as a whole (its credits included),
        # the range is stored uncounted, and counted once from there
        assert report.error is None
        assert (report.stored, report.confirmed) == (2, 2)
        rows = await _transfers(chain_env)
        assert [(t.status, t.purpose, t.agent_id) for t in rows] == [
            ("confirmed", "deposit", agent["agentId"])] * 2
        assert not any(t.id.startswith("trf_intruder") for t in rows)
        assert await balance(client, agent["apiKey"]) == 11 * USDC
        assert await _deposits(chain_env, agent["agentId"]) == (2, 2)
        assert intruder.calls == 2  # the rolled-back attempt, then confirm_ready
        assert await _cursor(chain_env) == report.cursor


class Meddler(QuietPurpose):
    """Plays a second counter: the first time it is offered transfers, it marks the first one
    confirmed itself, in the same transaction, before the watcher writes its outcome."""

    name = "meddler"

    def __init__(self) -> None:
        self.calls = 0

    async def claim(
        self, session: AsyncSession, candidates: Sequence[Candidate], ctx: PurposeContext
    ) -> dict[str, Counted]:
        self.calls += 1
        if self.calls == 1:
            await session.execute(
                update(ChainTransfer).where(ChainTransfer.id == candidates[0].id)
                .values(status="confirmed", purpose="meddled")
            )
        return {}


async def test_pending_transfers_counted_elsewhere_meanwhile_are_rolled_back_and_counted_once(
    devchain: DevChain, settings_factory: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given two deposits stored pending (3 confirmations wanted) that have them by now
    env = await build_env(devchain, settings_factory, chain_confirmations={"local": 3})
    async with env, api_client(env.settings) as client:
        agent, wallet = await agent_with_wallet(client, env)
        for amount in (2, 3):
            await env.send_usdc(wallet.address, env.deposit.address, amount * USDC)
        stored = await env.watch()
        assert (stored.stored, stored.confirmed) == (2, 0)
        await env.mine(3)  # they have their confirmations now
        meddler = Meddler()
        install(monkeypatch, meddler)

        # When one of them stops being pending while the watcher counts them
        clash = await env.watch()

        # Then that count is rolled back as a whole (credits included) and tried again at once
        assert clash.error is None
        assert (clash.confirmed, clash.more) == (0, True)
        assert [t.status for t in await _transfers(env)] == ["pending", "pending"]
        assert await balance(client, agent["apiKey"]) == 0
        assert await _deposits(env, agent["agentId"]) == (0, 0)

        # When the watcher runs again
        again = await env.watch()

        # Then both are counted, once
        assert again.confirmed == 2
        rows = await _transfers(env)
        assert [(t.status, t.purpose) for t in rows] == [("confirmed", "deposit")] * 2
        assert await balance(client, agent["apiKey"]) == 5 * USDC
        assert await _deposits(env, agent["agentId"]) == (2, 2)
