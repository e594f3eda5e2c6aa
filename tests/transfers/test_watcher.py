"""The watcher's scanning: bounded ranges, outages, backfills, one run at a time."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db.models.transfers import ChainTransfer, ChainWatcher
from app.transfers.watcher import RunReport
from chain.client import ChainClient
from chain.errors import RangeTooLarge
from chain.records import BlockHeader, TransferLog
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.chainapp import USDC, ChainEnv, build_env
from tests.fixtures.rpcproxy import RpcProxy, rpc_proxy


class FlakyClient(ChainClient):
    """A real client whose ``eth_getLogs`` can refuse wide ranges or freeze the node."""

    def __init__(
        self,
        *args: Any,
        max_span: int | None = None,
        refuse_calls: int = 10**9,
        freeze_pid: int | None = None,
        freeze_on_call: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_span, self.refuse_calls = max_span, refuse_calls
        self.freeze_pid, self.freeze_on_call = freeze_pid, freeze_on_call
        self.calls = 0

    async def scan_transfer_logs(
        self, from_block: int, to_block: int, *, to_addresses: Sequence[str]
    ) -> tuple[list[TransferLog], BlockHeader | None]:
        self.calls += 1
        if self.freeze_pid is not None and self.calls == self.freeze_on_call:
            os.kill(self.freeze_pid, signal.SIGSTOP)  # the node stops answering mid-scan
        span = to_block - from_block + 1
        if self.max_span is not None and self.calls <= self.refuse_calls and span > self.max_span:
            raise RangeTooLarge("block range too large", method="eth_getLogs", code=-32005)
        return await super().scan_transfer_logs(from_block, to_block, to_addresses=to_addresses)


def flaky(env: ChainEnv, **kwargs: Any) -> FlakyClient:
    return FlakyClient(
        env.chain.rpc_url,
        token_address=env.chain.token_address,
        timeout=env.settings.chain_rpc_timeout_seconds,
        **kwargs,
    )


def assert_contiguous(reports: Sequence[RunReport], start: int, end: int) -> None:
    """The scanned ranges tile [start, end] exactly: no gap, no overlap."""
    ranges = [r for report in reports for r in report.ranges]
    expected = start
    for low, high in ranges:
        assert low == expected, f"gap or overlap at {low} (expected {expected}): {ranges}"
        expected = high + 1
    assert expected == end + 1, ranges


async def stored(env: ChainEnv) -> tuple[int, int]:
    """(rows, distinct (tx, log index) keys) of the env's deposit address."""
    async with env.sessions() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(ChainTransfer)
            .where(ChainTransfer.to_address == env.deposit.address.lower())
        )
        keys = await session.scalar(
            select(func.count()).select_from(
                select(ChainTransfer.tx_hash, ChainTransfer.log_index)
                .where(ChainTransfer.to_address == env.deposit.address.lower())
                .distinct()
                .subquery()
            )
        )
        return int(rows or 0), int(keys or 0)


async def watcher_row(env: ChainEnv) -> ChainWatcher:
    async with env.sessions() as session:
        row = await session.get(ChainWatcher, "local")
        assert row is not None
        return row


async def test_a_range_too_large_shrinks_the_range_and_it_grows_back(devchain, settings_factory):
    # Given 40 deposits in 40 blocks and a provider that refuses more than 4 blocks at first
    env = await build_env(devchain, settings_factory, chain_max_log_range={"local": 16})
    async with env:
        start = env.config().start_block
        sender = await env.funded_account()
        for _ in range(40):
            await env.send_usdc(sender.address, env.deposit.address, USDC)
        head = await env.client.block_number()
        client = flaky(env, max_span=4, refuse_calls=4)
        # When the watcher catches up
        reports = []
        while not reports or reports[-1].more:
            reports.append(await env.watch(client))
        await client.close()
        # Then every block was scanned once, in ranges that shrank and grew back
        assert start is not None
        assert_contiguous(reports, start, head)
        spans = [high - low + 1 for r in reports for low, high in r.ranges]
        assert max(spans[:3]) <= 4
        assert max(spans) >= 8  # doubled back after three good ranges
        assert await stored(env) == (40, 40)


async def test_ranges_follow_the_logs_density_from_a_narrow_start(
    devchain_factory, settings_factory
):
    # Given 12 blocks of 50 transfers each, then 200 empty blocks, and a target of 100 logs
    # per range within a maximum of 64 blocks
    chain = devchain_factory()
    env = await build_env(
        chain, settings_factory,
        chain_max_log_range={"local": 64}, chain_target_logs_per_range=100,
    )
    async with env:
        start = env.config().start_block
        sender = await env.funded_account(usdc=1_000 * USDC)
        call = encode_call(
            "multiTransfer(address[],uint256[])", [env.deposit.address] * 50, [1_000] * 50
        )
        for _ in range(12):
            await transact(env.client, sender.address, call)
        dense_end = await env.client.block_number()
        await env.mine(200)
        head = await env.client.block_number()
        # When a new watcher catches up
        reports = await env.watch_until_idle(within=120)
        # Then every block was scanned once and every transfer stored once
        assert start is not None
        assert_contiguous(reports, start, head)
        assert await stored(env) == (600, 600)
        async with env.sessions() as session:
            per_block = dict(
                (await session.execute(
                    select(ChainTransfer.block_number, func.count())
                    .where(ChainTransfer.to_address == env.deposit.address.lower())
                    .group_by(ChainTransfer.block_number)
                )).all()
            )
        ranges = [r for report in reports for r in report.ranges]
        found = [sum(n for b, n in per_block.items() if low <= b <= high) for low, high in ranges]
        spans = [high - low + 1 for low, high in ranges]
        # starting at a 64th of the maximum, no range held more than the target
        assert spans[0] == 1
        assert max(found) <= 100, list(zip(ranges, found, strict=True))
        dense = [r for r in ranges if r[0] <= dense_end]
        assert len(dense) >= 6, dense
        # and over the empty blocks the range doubled back up to the maximum
        assert 64 in spans, spans
        assert len(ranges) - len(dense) <= 8, spans


async def test_the_watcher_backs_off_while_the_node_is_down_and_resumes_without_gap(
    devchain_factory, settings_factory
):
    # Given 30 deposits to scan three blocks at a time, and a node that freezes mid-scan
    chain = devchain_factory()
    env = await build_env(
        chain, settings_factory, chain_max_log_range={"local": 3}, chain_rpc_timeout_seconds=1.0
    )
    async with env:
        start = env.config().start_block
        sender = await env.funded_account()
        for _ in range(30):
            await env.send_usdc(sender.address, env.deposit.address, USDC)
        head = await env.client.block_number()
        client = flaky(env, freeze_pid=chain.pid, freeze_on_call=4)
        try:
            # When the node stops answering during the fourth range
            failed = await env.watch(client)
            # Then the run stops with the error recorded, keeping what it stored
            assert failed.error
            assert "RpcUnavailable" in failed.error
            # (how many ranges got through before the freeze bit depends on the machine's load)
            assert failed.ranges
            row = await watcher_row(env)
            assert row.cursor == failed.ranges[-1][1]
            assert row.consecutive_failures == 1
            assert row.last_error
            # and the next run is pushed back (backoff), so a due-only tick does nothing
            assert (await env.watch(client, due_only=False)).error  # still down: 2nd failure
            row2 = await watcher_row(env)
            assert row2.consecutive_failures == 2
            assert row2.next_run_at
            assert row.next_run_at
            assert row2.next_run_at > row.next_run_at
            assert (await env.watch(client, due_only=True)).ran is False
        finally:
            os.kill(chain.pid, signal.SIGCONT)
        # When the node is back
        resumed: list[RunReport] = []
        deadline = time.monotonic() + 30
        while not resumed or resumed[-1].more or resumed[-1].error:
            assert time.monotonic() < deadline, resumed
            resumed.append(await env.watch(client))
        await client.close()
        # Then the scan resumes where it stopped: no gap, no duplicate
        assert start is not None
        assert_contiguous([failed, *resumed], start, head)
        assert await stored(env) == (30, 30)
        assert (await watcher_row(env)).consecutive_failures == 0


async def test_a_backfill_of_5000_transfers_over_many_blocks_stores_each_once(
    devchain_factory, settings_factory
):
    # Given 5,000 transfers to the deposit address in 25 transactions over ~75 blocks
    chain = devchain_factory()
    env = await build_env(chain, settings_factory, chain_max_log_range={"local": 10})
    async with env:
        start = env.config().start_block
        sender = await env.funded_account(usdc=10_000 * USDC)
        batch = 200
        call = encode_call(
            "multiTransfer(address[],uint256[])", [env.deposit.address] * batch, [1_000] * batch
        )
        for _ in range(25):
            await transact(env.client, sender.address, call)
            await env.mine(2)
        head = await env.client.block_number()
        # When the watcher backfills
        reports = await env.watch_until_idle(within=120)
        # Then every transfer is stored once and counted (unmatched: the sender is unknown)
        assert start is not None
        assert_contiguous(reports, start, head)
        assert sum(r.stored for r in reports) == 5_000
        assert await stored(env) == (5_000, 5_000)
        async with env.sessions() as session:
            states = dict(
                (
                    await session.execute(
                        select(ChainTransfer.status, func.count())
                        .where(ChainTransfer.to_address == env.deposit.address.lower())
                        .group_by(ChainTransfer.status)
                    )
                ).all()
            )
        assert states == {"confirmed": 5_000}
        # And scanning it all again stores nothing new
        async with env.sessions() as session:
            from app.transfers import service

            await service.rewind(session, "local", chain.chain_id, start)
            await session.commit()
        again = await env.watch_until_idle(within=120)
        assert sum(r.stored for r in again) == 0
        assert await stored(env) == (5_000, 5_000)


async def test_only_one_run_of_a_network_scans_at_a_time(chain_env: ChainEnv):
    # When two runs start together
    first, second = await asyncio.gather(chain_env.watch(), chain_env.watch())
    # Then exactly one of them ran
    assert sorted([first.ran, second.ran]) == [False, True]


class LaggingBalancer:
    """A load balancer over two backends of one chain, as an RPC proxy's override: single calls
    go to an up-to-date backend; ``eth_getLogs`` and every batch to one that has only the blocks
    up to ``head`` (None: it has caught up). Like a real node, the lagging one answers a range
    past its head with the logs it has, and a block it has not got with null."""

    def __init__(self, proxy: RpcProxy) -> None:
        self.proxy = proxy
        self.head: int | None = None
        proxy.override = self

    def __call__(self, method: str, params: list[Any], batched: bool) -> dict[str, Any] | None:
        head = self.head
        if head is None:
            return None
        if method == "eth_getLogs":
            query = params[0]
            if int(query["fromBlock"], 16) > head:
                return {"result": []}
            clamped = {**query, "toBlock": hex(min(int(query["toBlock"], 16), head))}
            answer = self.proxy.forward(
                {"jsonrpc": "2.0", "id": 1, "method": method, "params": [clamped]}
            )
            return {"result": answer["result"]}
        if method == "eth_getBlockByNumber" and batched and int(params[0], 16) > head:
            return {"result": None}
        return None


async def transfer_states(env: ChainEnv) -> dict[str, str]:
    async with env.sessions() as session:
        rows = await session.execute(
            select(ChainTransfer.tx_hash, ChainTransfer.status)
            .where(ChainTransfer.to_address == env.deposit.address.lower())
        )
        return dict(rows.all())


@pytest.mark.parametrize("lag", [0, 1], ids=["lags-the-new-block", "lags-a-remembered-block"])
async def test_a_lagging_backend_behind_a_load_balancer_never_loses_nor_orphans_a_transfer(
    devchain_factory, settings_factory, lag: int
):
    # Given a watcher that has stored a deposit, behind a balancer whose backends agree
    env = await build_env(devchain_factory(), settings_factory)
    async with env:
        sender = await env.funded_account()
        first = await env.send_usdc(sender.address, env.deposit.address, USDC)
        with rpc_proxy(env.chain.rpc_url) as proxy:
            balancer = LaggingBalancer(proxy)
            client = ChainClient(proxy.url, token_address=env.chain.token_address, timeout=5)
            try:
                await env.watch(client)
                assert await transfer_states(env) == {first: "confirmed"}
                seen = (await env.client.get_receipt(first)).block_number
                # When one backend falls behind (at the deposit's block, or just before it) and
                # a second deposit is mined while the watcher keeps polling through the balancer
                balancer.head = seen - lag
                second = await env.send_usdc(sender.address, env.deposit.address, USDC)
                head = await env.client.block_number()
                lagging = [await env.watch(client) for _ in range(3)]
                # Then it neither skips past the new block nor takes the lag for a reorg
                assert all(r.behind and r.error is None for r in lagging), lagging
                assert all(r.cursor is not None and r.cursor < head for r in lagging), lagging
                assert all(r.next_delay == env.network.poll_interval_seconds for r in lagging)
                assert await transfer_states(env) == {first: "confirmed"}
                # and once the backend has caught up, both deposits are there, counted once
                balancer.head = None
                caught_up = await env.watch(client)
            finally:
                await client.close()
        assert not caught_up.behind
        assert caught_up.cursor == head
        assert await transfer_states(env) == {first: "confirmed", second: "confirmed"}
        async with env.sessions() as session:
            watcher = await session.get(ChainWatcher, "local")
        assert watcher is not None
        assert watcher.reorgs == 0
