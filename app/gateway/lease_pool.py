"""One API process's credit leases (``app.gateway.leases``): calls are paid from memory.

Per agent there is at most one current lease. A call takes its price from it with no await in
between (one event loop: nothing can interleave), or, when it runs short, expired or retired,
takes the next one under a per-agent lock, so one process never takes two leases of one agent
at once. A finished call is queued for the writer; a failed one puts its price back.

The writer records finished calls in batches off the request path (a failed batch is retried,
and dropped, uncharged, only after ``RECORD_ATTEMPTS``), then closes retired leases once their
last call finished: records always first, so a lease's use is complete when it is closed. While
calls on a retired lease still run, the ticker extends its expiry so the sweeper leaves it
alone. Lease sizes follow the agent's rate here: a lease used up before it expired is
followed by one sized for that rate over a whole lifetime, at least double (up to
``gateway_lease_max_micros``); one that expired is followed by one of what it used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db.models.gateway import FAILED, SUCCEEDED, OpenCall
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import InsufficientCredits, SpendingLimitExceeded
from app.gateway import leases
from app.gateway.rounds import round_pause
from app.metrics.instruments import gateway_lease, gateway_lease_unrecorded
from app.settings import Settings

log = logging.getLogger("passgate.gateway")

# A first lease pays this many calls (then it follows the rate).
FIRST_CALLS = 8
# How often the ticker retires leases past their lifetime that no call came to notice.
TICK_SECONDS = 0.25
# The writer writes one round of what finished per this long, so a batch gathers: a batch is
# one transaction of four statements whatever its size, and at 50 ms its fixed cost was a fifth
# of a call's CPU for a key calling alone. What a crash can lose stays bounded by the lease.
WRITE_DELAY_SECONDS = 0.25
WRITE_BATCH = 500
# A batch of finished calls that cannot be written after this many tries is dropped: those
# calls stay free (logged, counted), and the leases behind it can close.
RECORD_ATTEMPTS = 5
# How long closing the process waits for its last records and closes.
DRAIN_SECONDS = 5.0


@dataclass(slots=True, eq=False)
class Lease:
    id: str
    agent_id: str
    platform_id: str | None
    day: str
    amount: int
    remaining: int
    # Monotonic: no call starts on it from then on (its lifetime, or the end of its UTC day).
    deadline: float
    taken_at: float = 0.0
    inflight: int = 0
    used: int = 0
    retired: bool = False
    # A change of its agent or fleet was heard while it was taken: it pays one call only.
    stale: bool = False


@dataclass(slots=True, eq=False)
class LeasedCall:
    """A call paid from a lease, until :meth:`LeasePool.finish` records how it ended."""

    lease: Lease
    usage: OpenCall
    finished: bool = False


@dataclass(slots=True)
class _Queue:
    records: list[dict[str, Any]] = field(default_factory=list)
    closes: list[Lease] = field(default_factory=list)


class LeasePool:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[UnitOfWork]) -> None:
        self._sessions = sessions
        self._seconds = settings.gateway_lease_seconds
        self._max = settings.gateway_lease_max_micros
        self._low = settings.credits_low_threshold_micros
        self._relax = settings.gateway_async_commit
        # Leases with calls still running are extended this often, well within the grace the
        # sweeper gives them.
        self._extend_every = settings.gateway_lease_grace_seconds / 3
        self._extended_at = time.monotonic()
        self.holder = f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._current: dict[str, Lease] = {}
        # Per-agent lock, and how many callers use it (it goes when the last one leaves).
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._sizes: dict[str, int] = {}
        # Retired leases not closed yet, by agent: credits that are on their way back.
        self._returning: dict[str, set[Lease]] = {}
        self._queue = _Queue()
        self._writer: asyncio.Task[None] | None = None
        self._hurried: asyncio.Event | None = None
        # Changes heard (``retire``), numbered, the latest few kept: a lease being taken while
        # one arrives is checked against them once it is tracked.
        self._change_seq = 0
        self._changes: deque[tuple[int, str | None]] = deque(maxlen=256)
        self._closing = False
        self._round_waiters: list[asyncio.Future[None]] = []
        self._ticker: asyncio.Task[None] | None = None

    # -- the request path ---------------------------------------------------------------------

    async def pay(self, usage: OpenCall) -> LeasedCall:
        """Pay ``usage.price_micros`` from the agent's lease (taking one if needed); raises the
        per-call path's INSUFFICIENT_CREDITS / SPENDING_LIMIT_EXCEEDED."""
        assert usage.agent_id is not None
        agent_id, price = usage.agent_id, usage.price_micros
        lease = self._current.get(agent_id)
        if lease is None or not self._admit(lease, price):
            lock, users = self._locks.setdefault(agent_id, (asyncio.Lock(), [0]))
            users[0] += 1
            try:
                async with lock:
                    lease = self._current.get(agent_id)
                    if lease is None or not self._admit(lease, price):
                        lease = await self._next(agent_id, price, lease)
                        # A new lease pays at least one call: this one, whatever the clock.
                        lease.remaining -= price
                        lease.inflight += 1
            finally:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[agent_id]
        usage.platform_id = lease.platform_id
        usage.spend_day = lease.day
        return LeasedCall(lease, usage)

    def finish(self, call: LeasedCall, *, ok: bool, values: dict[str, Any]) -> None:
        """The call ended: 2xx (``ok``: its price is used) or not (given back); ``values``
        are the usage row's outcome columns. Only the first report of a call counts."""
        if call.finished:
            return
        call.finished = True
        lease, price = call.lease, call.usage.price_micros
        lease.inflight -= 1
        if ok:
            lease.used += price
        elif not lease.retired:
            lease.remaining += price
        row = call.usage.row()
        row.update(values, status=SUCCEEDED if ok else FAILED, cost_micros=price if ok else 0,
                   lease_id=lease.id)
        self._queue.records.append(row)
        gateway_lease_unrecorded(1)
        if lease.retired and lease.inflight == 0:
            self._queue.closes.append(lease)
        self._write_soon()

    def retire(self, owner_id: str | None) -> None:
        """Take no more calls on the current leases of agent or platform ``owner_id`` (None:
        all), which changed: the next is taken on what is stored now, at the size the rate
        asks for. A key's id matches no lease."""
        self._change_seq += 1
        self._changes.append((self._change_seq, owner_id))
        for lease in list(self._current.values()):
            if owner_id is None or owner_id in (lease.agent_id, lease.platform_id):
                self._retire(lease, used_up=None)

    async def aclose(self) -> None:
        """Close the leases (those with calls still running are left to the sweeper)."""
        self._closing = True
        self.retire(None)
        # A writer pausing between rounds (or backing off) is woken for its last rounds.
        self._hurry().set()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer}, timeout=DRAIN_SECONDS)
        left = len(self._queue.records)
        if left:
            # Counted before this process's live gauges go (app.metrics.exposition).
            log.error("%d gateway calls paid from leases were not written before the process "
                      "stopped; they stay uncharged", left)
            gateway_lease("calls_lost_at_exit", count=left)

    # -- leases ---------------------------------------------------------------------------

    def _changed_since(self, seq: int, agent_id: str, platform_id: str | None) -> bool:
        """Whether a change of the agent or its platform (or of everything) was heard after
        change number ``seq`` (when too many were heard to tell, yes)."""
        if self._change_seq == seq:
            return False
        if not self._changes or self._changes[0][0] > seq + 1:
            return True
        return any(number > seq and owner in (None, agent_id, platform_id)
                   for number, owner in self._changes)

    def _admit(self, lease: Lease, price: int) -> bool:
        if lease.retired or lease.remaining < price:
            return False
        if lease.stale:
            self._retire(lease, used_up=None)
            return False
        if time.monotonic() >= lease.deadline:
            self._retire(lease, used_up=False)
            return False
        lease.remaining -= price
        lease.inflight += 1
        return True

    async def _next(self, agent_id: str, price: int, spent: Lease | None) -> Lease:
        if spent is not None:
            self._retire(spent, used_up=spent.remaining < price)
        desired = max(price, min(self._sizes.get(agent_id, price * FIRST_CALLS), self._max))
        heard = self._change_seq
        # Shielded: a lease committed but never tracked here would stay held until the sweeper.
        with anyio.CancelScope(shield=True):
            try:
                taken = await self._take(agent_id, price, desired)
            except (InsufficientCredits, SpendingLimitExceeded):
                if not self._returning.get(agent_id):
                    raise
                # This process's own retired leases still hold credits (and count against the
                # limits): let what they did not use go back first.
                await self._drained()
                taken = await self._take(agent_id, price, desired)
            lease = Lease(id=taken.lease_id, agent_id=agent_id, platform_id=taken.platform_id,
                          day=taken.day, amount=taken.amount_micros,
                          remaining=taken.amount_micros,
                          deadline=time.monotonic() + _lifetime(taken),
                          taken_at=time.monotonic())
            # A change heard while this lease was being taken (perhaps on the old terms) could
            # not retire it yet: it pays this call only.
            lease.stale = self._changed_since(heard, agent_id, taken.platform_id)
            displaced = self._current.get(agent_id)
            if displaced is not None:
                self._retire(displaced, used_up=None)
            self._current[agent_id] = lease
            self._tick_soon()
        return lease

    async def _take(self, agent_id: str, price: int, desired: int) -> leases.Taken:
        try:
            taken = await self._take_once(agent_id, price, desired)
        except leases.LeaseTooLarge:
            taken = await self._take_once(agent_id, price, price)
        gateway_lease("taken", micros=taken.amount_micros)
        return taken

    async def _take_once(self, agent_id: str, price: int, desired: int) -> leases.Taken:
        async with self._sessions() as session:
            taken = await leases.take(session, agent_id, price=price, desired=desired,
                                      holder=self.holder, lease_seconds=self._seconds,
                                      low_threshold_micros=self._low, relax_durability=self._relax)
            await session.commit()
        return taken

    def _retire(self, lease: Lease, *, used_up: bool | None) -> None:
        """No more calls on ``lease``; ``used_up`` sizes the next (None: keep the size)."""
        if lease.retired:
            return
        lease.retired = True
        if self._current.get(lease.agent_id) is lease:
            del self._current[lease.agent_id]
        if used_up:
            # Sized for the rate it was used at over a whole lifetime (at least double), so a
            # steady caller's leases settle at once instead of doubling up over several takes.
            elapsed = max(time.monotonic() - lease.taken_at, 0.001)
            at_rate = int(lease.amount * self._seconds / elapsed)
            self._sizes[lease.agent_id] = min(self._max, max(lease.amount * 2, at_rate))
        elif used_up is not None and lease.used:
            self._sizes[lease.agent_id] = lease.used
        elif used_up is not None:
            self._sizes.pop(lease.agent_id, None)
        self._returning.setdefault(lease.agent_id, set()).add(lease)
        if lease.inflight == 0:
            self._queue.closes.append(lease)
            self._write_soon()

    def _tick_soon(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        """Retire leases past their lifetime that no call came to notice, and keep the
        sweeper off retired leases whose calls still run."""
        while self._current or self._returning:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            for lease in [lease for lease in self._current.values()
                          if now >= lease.deadline or lease.stale]:
                self._retire(lease, used_up=None if lease.stale else False)
            if now - self._extended_at >= self._extend_every:
                self._extended_at = now
                await self._extend_running()

    async def _extend_running(self) -> None:
        running = [lease.id for held in self._returning.values() for lease in held
                   if lease.inflight > 0]
        if not running:
            return
        try:
            async with self._sessions() as session:
                await leases.extend(session, running, self._seconds + self._extend_every)
                await session.commit()
        except Exception:
            log.exception("could not extend %d gateway credit leases with calls running",
                          len(running))

    # -- the writer ---------------------------------------------------------------------------

    def _write_soon(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def _drained(self) -> None:
        """Have the writer run a round now, and wait (bounded) until one that began after
        this call has ended, or the writer found nothing more to do: the leases retired
        before it are closed then (unless calls on them still run), and what they did not use
        is back in the balance."""
        writer = self._writer
        idle = writer is None or writer.done()
        if idle and not (self._queue.records or self._queue.closes):
            return
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._round_waiters.append(ended)
        self._write_soon()
        self._hurry().set()
        await asyncio.wait({ended}, timeout=DRAIN_SECONDS)

    def _hurry(self) -> asyncio.Event:
        # Made on first use, in the event loop that runs the writer.
        if self._hurried is None:
            self._hurried = asyncio.Event()
        return self._hurried

    async def _write(self) -> None:
        """Write what finished, one round per ``WRITE_DELAY_SECONDS`` while anything is
        queued. A round takes everything queued since the last one, so a batch gathers
        however fast calls finish: starting the next batch as soon as one was written made
        batches of one or two calls, a transaction each, and cost a third of a call's CPU."""
        queue = self._queue
        failures = 0
        try:
            while queue.records or queue.closes:
                pause = round_pause(WRITE_DELAY_SECONDS, failures, cap=10.0,
                                    closing=self._closing)
                if self._closing:
                    await asyncio.sleep(pause)
                else:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._hurry().wait(), pause)
                    self._hurry().clear()
                waiters, self._round_waiters = self._round_waiters, []
                # Closes are taken first: each was queued after its lease's last record, so
                # those records are in this round and are written before their lease closes.
                closes, queue.closes = queue.closes, []
                records, queue.records = queue.records, []
                failures = await self._write_round(records, closes, failures)
                self._resolve(waiters)
        finally:
            # Nothing left to write (or the writer stopped): nobody waits for a round, and a
            # hurry asked for in the last round must not cut the next writer's first pause.
            self._resolve(self._round_waiters)
            self._round_waiters = []
            if self._hurried is not None and not self._closing:
                self._hurried.clear()

    async def _write_round(self, records: list[dict[str, Any]], closes: list[Lease],
                           failures: int) -> int:
        """Record one round's calls in batches, then close its leases; returns the failed
        writes in a row. A failed batch goes back (with the rest and the closes) for the next
        round, ahead of what was queued since; after ``RECORD_ATTEMPTS`` it is dropped."""
        while records:
            batch, records = records[:WRITE_BATCH], records[WRITE_BATCH:]
            if await self._record(batch, retried=failures > 0):
                gateway_lease("batches_written")
                gateway_lease("calls_written", count=len(batch))
                gateway_lease_unrecorded(-len(batch))
                failures = 0
                continue
            failures += 1
            if failures >= RECORD_ATTEMPTS:
                # Those calls stay uncharged: a lease's bounded loss (app.gateway.leases).
                log.error("dropped %d gateway calls paid from leases after %d failed "
                          "writes; they stay uncharged", len(batch), failures)
                gateway_lease("calls_dropped", count=len(batch))
                gateway_lease_unrecorded(-len(batch))
                failures = 0
                continue
            self._queue.records[:0] = [*batch, *records]
            self._queue.closes[:0] = closes
            return failures
        for lease in closes:
            await self._close(lease)
        return failures

    @staticmethod
    def _resolve(waiters: list[asyncio.Future[None]]) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _record(self, batch: list[dict[str, Any]], *, retried: bool) -> bool:
        try:
            async with self._sessions() as session:
                await leases.record(session, batch, retried=retried)
                await session.commit()
            return True
        except Exception:
            log.exception("could not record %d gateway calls paid from leases; retrying",
                          len(batch))
            gateway_lease("record_failed")
            return False

    async def _close(self, lease: Lease) -> None:
        try:
            async with self._sessions() as session:
                returned = await leases.close(session, lease.id, relax_durability=self._relax)
                await session.commit()
            gateway_lease("closed", micros=returned or 0)
        except Exception:
            log.exception("could not close gateway credit lease %s; the sweeper will",
                          lease.id)
        returning = self._returning.get(lease.agent_id)
        if returning is not None:
            returning.discard(lease)
            if not returning:
                del self._returning[lease.agent_id]


def _lifetime(taken: leases.Taken) -> float:
    """Seconds from now until the lease expires or its UTC day ends, whichever comes first."""
    now = utcnow()
    day_ends = datetime.strptime(taken.day, "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=1)
    return min((taken.expires_at - now).total_seconds(), (day_ends - now).total_seconds())


__all__ = ["LeasePool", "LeasedCall"]
