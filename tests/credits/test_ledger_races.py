"""The ledger under concurrent retries, driven through two database sessions at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.credits import ledger
from app.credits.limits import MAX_BALANCE_MICROS
from app.db.engine import create_engine, session_factory
from app.errors import BalanceLimitExceeded
from tests.factories import register_agent, unique

# How long the first transaction stays open once the second one is under way: long enough
# for the second to have read "no entry yet" and to be waiting on the first's locks.
HOLD_SECONDS = 0.3


@pytest.fixture
async def sessions(settings_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings_factory())
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def _balance(sessions: async_sessionmaker[AsyncSession], agent_id: str) -> int:
    async with sessions() as session:
        return int((await session.execute(
            text("SELECT balance_micros FROM agents WHERE id = :a"), {"a": agent_id}
        )).scalar_one())


async def _entries(sessions: async_sessionmaker[AsyncSession], key: str) -> int:
    async with sessions() as session:
        return int((await session.execute(
            text("SELECT count(*) FROM ledger_entries WHERE idempotency_key = :k"), {"k": key}
        )).scalar_one())


async def _post_while_another_is_open(
    sessions: async_sessionmaker[AsyncSession], agent_id: str, amount: int, key: str
) -> tuple[ledger.Posted, ledger.Posted]:
    """Post ``amount`` under ``key`` in one transaction and, while it is still open, the same
    post in a second; the first commits after a moment and the second then finishes."""
    async with sessions() as first, sessions() as second:
        won = await ledger.post_result(first, agent_id, "adjustment", amount,
                                       idempotency_key=key, reason="race")
        retry = asyncio.create_task(ledger.post_result(second, agent_id, "adjustment", amount,
                                                       idempotency_key=key, reason="race"))
        await asyncio.sleep(HOLD_SECONDS)
        assert not retry.done()  # it is waiting on the first transaction
        await first.commit()
        replayed = await asyncio.wait_for(retry, timeout=30)
        await second.commit()
    return won, replayed


async def test_a_concurrent_retry_of_a_credit_gets_the_first_entry(client, sessions):
    # given an agent, and a credit still uncommitted in one transaction
    agent = await register_agent(client)
    key = unique("race-credit")

    # when the same credit is posted concurrently in another
    won, replayed = await _post_while_another_is_open(sessions, agent["agentId"], 1_000, key)

    # then the second is a replay of the first, and the credit was made once
    assert not won.replayed
    assert replayed.replayed
    assert replayed.entry.id == won.entry.id
    assert await _balance(sessions, agent["agentId"]) == 1_000
    assert await _entries(sessions, key) == 1


async def test_a_concurrent_retry_of_a_debit_gets_the_first_entry(client, sessions):
    # given an agent with exactly enough for one debit, the debit uncommitted in a transaction
    agent = await register_agent(client)
    async with sessions() as session:
        await ledger.post(session, agent["agentId"], "adjustment", 1_000, reason="seed")
        await session.commit()
    key = unique("race-debit")

    # when the same debit is posted concurrently (it would fail on the balance left)
    won, replayed = await _post_while_another_is_open(sessions, agent["agentId"], -1_000, key)

    # then it is a replay, not a refusal for too little credit
    assert replayed.replayed
    assert replayed.entry.id == won.entry.id
    assert await _balance(sessions, agent["agentId"]) == 0
    assert await _entries(sessions, key) == 1


async def test_a_deposit_past_the_maximum_balance_is_refused_without_writing(client, sessions):
    # given an agent at the maximum balance
    agent = await register_agent(client)
    async with sessions() as session:
        await session.execute(text("UPDATE agents SET balance_micros = :b WHERE id = :a"),
                              {"b": MAX_BALANCE_MICROS, "a": agent["agentId"]})
        await session.commit()

    # when a deposit is credited
    async with sessions() as session:
        with pytest.raises(BalanceLimitExceeded) as refused:
            await ledger.post(session, agent["agentId"], "deposit", 1,
                              idempotency_key=unique("deposit"))
        # the transaction is still usable: nothing was written, nothing failed in SQL
        await session.commit()

    # then the balance stays, and the error names the limit
    assert refused.value.details["maxBalanceMicros"] == MAX_BALANCE_MICROS
    assert await _balance(sessions, agent["agentId"]) == MAX_BALANCE_MICROS


async def test_an_amount_larger_than_any_balance_never_reaches_sql(client, sessions):
    # given
    agent = await register_agent(client)

    # when an amount past the BIGINT range is posted
    async with sessions() as session:
        with pytest.raises(BalanceLimitExceeded):
            await ledger.post(session, agent["agentId"], "deposit", 2**64)

    # then
    assert await _balance(sessions, agent["agentId"]) == 0
