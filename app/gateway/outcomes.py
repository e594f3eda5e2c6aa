"""Recording how a gateway call ended: keep the reserved charge, or give it back.

On upstream 2xx the usage row is marked ``succeeded`` and the charge stands; those outcomes
are written off the request path, many per transaction (:class:`KeptCalls`). Otherwise the
release marks it ``failed``, posts a ``refund`` (which also takes the amount back out of
``spent_micros``) and lowers the counters, in a transaction of its own
(:func:`release_now`). The pending -> final transition is a conditional UPDATE, so the
request and the stale-reservation sweeper (:func:`release_abandoned`, one transaction per
call) can never both settle a call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import anyio
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.credits import ledger
from app.db.models.gateway import FAILED
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.gateway import repository
from app.gateway.rounds import round_pause

log = logging.getLogger("passgate.gateway")

# How long closing the runtime waits for usage rows still being finalised.
_DRAIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an upstream call ended, as the usage row records it."""

    upstream_status: int | None
    latency_ms: int | None
    upstream_request_id: str | None = None
    error: str | None = None


async def keep(session: UnitOfWork, kept: Sequence[tuple[str, Outcome]]) -> None:
    """The upstream answered 2xx: these calls' charges stand (one batched statement).

    A call already released meanwhile (by the sweeper) stays released.
    """
    now = utcnow()
    await repository.keep_usage(
        session,
        [
            {
                "usage_id": usage_id,
                "upstream_status": outcome.upstream_status,
                "latency_ms": outcome.latency_ms,
                "upstream_request_id": outcome.upstream_request_id,
                "completed_at": now,
            }
            for usage_id, outcome in kept
        ],
    )


async def release(session: UnitOfWork, usage_id: str, outcome: Outcome) -> bool:
    """The call failed: give the reservation back. False if the call was already closed."""
    finished = await repository.finish_usage(
        session,
        usage_id,
        {
            "status": FAILED,
            "cost_micros": 0,
            "upstream_status": outcome.upstream_status,
            "latency_ms": outcome.latency_ms,
            "upstream_request_id": outcome.upstream_request_id,
            "error": outcome.error,
            "completed_at": utcnow(),
        },
    )
    if finished is None:
        return False
    if finished.payment != "credits" or finished.agent_id is None or finished.price_micros == 0:
        # Nothing was taken from credits (an x402 call is paid, or not, by its payment).
        return True
    await ledger.post(
        session,
        finished.agent_id,
        "refund",
        finished.price_micros,
        idempotency_key=f"gateway-release:{usage_id}",
        reference=usage_id,
        reason=f"gateway call not charged ({outcome.error or outcome.upstream_status})",
    )
    if finished.spend_day is not None:
        await repository.remove_spend(
            session,
            repository.spend_owners(finished.agent_id, finished.platform_id),
            finished.spend_day,
            finished.price_micros,
        )
    return True


async def release_now(
    sessions: async_sessionmaker[UnitOfWork], usage_id: str, outcome: Outcome
) -> None:
    """Give the reservation back now, in its own transaction; if the database fails, the
    sweeper will.

    Shielded: a release interrupted by cancellation would leave the money reserved until
    the reservation TTL. A failure is logged, not raised, so the caller still gets the
    upstream's answer (or the 502) rather than a 500.
    """
    with anyio.CancelScope(shield=True):
        try:
            async with sessions() as session:
                await release(session, usage_id, outcome)
                await session.commit()
        except Exception:
            log.exception("could not release gateway reservation %s", usage_id)


class KeptCalls:
    """Records 2xx outcomes off the request path, many per transaction.

    One writer task writes a round of whatever was queued every ``delay`` seconds while there
    is any, so under load a transaction covers many calls and the responses of those calls go
    out first instead of waiting behind the write. (Starting the next batch as soon as one
    was written made batches of one or two calls, a transaction each.) The charges are already
    committed: a batch whose write fails is tried again, backing off to 8 s, ``ATTEMPTS`` times
    in all (about 15 s: a database blip loses nothing); an outcome lost after that (or in a
    crash) leaves its call ``pending``, and the sweeper then releases it (the agent's favour).
    """

    ATTEMPTS = 5

    def __init__(
        self,
        sessions: async_sessionmaker[UnitOfWork],
        *,
        batch: int = 500,
        delay: float = 0.05,
    ) -> None:
        self._sessions = sessions
        self._batch = batch
        self._delay = delay
        self._queue: list[tuple[str, Outcome]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    def add(self, usage_id: str, outcome: Outcome) -> None:
        """Queue a 2xx outcome for the writer (starting it if it is idle)."""
        self._queue.append((usage_id, outcome))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())

    async def aclose(self) -> None:
        """Wait a little for the outcomes still queued (closing the runtime)."""
        self._closing = True
        if self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer}, timeout=_DRAIN_SECONDS)

    async def _drain(self) -> None:
        failures = 0
        while self._queue:
            await asyncio.sleep(round_pause(self._delay, failures, cap=8.0,
                                            closing=self._closing))
            queued, self._queue = self._queue, []
            failures = await self._write_round(queued, failures)

    async def _write_round(self, queued: list[tuple[str, Outcome]], failures: int) -> int:
        """Keep one round's outcomes in batches; returns the failed writes in a row. A failed
        batch goes back (with the rest) for the next round; after ``ATTEMPTS`` it is left to
        the sweeper."""
        while queued:
            batch, queued = queued[: self._batch], queued[self._batch :]
            try:
                async with self._sessions() as session:
                    await keep(session, batch)
                    await session.commit()
                failures = 0
            except Exception:
                failures += 1
                if failures >= self.ATTEMPTS:
                    log.exception("could not record %d gateway outcomes (%d tries); the "
                                  "sweeper releases them", len(batch), failures)
                    failures = 0
                    continue
                log.warning("could not record %d gateway outcomes; retrying",
                            len(batch), exc_info=True)
                self._queue[:0] = [*batch, *queued]
                return failures
        return failures


async def stale_reservations(
    sessions: async_sessionmaker[UnitOfWork], older_than_seconds: float, batch: int = 500
) -> list[str]:
    """Reservations still pending after ``older_than_seconds``: their process died mid-call
    (except those parked for an operator)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    async with sessions() as session:
        return await repository.stale_usage_ids(session, cutoff, batch)


async def release_abandoned(session: UnitOfWork, usage_id: str) -> bool:
    """Give back one abandoned reservation (False: the call was closed meanwhile)."""
    return await release(session, usage_id, Outcome(None, None, error="abandoned"))


async def release_stale(
    sessions: async_sessionmaker[UnitOfWork], older_than_seconds: float, batch: int = 500
) -> int:
    """Release reservations whose call was abandoned (the process died mid-call).

    Errs in the agent's favour: a call whose upstream did answer 2xx but whose process died
    before recording it is not charged.
    """
    released = 0
    for usage_id in await stale_reservations(sessions, older_than_seconds, batch):
        # One transaction per call: a batch never holds many agents' locks at once.
        async with sessions() as session:
            if await release_abandoned(session, usage_id):
                released += 1
            await session.commit()
    if released:
        log.warning("released %d abandoned gateway reservations", released)
    return released
