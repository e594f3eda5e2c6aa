"""One run of a network's chain watcher: check for reorgs, scan new blocks, count confirmed
transfers. The actor (``workers/chain.py``), tests and the ingest benchmark all call
:func:`run_watcher`; like an actor it owns its transactions.

Algorithm (per run, under a lease so one run per network at a time):

1. **Reorg check.** The hashes of recently scanned blocks are remembered (each range's last
   block near the tip, and every block holding a transfer). They are compared with the node's
   in one batch. At the lowest block whose hash changed (or that vanished), the chain under the
   cursor has changed: the cursor goes back to the highest remembered block below it that still
   matches, transfers above it whose block hash is no longer canonical become ``reorged``
   (undoing whatever counting them caused), and the blocks above are scanned again. A reorg
   deeper than the remembered window rewinds by the window and is logged.
2. **Scan.** ``eth_getLogs`` for USDC ``Transfer`` logs to the receiving addresses over
   ``[cursor + 1, cursor + range]``, up to the head. The range follows the logs' density: a
   range that returned more than the target number of logs narrows the next one to aim at it;
   a sparse full range doubles it (up to the network's maximum), once three ranges in a row
   went through since the provider last said "range too large" (which halves it, down to one
   block). A new watcher starts at a 64th of the maximum, so a dense backfill is split from
   its first range on, and a sparse one reaches full width within six ranges. Each
   range is stored, its blocks remembered and the cursor advanced in *one* transaction, so the
   cursor never passes what was stored and no block is ever skipped; the cursor update is
   conditional on the value the run started from, so an operator's rewind during a run wins.
   While a range is stored, the next one's logs are already being fetched (one range ahead,
   used only if it is exactly the next range), so a backfill pays RPC latency and database
   time side by side rather than in turn. Transfers of the range that already have the
   network's confirmations (a backfill: nearly all of them) are counted (by the ``Counting``
   the run was given) in that same transaction and inserted in their final state;
   should any of them not be inserted after all (its key stored concurrently), the transaction
   is rolled back and the range stored again uncounted, so nothing is counted twice.
   Each range's logs come with the header of its last block, asked of the same node in the
   same batch. A node that has not got that block answers ``eth_getLogs`` with fewer logs, not
   an error (a backend behind a load balancer, lagging the one that gave the head), so the run
   stops there without storing the range, and runs again a poll interval later. The reorg
   check likewise decides nothing on a node that lacks a remembered block at or below the head.
3. **Confirm.** Pending transfers (stored before they had their confirmations, or revived
   after a reorg) that have them now are counted the same way.

RPC failures end the run with the error recorded and the next run pushed back exponentially
(poll interval x 2^failures, capped); nothing is half-done because every step is its own
transaction. A run stops after its time budget and reports ``more`` so the caller runs again
at once instead of waiting a poll interval.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db.models.transfers import ChainWatcher
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.transfers import confirming, repository, storing
from app.transfers.counting import CountConflict, Counting, WatchContext
from app.transfers.log_ranges import GROW_AFTER, Prefetch, next_range
from app.transfers.repository import CursorMove
from app.transfers.watch_config import WatchConfig
from chain.client import ChainClient
from chain.errors import ChainError, RangeTooLarge
from chain.records import BlockHeader, TransferLog

log = logging.getLogger("passgate.chain.watcher")

# A new watcher's first range, as a fraction of the network's maximum (see next_range).
_FIRST_RANGE_DIVISOR = 64
# Transfers counted per transaction.
_CONFIRM_BATCH = 5_000
# A run that crashed without releasing its lease blocks the next one at most this much longer
# than its budget.
_LEASE_MARGIN_SECONDS = 60.0


@dataclass
class RunReport:
    network: str
    ran: bool = False
    head: int | None = None
    cursor: int | None = None
    stored: int = 0
    confirmed: int = 0
    reorged: int = 0
    more: bool = False
    # The node that answered has not got every block this run asked about (a lagging backend
    # behind a load balancer): the run stopped there, to scan again after a poll interval.
    behind: bool = False
    error: str | None = None
    next_delay: float = 0.0
    ranges: list[tuple[int, int]] = field(default_factory=list)


class _Interrupted(Exception):
    """The cursor moved under this run (an operator rewind): stop, the next run continues."""


async def run_watcher(
    sessions: async_sessionmaker[UnitOfWork],
    client: ChainClient,
    config: WatchConfig,
    counting: Counting,
    *,
    due_only: bool = True,
) -> RunReport:
    """One bounded watcher pass; see the module docstring. ``counting`` decides what each
    confirmed transfer is for (``app.integrations.chain``). ``due_only=False`` ignores the poll
    interval and backoff (tests, an operator's "run now"), never the lease."""
    network = config.network
    report = RunReport(network=network.name)
    owner = uuid.uuid4().hex
    lease_seconds = config.budget_seconds + _LEASE_MARGIN_SECONDS
    async with sessions() as session:
        await repository.ensure_watcher(session, network.name, network.chain_id)
        won = await repository.acquire_lease(
            session, network.name, owner, utcnow(), lease_seconds, due_only=due_only
        )
        await session.commit()
    if not won:
        return report
    report.ran = True
    run = _Run(sessions, client, config, counting, owner, report)
    try:
        await run.execute()
    except ChainError as exc:
        await run.failed(exc)
    except _Interrupted:
        await run.finish(delay=0.0)
    except BaseException:
        await run.release()
        raise
    return report


class _Run:
    def __init__(
        self,
        sessions: async_sessionmaker[UnitOfWork],
        client: ChainClient,
        config: WatchConfig,
        counting: Counting,
        owner: str,
        report: RunReport,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.config = config
        self.network = config.network
        self.counting = counting
        self.context = WatchContext(network=config.network.name,
                                    chain_id=config.network.chain_id,
                                    receipts=client.get_receipt)
        self.owner = owner
        self.report = report
        self.started = time.monotonic()

    def _over_budget(self) -> bool:
        return time.monotonic() - self.started >= self.config.budget_seconds

    async def _state(self) -> ChainWatcher:
        async with self.sessions() as session:
            watcher = await repository.get_watcher(session, self.network.name)
            assert watcher is not None
            return watcher

    async def execute(self) -> None:
        state = await self._state()
        head = await self.client.block_number()
        self.report.head = head
        cursor = state.cursor
        maximum = self.network.max_log_range
        if state.range_size:
            range_size, good = min(state.range_size, maximum), state.good_ranges
        else:
            # Nothing known about the density yet: start narrow, with no refusal to recover from.
            range_size, good = max(1, maximum // _FIRST_RANGE_DIVISOR), GROW_AFTER
        if cursor is None:
            start = head if self.config.start_block is None else self.config.start_block
            cursor = await self._set_cursor(None, start - 1, head, range_size, good)
        cursor = await self._check_reorg(cursor, head)
        if not self.report.behind:
            prefetch = Prefetch(self.client, list(self.config.addresses))
            try:
                cursor = await self._scan(cursor, head, range_size, good, prefetch)
            finally:
                prefetch.cancel()
        self.report.cursor = cursor
        # Count what has its confirmations.
        confirmed_up_to = min(self.network.confirmed_block(head), cursor)
        while not self._over_budget():
            try:
                async with self.sessions() as session:
                    count = await confirming.confirm_ready(
                        session, self.counting, self.context, confirmed_up_to, _CONFIRM_BATCH
                    )
                    await session.commit()
            except CountConflict as exc:
                # Rolled back as a whole; the next run reads what is still pending afresh.
                log.warning("%s: %s; counting again next run", self.network.name, exc)
                self.report.more = True
                break
            self.report.confirmed += count
            if count < _CONFIRM_BATCH:
                break
        else:
            self.report.more = True
        if cursor < head:
            self.report.more = True
        at_once = self.report.more and not self.report.behind
        await self.finish(delay=0.0 if at_once else self.network.poll_interval_seconds,
                          prune_below=head - self.config.reorg_window)

    def _behind(self, block: int) -> None:
        self.report.behind = True
        log.warning("%s: the node that answered has not got block %d yet (a lagging backend?); "
                    "scanning again in %.1fs", self.network.name, block,
                    self.network.poll_interval_seconds)

    async def _scan(
        self, cursor: int, head: int, range_size: int, good: int, prefetch: Prefetch
    ) -> int:
        """Scan up to the head in bounded ranges, each stored with its cursor move; returns
        the new cursor. The next range's logs are fetched while this one is stored."""
        # Transfers at or below this block have their confirmations already: counted as they
        # are stored.
        confirmed_up_to = self.network.confirmed_block(head)
        while cursor < head and not self._over_budget():
            low, high = cursor + 1, min(cursor + range_size, head)
            tip_floor = head - self.config.reorg_window
            try:
                logs, header = await prefetch.take(low, high)
            except RangeTooLarge:
                if high == low:
                    raise  # one block is still too much: nothing smaller to ask for
                range_size, good = max(1, (high - low + 1) // 2), 0
                log.info("%s: eth_getLogs range too large, shrinking to %d blocks",
                         self.network.name, range_size)
                continue
            if header is None:
                # Its logs may be missing those of the blocks it has not got: never trusted.
                self._behind(high)
                break
            if any(item.block_number == high and item.block_hash != header.hash for item in logs):
                break  # the tip moved under us; the next run's reorg check sorts it out
            blocks: dict[int, str] = {}
            if high > tip_floor:
                blocks[high] = header.hash
            blocks.update(
                {i.block_number: i.block_hash for i in logs if i.block_number > tip_floor}
            )
            range_size, good = next_range(
                range_size, good, spanned=high - low + 1, found=len(logs),
                target=self.config.target_logs, maximum=self.network.max_log_range,
            )
            if high < head:
                next_high = min(high + range_size, head)
                prefetch.start(high + 1, next_high)
            try:
                stored = await self._store(logs, blocks, cursor, high, head, range_size, good,
                                           confirmed_up_to=confirmed_up_to)
            except storing.StoreConflict as exc:
                # Nothing of the range was committed; stored pending, its transfers are
                # counted by confirm_ready, which only counts rows still pending.
                log.warning("%s: %s; storing blocks %d-%d uncounted", self.network.name, exc,
                            low, high)
                stored = await self._store(logs, blocks, cursor, high, head, range_size, good,
                                           confirmed_up_to=None)
            self.report.stored += stored.stored
            self.report.confirmed += stored.confirmed
            self.report.ranges.append((low, high))
            cursor = high
        return cursor

    async def _store(
        self, logs: list[TransferLog], blocks: dict[int, str], cursor: int, high: int, head: int,
        range_size: int, good: int, *, confirmed_up_to: int | None,
    ) -> storing.Stored:
        """Store (and count what is confirmed of) a range's transfers, remember its blocks and
        move the cursor past it, all in one transaction."""
        async with self.sessions() as session:
            stored = await storing.store_logs(
                session, self.counting, self.context, logs, confirmed_up_to=confirmed_up_to
            )
            await repository.remember_blocks(session, self.network.name, blocks)
            await self._advance(session, cursor, high, head, range_size, good)
            await session.commit()
        return stored

    async def _set_cursor(
        self, expected: int | None, cursor: int, head: int, range_size: int, good: int
    ) -> int:
        async with self.sessions() as session:
            await self._advance(session, expected, cursor, head, range_size, good)
            await session.commit()
        return cursor

    async def _advance(
        self, session: UnitOfWork, expected: int | None, cursor: int, head: int,
        range_size: int, good: int,
    ) -> None:
        moved = await repository.move_cursor(session, CursorMove(
            network=self.network.name, owner=self.owner, expected=expected, cursor=cursor,
            head=head, range_size=range_size, good_ranges=good,
        ))
        if not moved:
            await session.rollback()
            raise _Interrupted

    async def _check_reorg(self, cursor: int, head: int) -> int:
        """Compare remembered hashes with the node's; rewind past the first that changed.

        A block at or below ``head`` that the node says it has not got is no reorg: the node
        answering is behind the one that gave the head. Nothing is decided on its word."""
        async with self.sessions() as session:
            remembered = await repository.recent_blocks(session, self.network.name)
        if not remembered:
            return cursor
        canonical = await self._canonical([block.number for block in remembered], head)
        if canonical is None:
            return cursor
        changed = next(
            (i for i, block in enumerate(remembered) if canonical[block.number] != block.hash),
            None,
        )
        if changed is None:
            return cursor
        if changed > 0:
            fork_cursor = remembered[changed - 1].number
        else:
            fork_cursor = max(remembered[0].number - self.config.reorg_window, -1)
            log.error("%s: reorg deeper than the %d remembered blocks; rewinding to %d",
                      self.network.name, self.config.reorg_window, fork_cursor)
        fork_cursor = min(fork_cursor, cursor)
        async with self.sessions() as session:
            suspects = await repository.transfers_above(session, self.network.name, fork_cursor)
        unknown = sorted({t.block_number for t in suspects} - canonical.keys())
        if unknown:
            found = await self._canonical(unknown, head)
            if found is None:
                return cursor
            canonical.update(found)
        orphaned = [t for t in suspects if canonical.get(t.block_number) != t.block_hash]
        async with self.sessions() as session:
            self.report.reorged += await confirming.orphan(
                session, orphaned, self.counting, self.context
            )
            await repository.forget_blocks(session, self.network.name, above=fork_cursor)
            await self._advance(session, cursor, fork_cursor, self.report.head or fork_cursor,
                                self.network.max_log_range, 0)
            await repository.count_reorg(session, self.network.name, fork_cursor)
            await session.commit()
        log.warning("%s: reorg at block %d; %d transfer(s) orphaned, re-scanning",
                    self.network.name, fork_cursor + 1, len(orphaned))
        return fork_cursor

    async def _canonical(self, numbers: list[int], head: int) -> dict[int, str | None] | None:
        """The node's hash of each block (None: not there); None when it is behind ``head``."""
        headers = await self.client.get_blocks(numbers)
        missing = [n for n, header in zip(numbers, headers, strict=True)
                   if header is None and n <= head]
        if missing:
            self._behind(missing[0])
            return None
        return {n: _hash(header) for n, header in zip(numbers, headers, strict=True)}

    async def finish(self, delay: float, prune_below: int | None = None) -> None:
        self.report.next_delay = delay
        now = utcnow()
        async with self.sessions() as session:
            if prune_below is not None:
                await repository.forget_blocks(session, self.network.name, below=prune_below)
            await repository.end_run(session, self.network.name, self.owner, now,
                                     now + timedelta(seconds=delay))
            await session.commit()

    async def failed(self, exc: ChainError) -> None:
        message = f"{type(exc).__name__}: {exc}"[:500]
        async with self.sessions() as session:
            state = await repository.get_watcher(session, self.network.name)
            assert state is not None
            failures = state.consecutive_failures + 1
            delay = min(
                self.config.max_backoff_seconds,
                self.network.poll_interval_seconds * 2 ** min(failures, 16),
            )
            now = utcnow()
            await repository.end_run(
                session, self.network.name, self.owner, now, now + timedelta(seconds=delay),
                error=message, failures=failures, failing_since=state.failing_since or now,
            )
            await session.commit()
        self.report.error = message
        self.report.next_delay = delay
        log.warning("%s watcher: %s; next try in %.1fs", self.network.name, message, delay)

    async def release(self) -> None:
        try:
            async with self.sessions() as session:
                await repository.release_lease(session, self.network.name, self.owner)
                await session.commit()
        except Exception:  # best effort while another error propagates; the lease expires
            log.warning("%s watcher: could not release its lease", self.network.name,
                        exc_info=True)


def _hash(header: BlockHeader | None) -> str | None:
    return header.hash if header is not None else None
