"""The webhook flows that take several transactions, run by the actors in ``workers/webhooks.py``.

Each step is a short transaction of its own and no transaction is open while a receiver is
called; what one step leaves behind (a lease, a pending row) is all the next one needs, so a
crash between two steps loses nothing (the sweeper re-drives it):

- **fan-out** (``webhook_fan_out``, one event id): (1) claim a batch of waiting events, write
  their messages and lease up to ``FAN_OUT_LEASES`` of them to this process, commit (the other
  messages' deliver jobs go out); (2) send the leased messages, no transaction open; (3) record
  every outcome in one transaction (attempts; delivered, retry scheduled, or failed and the
  endpoint perhaps disabled). A batch that fails for a reason a retry cannot fix is redone
  one event per transaction, so only the bad event is counted and, in the end, parked.
- **deliver** (``webhook_deliver``, one message id): (1) claim the lease on a due message,
  commit; (2) send; (3) record, as above. A delivered, failed or leased message is a no-op.
- **sweep** (``webhook_sweep``, periodic): fan out each stale event in a transaction of its
  own, then re-send deliver jobs for overdue, unleased messages in one more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from ulid import ULID

from app.attention.service import is_transient, run_each
from app.db.models.attention import WEBHOOK_EVENT
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.jobs import JobQueue
from app.logs import context as log_context
from app.metrics.instruments import WEBHOOK_DELIVERY_SECONDS, webhook_attempt
from app.webhooks import attempts, fan_out, leases, sweeper
from app.webhooks.leases import Claimed, NotDue
from app.webhooks.options import WebhookOptions
from app.webhooks.tasks import FAN_OUT, FAN_OUT_PENDING, SWEEP, fan_out_job, schedule_deliveries
from webhooks.signing import build_headers
from webhooks.transport import DeliveryResult, WebhookSender

log = logging.getLogger("passgate.webhooks")

# Events one fan-out job may take at once. Under a burst, 50 rather than 20 cut the worker's
# CPU per delivery by about 30% and PostgreSQL's by half (fewer transactions per delivery;
# benchmarks/webhook_throughput.py); the price is a longer worst-case lease (see
# ``leases.lease_until``), so a killed worker's batch waits longer for the sweeper.
FAN_OUT_BATCH = 50
# Messages one fan-out job sends itself; more become deliver jobs (spread over workers).
FAN_OUT_LEASES = 64


class DeliveryFlows:
    """The flows of one worker event loop: its sessions and job queue, one pooled SSRF-guarded
    HTTP client, and the send slots (``webhook_send_concurrency``) with how many leased
    messages wait for or hold one (leases are sized to that queue: ``leases.lease_until``)."""

    def __init__(
        self, options: WebhookOptions, sessions: async_sessionmaker[UnitOfWork], jobs: JobQueue,
        *, failure_limit: int,
    ) -> None:
        self.options = options
        self.sessions = sessions
        self.jobs = jobs
        self.failure_limit = failure_limit
        self.slots = asyncio.Semaphore(options.send_concurrency)
        self.queued = 0
        self._sender: WebhookSender | None = None

    @property
    def sender(self) -> WebhookSender:
        # Built on first send: a loop that only sweeps never opens a client.
        if self._sender is None:
            self._sender = WebhookSender(self.options.policy, self.options.transport)
        return self._sender

    async def aclose(self) -> None:
        if self._sender is not None:
            await self._sender.aclose()

    async def fan_out(self, event_id: str) -> None:
        """The fan-out flow for ``event_id`` and whatever else is waiting (module docstring).

        The API sends no further fan-out job while one is queued
        (``WebhookOutbox.dispatch_events``), so a full batch hands the rest to a follow-up job.
        """
        # Before looking for work: events committed from now on send a job of their own.
        await self.jobs.clear_pending(FAN_OUT_PENDING)
        try:
            claims, taken = await self._fan_out_batch(event_id)
        except Exception as exc:
            if is_transient(exc):
                raise
            # An event of the batch broke it: take the batch's events one at a time, so the
            # bad one is counted (and in the end parked) on its own and never holds up the
            # others.
            async with self.sessions() as session:
                waiting = await fan_out.waiting_events(session, event_id, FAN_OUT_BATCH)
            now = utcnow()
            await self._each_event(waiting, now, FAN_OUT)
            claims, taken = [], len(waiting)
        self.queued += len(claims)
        if taken >= FAN_OUT_BATCH:
            await self.jobs.send([fan_out_job(event_id)])
        await self._send_and_record(claims)

    async def _fan_out_batch(self, event_id: str) -> tuple[list[Claimed], int]:
        async with self.sessions() as session:
            claims, taken = await fan_out.fan_out_and_claim(
                session, event_id, utcnow(), self.options, batch=FAN_OUT_BATCH,
                lease_limit=FAN_OUT_LEASES, queued_ahead=self.queued,
            )
            await session.commit()
        return claims, taken

    async def deliver(self, message_id: str) -> None:
        """The deliver flow: one attempt at a message, if it is due and nobody else holds it."""
        log_context.bind(message_id=message_id)
        async with self.sessions() as session:
            claimed = await leases.claim(session, message_id, utcnow(), self.options,
                                         queued_ahead=self.queued)
            if isinstance(claimed, NotDue):
                schedule_deliveries(session, [(message_id, claimed.seconds)])
            await session.commit()
        if isinstance(claimed, Claimed):
            self.queued += 1
            await self._send_and_record([claimed])

    async def sweep(self) -> None:
        """The sweep flow: re-drive from the database what the broker lost."""
        now = utcnow()
        async with self.sessions() as session:
            stale = await sweeper.stale_events(session, now, self.options)
        await self._each_event(stale, now, SWEEP)
        async with self.sessions() as session:
            await sweeper.redrive_due(session, now, self.options)
            await session.commit()

    async def _each_event(self, event_ids: Iterable[str], now: datetime, actor: str) -> None:
        await run_each(
            self.sessions, WEBHOOK_EVENT, event_ids,
            lambda session, one: fan_out.fan_out_event(session, one, now),
            actor=actor, limit=self.failure_limit,
        )

    async def _send_and_record(self, claims: list[Claimed]) -> None:
        """Send leased messages (as slots free up), then record every outcome in one
        transaction."""
        if not claims:
            return
        results = await asyncio.gather(*(self._send(claimed) for claimed in claims))
        async with self.sessions() as session:
            await attempts.record_many(session, results, utcnow(), self.options)
            await session.commit()

    async def _send(self, claimed: Claimed) -> tuple[Claimed, DeliveryResult]:
        # Each send is a task of its own (gather), so these ids stay with this attempt's lines.
        log_context.bind(message_id=claimed.message_id, endpoint_id=claimed.endpoint_id)
        try:
            async with self.slots:
                # Signed when sent, so webhook-timestamp is the attempt's own time.
                headers = build_headers(claimed.message_id, claimed.body, claimed.secrets)
                result = await self.sender.send(claimed.url, claimed.body, headers)
        finally:
            self.queued -= 1
        _measure(claimed.message_id, result)
        return claimed, result


def _measure(message_id: str, result: DeliveryResult) -> None:
    outcome = "success" if result.success else result.error_kind or "http"
    webhook_attempt(outcome, result.latency_ms)
    if not result.success:
        log.info("attempt failed (%s, %s ms): %s", outcome, result.latency_ms, result.error)
    else:
        log.debug("delivered (%s, %s ms)", result.status_code, result.latency_ms)
        # Message ids are ULIDs: their first part is the message's creation time.
        created = ULID.from_str(message_id.partition("_")[2]).timestamp
        WEBHOOK_DELIVERY_SECONDS.observe(max(time.time() - created, 0.0))
