"""The chain actors on a real Dramatiq worker and Redis: tick -> watch -> credit, and
request -> settle -> mined, including a message the broker lost (the sweeper re-drives it)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import pytest
import redis
from eth_account import Account
from pydantic import SecretStr

from app.db.models.signer import SettlementSubmission
from app.db.types import utcnow
from app.runtime import Runtime
from app.settings import Settings
from app.signer import service as settlement
from chain.devchain import DevChain
from chain.usdc import TokenDomain, new_authorization, sign_transfer_authorization
from tests.factories import register_agent
from tests.fixtures.chainapp import USDC, ChainEnv, api_client, balance, build_env, link_wallet
from workers import actor_context
from workers import chain as actors
from workers.broker import build_broker

REDIS_DB = 12
WITHIN = 20.0


def _db_url(url: str, db: int) -> str:
    if url.startswith("unix://"):
        return f"{url}{'&' if '?' in url else '?'}db={db}"
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


class Harness:
    """A Dramatiq worker in this process running the chain actors on a private namespace."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = build_broker(settings)
        dramatiq.set_broker(self.broker)
        # The actors bound to whatever broker was global when their module was imported.
        for actor in (actors.tick, actors.watch, actors.settle, actors.sweep):
            actor.broker = self.broker
            self.broker.declare_actor(actor)
        self.worker: dramatiq.Worker | None = None

    def start(self) -> None:
        actor_context.configure(self.settings)
        self.worker = dramatiq.Worker(self.broker, worker_threads=2, worker_timeout=50)
        self.worker.start()

    async def stop(self) -> None:
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop, 10_000)
        actor_context.configure(None)


@pytest.fixture
async def env_with_worker(
    devchain: DevChain, settings_factory: Callable[..., Settings], redis_url: str
) -> AsyncIterator[tuple[ChainEnv, Harness]]:
    namespace = f"chaintest:{uuid.uuid4().hex[:8]}"
    signer = Account.create()
    env = await build_env(
        devchain,
        settings_factory,
        redis_url=_db_url(redis_url, REDIS_DB),
        redis_prefix=namespace,
        chain_signer_private_key=SecretStr("0x" + bytes(signer.key).hex()),
    )
    await env.client.rpc("anvil_setBalance", [signer.address, hex(10**20)])
    harness = Harness(env.settings)
    harness.start()
    try:
        yield env, harness
    finally:
        await harness.stop()
        await env.close()
        client = redis.Redis.from_url(_db_url(redis_url, REDIS_DB))
        keys = list(client.scan_iter(match=f"{namespace}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


async def _eventually(check: Callable[[], Any], within: float = WITHIN) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_the_tick_drives_the_watcher_which_credits_a_deposit(env_with_worker):
    env, _ = env_with_worker
    async with api_client(env.settings) as api:
        # Given a linked wallet's deposit on chain
        agent = await register_agent(api)
        wallet = await env.funded_account()
        await link_wallet(api, agent["apiKey"], wallet)
        await env.send_usdc(wallet.address, env.deposit.address, 8 * USDC)

        # When the scheduler's tick fires (as the scheduler process would, once a second)
        async def credited() -> bool:
            actors.tick.send()
            return await balance(api, agent["apiKey"]) == 8 * USDC

        # Then the worker's watcher credits it
        assert await _eventually(credited)


async def _outcome(env: ChainEnv, sid: str) -> str | None:
    async with env.sessions() as session:
        row = await settlement.get(session, sid)
    return row.status if row.status in ("mined", "already_used", "failed", "reverted") else None


async def test_a_requested_settlement_is_enqueued_after_commit_and_mined(env_with_worker):
    env, _ = env_with_worker
    payer = await env.funded_account(usdc=10 * USDC)
    signed = sign_transfer_authorization(
        payer.key,
        new_authorization(payer.address, env.pay_to.address, 2 * USDC),
        TokenDomain.for_network(env.network),
    )
    # When the API side requests it in its transaction (the runtime's sessions send jobs)
    runtime = Runtime.build(env.settings)
    try:
        async with runtime.sessions() as session:
            submission = await settlement.request_settlement(
                session, env.network, signed.authorization, signed.signature, "pay_actor"
            )

            await session.commit()
        # Then the worker settles it
        assert await _eventually(lambda: _outcome(env, submission.id)) == "mined"
    finally:
        await runtime.close()
    assert await env.client.balance_of(payer.address) == 8 * USDC


async def test_a_settlement_whose_message_was_lost_is_re_driven_by_the_sweeper(env_with_worker):
    env, _ = env_with_worker
    payer = await env.funded_account(usdc=10 * USDC)
    signed = sign_transfer_authorization(
        payer.key,
        new_authorization(payer.address, env.pay_to.address, USDC),
        TokenDomain.for_network(env.network),
    )
    # Given a request recorded by a session that could not enqueue anything (broker lost it)
    async with env.sessions() as session:
        submission = await settlement.request_settlement(
            session, env.network, signed.authorization, signed.signature, "pay_lost"
        )
        await session.commit()
    async with env.sessions() as session:
        row = await session.get(SettlementSubmission, submission.id)
        assert row is not None
        row.next_attempt_at = utcnow() - timedelta(seconds=1)
        session.add(row)
        await session.commit()
    # When the sweeper runs (as scheduled)
    actors.sweep.send()
    # Then it is settled all the same
    assert await _eventually(lambda: _outcome(env, submission.id)) == "mined"
