"""One API process's credit leases (``app.gateway.leases``): calls are paid from memory.

Per agent there is at most one current lease. A call takes its price from it with no await in
between (one event loop: nothing can interleave), or, when it runs short, expired or retired,
takes the next one under a per-agent lock, so one process never takes two leases of one agent
at once. A finished call is queued for the writer; a failed one puts its price back.

The writer records finished calls in batches off the request path, then closes retired leases
once their last call finished (records always first, so a lease's use is complete when it is
closed). Lease sizes follow the agent's rate here: a lease used up before it expired doubles the
next (up to ``gateway_lease_max_micros``); one that expired is followed by one of what it used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db.models.gateway import FAILED, SUCCEEDED, OpenCall
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import InsufficientCredits
from app.gateway import leases
from app.metrics.instruments import gateway_lease
from app.settings import Settings

log = logging.getLogger("passgate.gateway")

# A first lease pays this many calls (then it follows the rate).
FIRST_CALLS = 8
# How often leases past their lifetime are retired when no call comes to notice.
TICK_SECONDS = 0.25
# The writer waits this long after the first queued item, so a batch gathers.
WRITE_DELAY_SECONDS = 0.05
WRITE_BATCH = 500
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
    # Monotonic: no call starts on it from then on (its lifetime, or UTC midnight).
    deadline: float
    inflight: int = 0
    used: int = 0
    retired: bool = False


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
        self.holder = f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._current: dict[str, Lease] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._sizes: dict[str, int] = {}
        # Retired leases not closed yet, by agent: credits that are on their way back.
        self._returning: dict[str, set[Lease]] = {}
        self._queue = _Queue()
        self._writer: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    # -- the request path ---------------------------------------------------------------------

    async def pay(self, usage: OpenCall) -> LeasedCall:
        """Pay ``usage.price_micros`` from the agent's lease (taking one if needed); raises the
        per-call path's INSUFFICIENT_CREDITS / SPENDING_LIMIT_EXCEEDED."""
        assert usage.agent_id is not None
        agent_id, price = usage.agent_id, usage.price_micros
        lease = self._current.get(agent_id)
        if lease is None or not self._admit(lease, price):
            lock = self._locks.setdefault(agent_id, asyncio.Lock())
            try:
                async with lock:
                    lease = self._current.get(agent_id)
                    if lease is None or not self._admit(lease, price):
                        lease = await self._next(agent_id, price, lease)
                        # A new lease pays at least one call: this one, whatever the clock.
                        lease.remaining -= price
                        lease.inflight += 1
            finally:
                if not lock.locked() and self._locks.get(agent_id) is lock:
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
        if lease.retired and lease.inflight == 0:
            self._queue.closes.append(lease)
        self._write_soon()

    def retire_all(self) -> None:
        """Take no more calls on the current leases (an agent or platform changed: the next
        lease is taken on what is stored now)."""
        for lease in list(self._current.values()):
            self._retire(lease, used_up=False)

    async def aclose(self) -> None:
        """Close the leases (those with calls still running are left to the sweeper)."""
        self.retire_all()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer}, timeout=DRAIN_SECONDS)

    def held(self) -> int:
        """Credits this process holds in leases not yet closed (for the metrics)."""
        current = sum(lease.amount for lease in self._current.values())
        return current + sum(lease.amount for held in self._returning.values() for lease in held)

    # -- leases ---------------------------------------------------------------------------

    def _admit(self, lease: Lease, price: int) -> bool:
        if lease.retired or lease.remaining < price:
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
        try:
            taken = await self._take(agent_id, price, desired)
        except InsufficientCredits:
            if not self._returning.get(agent_id):
                raise
            # This process's own retired leases still hold credits: wait for them to go back.
            await self._drained()
            taken = await self._take(agent_id, price, desired)
        now = utcnow()
        midnight = (now.astimezone(UTC) + timedelta(days=1)).replace(
            hour=0, minute=0, second=0, microsecond=0)
        lifetime = min((taken.expires_at - now).total_seconds(), (midnight - now).total_seconds())
        lease = Lease(id=taken.lease_id, agent_id=agent_id, platform_id=taken.platform_id,
                      day=taken.day, amount=taken.amount_micros,
                      remaining=taken.amount_micros, deadline=time.monotonic() + lifetime)
        self._current[agent_id] = lease
        self._tick_soon()
        return lease

    async def _take(self, agent_id: str, price: int, desired: int) -> leases.Taken:
        async with self._sessions() as session:
            taken = await leases.take(session, agent_id, price=price, desired=desired,
                                      holder=self.holder, lease_seconds=self._seconds,
                                      low_threshold_micros=self._low)
            await session.commit()
        gateway_lease("taken", taken.amount_micros)
        return taken

    def _retire(self, lease: Lease, *, used_up: bool) -> None:
        if lease.retired:
            return
        lease.retired = True
        if self._current.get(lease.agent_id) is lease:
            del self._current[lease.agent_id]
        if used_up:
            self._sizes[lease.agent_id] = min(self._max, lease.amount * 2)
        elif lease.used:
            self._sizes[lease.agent_id] = lease.used
        else:
            self._sizes.pop(lease.agent_id, None)
        self._returning.setdefault(lease.agent_id, set()).add(lease)
        if lease.inflight == 0:
            self._queue.closes.append(lease)
            self._write_soon()

    def _tick_soon(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        """Retire leases past their lifetime that no call came to notice."""
        while self._current:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            for lease in [lease for lease in self._current.values() if now >= lease.deadline]:
                self._retire(lease, used_up=False)

    # -- the writer ---------------------------------------------------------------------------

    def _write_soon(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def _drained(self) -> None:
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.wait({writer}, timeout=DRAIN_SECONDS)

    async def _write(self) -> None:
        await asyncio.sleep(WRITE_DELAY_SECONDS)
        queue = self._queue
        while queue.records or queue.closes:
            while queue.records:
                batch, queue.records = (queue.records[:WRITE_BATCH],
                                        queue.records[WRITE_BATCH:])
                await self._record(batch)
            closes, queue.closes = queue.closes, []
            for lease in closes:
                await self._close(lease)

    async def _record(self, batch: list[dict[str, Any]]) -> None:
        try:
            async with self._sessions() as session:
                await leases.record(session, batch)
                await session.commit()
        except Exception:
            # Those calls stay uncharged: the bounded loss of a lease (see app.gateway.leases).
            log.exception("could not record %d gateway calls paid from leases", len(batch))

    async def _close(self, lease: Lease) -> None:
        try:
            async with self._sessions() as session:
                await leases.close(session, lease.id)
                await session.commit()
            gateway_lease("closed", lease.amount - lease.used)
        except Exception:
            log.exception("could not close gateway credit lease %s; the sweeper will",
                          lease.id)
        returning = self._returning.get(lease.agent_id)
        if returning is not None:
            returning.discard(lease)
            if not returning:
                del self._returning[lease.agent_id]


__all__ = ["LeasePool", "LeasedCall"]
