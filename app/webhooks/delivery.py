"""The database half of delivery: fan-out, claiming, recording attempts, sweeping.

The actors in ``workers/webhooks.py`` own the transactions; nothing here commits. Each step is a
conditional UPDATE, so concurrent workers (and the sweeper) can race for the same row and exactly
one wins:

- fan-out claims an event by setting ``events.dispatched_at`` where it is NULL, then writes one
  message per matching endpoint (unique on event x endpoint);
- a delivery claims a message by taking a lease (``locked_until`` + ``claim_token``) on a due,
  pending, unleased row; the HTTP call happens outside any transaction; the result is written
  only if the lease is still ours;
- the sweeper re-drives what the broker lost: events left undispatched and pending messages
  overdue by the grace period, leased by nobody (a killed worker's lease runs out).

Jobs (deliveries, retries) are registered with :func:`schedule_deliveries` and go to the broker
only after the transaction commits.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import insert, or_, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db.hooks import after_commit
from app.events.models import Event
from app.events.service import emit
from app.ids import new_id
from app.webhooks.jobs import WEBHOOK_JOBS, WebhookOutbox
from app.webhooks.models import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)
from app.webhooks.options import WebhookOptions
from webhooks.events import (
    OPERATOR_ONLY_EVENT_TYPES,
    EventType,
    PayloadTooLargeError,
    UnknownEventTypeError,
    WebhookEndpointDisabled,
    build_envelope,
    matches,
)
from webhooks.schedule import should_disable_endpoint
from webhooks.transport import DeliveryResult

log = logging.getLogger("passgate.webhooks")

# Core tables: the delivery path runs per message, so it skips the ORM layer (identity map,
# synchronize_session, bulk-persistence bookkeeping) and speaks SQL expressions directly.
_EV: sa.Table = Event.__table__  # type: ignore[attr-defined]
_EP: sa.Table = WebhookEndpoint.__table__  # type: ignore[attr-defined]
_M: sa.Table = WebhookMessage.__table__  # type: ignore[attr-defined]
_AT: sa.Table = WebhookAttempt.__table__  # type: ignore[attr-defined]

# A deliver job may arrive a little before its row is due (clocks, millisecond rounding).
EARLY_TOLERANCE = timedelta(milliseconds=50)
MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message this worker holds the lease on, with everything needed to send it."""

    message_id: str
    endpoint_id: str
    url: str
    body: bytes
    token: str
    attempt_count: int
    failing_since: datetime | None
    # Newest first; kept out of repr so a logged Claimed never shows a secret.
    secrets: list[str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class NotDue:
    """The message is pending but due later; ``seconds`` until then."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    retry_in: float | None = None
    disabled_reason: str | None = None


def schedule_deliveries(
    session: AsyncSession, scheduled: Sequence[tuple[str, float | None]]
) -> None:
    """Enqueue ``(message id, delay seconds)`` jobs once the transaction commits.

    Sessions without a webhook outbox (tools, tests) skip this: the sweeper finds the rows.
    """
    outbox: WebhookOutbox | None = session.info.get(WEBHOOK_JOBS)
    if outbox is None or not scheduled:
        return
    pairs = list(scheduled)

    async def send() -> None:
        await outbox.deliver(pairs)

    after_commit(session, send)


# -- fan-out -------------------------------------------------------------------------------


def _message_row(
    endpoint_id: str, event_id: str, event_type: str, body: str, now: datetime
) -> dict[str, Any]:
    return {
        "id": new_id("msg"),
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "event_type": event_type,
        "body": body,
        "status": PENDING,
        "attempt_count": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


async def _target_endpoints(
    session: AsyncSession, event_type: str, platform_id: str | None, emitted_at: datetime
) -> list[Any]:
    """Enabled endpoints that get this event: the operator's always, the platform's own
    (never for operator-only types), each filtered by its subscribed types.

    Only endpoints that existed when the event happened: how late the fan-out runs (a busy
    queue, the sweeper) must not change who receives it. Rows carry what sending needs.
    """
    stmt = select(
        _EP.c.id, _EP.c.event_types, _EP.c.url,
        _EP.c.secret_sealed, _EP.c.previous_secret_sealed,
        _EP.c.previous_secret_expires_at, _EP.c.failing_since,
    ).where(_EP.c.enabled.is_(True), _EP.c.created_at <= emitted_at)
    operator_only = event_type in OPERATOR_ONLY_EVENT_TYPES
    if platform_id is None or operator_only:
        stmt = stmt.where(_EP.c.platform_id.is_(None))
    else:
        stmt = stmt.where(
            or_(_EP.c.platform_id.is_(None),
                _EP.c.platform_id == platform_id)
        )
    rows = (await session.execute(stmt.order_by(_EP.c.id))).all()
    return [row for row in rows if matches(row.event_types or [], event_type)]


async def _fan_out(
    session: AsyncSession, event_id: str, now: datetime, options: WebhookOptions | None
) -> list[Claimed] | list[str]:
    claimed_event = (
        await session.execute(
            update(_EV)
            .where(_EV.c.id == event_id, _EV.c.dispatched_at.is_(None))
            .values(dispatched_at=now)
            .returning(_EV.c.type, _EV.c.platform_id, _EV.c.data,
                       _EV.c.created_at)
        )
    ).first()
    if claimed_event is None:
        return []
    event_type, platform_id, data, created = claimed_event
    targets = await _target_endpoints(session, event_type, platform_id, created)
    if not targets:
        return []
    try:
        body = build_envelope(event_type, data, timestamp=created).decode()
    except (UnknownEventTypeError, PayloadTooLargeError, msgspec.ValidationError,
            TypeError, ValueError):
        # A bug in an emitter; retrying can't fix it, so it is logged and skipped rather than
        # blocking the outbox. tests/webhooks_api/test_event_shapes.py guards every emitter.
        log.exception("event %s (%s) does not fit its webhook shape; not delivered",
                      event_id, event_type)
        return []
    rows = [_message_row(target.id, event_id, event_type, body, now) for target in targets]
    if options is None:
        await session.execute(insert(_M), rows)
        ids = [row["id"] for row in rows]
        schedule_deliveries(session, [(message_id, None) for message_id in ids])
        return ids
    # The caller sends at once: the rows are born leased to it, so no deliver job is needed.
    # Should it die before recording, the lease runs out and the sweeper re-drives the rows.
    claims: list[Claimed] = []
    for row, target in zip(rows, targets, strict=True):
        row["claim_token"] = secrets.token_hex(12)
        row["locked_until"] = now + options.claim_for
        claims.append(Claimed(
            message_id=row["id"], endpoint_id=target.id, url=target.url,
            body=body.encode(), token=row["claim_token"], attempt_count=0,
            failing_since=target.failing_since,
            secrets=_live_secrets(target.id, target.secret_sealed,
                                  target.previous_secret_sealed,
                                  target.previous_secret_expires_at, options, now),
        ))
    await session.execute(insert(_M), rows)
    return claims


async def fan_out_event(session: AsyncSession, event_id: str, now: datetime) -> list[str]:
    """Turn one undispatched event into messages and schedule a deliver job for each.

    Idempotent: the event is claimed by a conditional UPDATE of ``dispatched_at``, so a second
    call (a duplicate job, the sweeper) finds nothing to do.
    """
    ids = await _fan_out(session, event_id, now, None)
    return [i for i in ids if isinstance(i, str)]


async def fan_out_and_claim(
    session: AsyncSession, event_id: str, now: datetime, options: WebhookOptions
) -> list[Claimed]:
    """Like :func:`fan_out_event`, but the messages are leased to the caller, who sends them
    right after the commit (one transaction and one broker hop fewer per delivery)."""
    claims = await _fan_out(session, event_id, now, options)
    return [c for c in claims if isinstance(c, Claimed)]


async def create_direct_message(
    session: AsyncSession, endpoint_id: str, event: Event, now: datetime
) -> str:
    """A message for one endpoint only, whatever it subscribed to (``webhook.test``)."""
    await session.flush()
    body = build_envelope(event.type, event.data, timestamp=event.created_at).decode()
    row = _message_row(endpoint_id, event.id, event.type, body, now)
    await session.execute(insert(_M), [row])
    schedule_deliveries(session, [(row["id"], None)])
    message_id: str = row["id"]
    return message_id


# -- delivery ------------------------------------------------------------------------------


def _live_secrets(
    endpoint_id: str, sealed: str, previous_sealed: str | None,
    previous_expires_at: datetime | None, options: WebhookOptions, now: datetime,
) -> list[str]:
    live = [options.box.open(sealed, context=endpoint_id)]
    if previous_sealed and previous_expires_at is not None and previous_expires_at > now:
        live.append(options.box.open(previous_sealed, context=endpoint_id))
    return live


def endpoint_secrets(
    endpoint: WebhookEndpoint, options: WebhookOptions, now: datetime
) -> list[str]:
    """The secrets that sign right now, newest first (two during a rotation's overlap)."""
    return _live_secrets(endpoint.id, endpoint.secret_sealed, endpoint.previous_secret_sealed,
                         endpoint.previous_secret_expires_at, options, now)


async def claim(
    session: AsyncSession, message_id: str, now: datetime, options: WebhookOptions
) -> Claimed | NotDue | None:
    """Take the lease on a due message, or say why not (``None``: nothing to send)."""
    token = secrets.token_hex(12)
    row = (
        await session.execute(
            update(_M)
            .where(
                _M.c.id == message_id,
                _M.c.status == PENDING,
                _M.c.next_attempt_at <= now + EARLY_TOLERANCE,
                or_(_M.c.locked_until.is_(None),
                    _M.c.locked_until <= now),
            )
            .values(locked_until=now + options.claim_for, claim_token=token)
            .returning(_M.c.endpoint_id, _M.c.body,
                       _M.c.attempt_count)
        )
    ).first()
    if row is None:
        return await _why_not_claimed(session, message_id, now)
    endpoint_id, body, attempt_count = row
    endpoint = (
        await session.execute(
            select(_EP.c.enabled, _EP.c.url, _EP.c.secret_sealed, _EP.c.previous_secret_sealed,
                   _EP.c.previous_secret_expires_at, _EP.c.failing_since)
            .where(_EP.c.id == endpoint_id)
        )
    ).first()
    if endpoint is None or not endpoint.enabled:
        await _fail_pending(session, [message_id], now, "Endpoint is disabled.")
        return None
    return Claimed(
        message_id=message_id,
        endpoint_id=endpoint_id,
        url=endpoint.url,
        body=body.encode(),
        token=token,
        attempt_count=attempt_count,
        failing_since=endpoint.failing_since,
        secrets=_live_secrets(endpoint_id, endpoint.secret_sealed,
                              endpoint.previous_secret_sealed,
                              endpoint.previous_secret_expires_at, options, now),
    )


async def _why_not_claimed(session: AsyncSession, message_id: str, now: datetime) -> NotDue | None:
    row = (
        await session.execute(
            select(_M.c.status, _M.c.next_attempt_at,
                   _M.c.locked_until)
            .where(_M.c.id == message_id)
        )
    ).first()
    if row is None:
        return None
    status, due, locked_until = row
    if status != PENDING or due is None or (locked_until is not None and locked_until > now):
        # Delivered, failed, or another worker holds it: this job is a duplicate.
        return None
    if due > now:
        # Early (a skewed clock): come back when due rather than wait for the sweeper.
        return NotDue((due - now).total_seconds())
    return None


async def record(
    session: AsyncSession,
    claimed: Claimed,
    result: DeliveryResult,
    now: datetime,
    options: WebhookOptions,
) -> Outcome:
    """Log the attempt and move the message on: delivered, retry later, or failed.

    A 410 disables the endpoint; so does a failure when the endpoint has failed continuously
    for longer than the threshold. The message row changes only while our lease holds.
    """
    attempt_number = claimed.attempt_count + 1
    await session.execute(
        insert(_AT),
        [{
            "id": new_id("wha"),
            "message_id": claimed.message_id,
            "endpoint_id": claimed.endpoint_id,
            "success": result.success,
            "status_code": result.status_code,
            "latency_ms": result.latency_ms,
            "response_body": result.response_body,
            "error": result.error,
            "error_kind": result.error_kind,
            "started_at": now - timedelta(milliseconds=result.latency_ms),
            "created_at": now,
        }],
    )
    common: dict[str, Any] = {
        "attempt_count": attempt_number,
        "last_attempt_at": now,
        "last_status_code": result.status_code,
        "locked_until": None,
        "claim_token": None,
    }
    if result.success:
        await _update_leased(claimed, session, common | {
            "status": DELIVERED, "delivered_at": now, "next_attempt_at": None,
            "last_error": None,
        })
        if claimed.failing_since is not None:
            await session.execute(
                update(_EP)
                .where(_EP.c.id == claimed.endpoint_id)
                .values(failing_since=None)
            )
        return Outcome(DELIVERED)

    failing_since = claimed.failing_since or now
    if claimed.failing_since is None:
        await session.execute(
            update(_EP)
            .where(_EP.c.id == claimed.endpoint_id,
                   _EP.c.failing_since.is_(None))
            .values(failing_since=now)
        )
    reason: str | None = None
    if result.gone:
        reason = "gone"
    elif should_disable_endpoint(failing_since, now, options.disable_after):
        reason = "failing"
    delay = None
    if reason is None:
        delay = options.schedule.next_delay(
            attempt_number, status_code=result.status_code, retry_after=result.retry_after
        )
    error = (result.error or "Delivery failed.")[:MAX_ERROR_CHARS]
    if delay is None:
        changes = {"status": FAILED, "failed_at": now, "next_attempt_at": None}
    else:
        changes = {"status": PENDING, "next_attempt_at": now + timedelta(seconds=delay),
                   "redriven_at": None}
    still_ours = await _update_leased(claimed, session, common | changes | {"last_error": error})
    if reason is not None:
        await disable_endpoint(session, claimed.endpoint_id, reason, now)
    if delay is not None and still_ours:
        schedule_deliveries(session, [(claimed.message_id, delay)])
    return Outcome(FAILED if delay is None else PENDING, delay, reason)


async def _update_leased(claimed: Claimed, session: AsyncSession, values: dict[str, Any]) -> bool:
    row = (
        await session.execute(
            update(_M)
            .where(_M.c.id == claimed.message_id,
                   _M.c.claim_token == claimed.token)
            .values(**values)
            .returning(_M.c.id)
        )
    ).first()
    if row is None:
        log.info("lease on %s lapsed before its attempt was recorded", claimed.message_id)
    return row is not None


async def _fail_pending(
    session: AsyncSession, message_ids: Sequence[str] | None, now: datetime, error: str,
    endpoint_id: str | None = None,
) -> None:
    stmt = update(_M).where(_M.c.status == PENDING)
    if message_ids is not None:
        stmt = stmt.where(_M.c.id.in_(list(message_ids)))
    if endpoint_id is not None:
        stmt = stmt.where(_M.c.endpoint_id == endpoint_id)
    await session.execute(
        stmt.values(status=FAILED, failed_at=now, next_attempt_at=None, locked_until=None,
                    claim_token=None, last_error=error)
    )


async def disable_endpoint(
    session: AsyncSession, endpoint_id: str, reason: str, now: datetime
) -> bool:
    """Stop delivering to an endpoint and fail its pending messages (replayable later).

    ``reason``: ``manual``, ``gone`` (410) or ``failing``. Automatic disables are logged and
    announced to operator endpoints (``webhook.endpoint_disabled``). Returns False when the
    endpoint was already disabled (a concurrent worker got there first).
    """
    row = (
        await session.execute(
            update(_EP)
            .where(_EP.c.id == endpoint_id, _EP.c.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
            .returning(_EP.c.platform_id, _EP.c.url,
                       _EP.c.failing_since)
        )
    ).first()
    if row is None:
        return False
    platform_id, url, failing_since = row
    await _fail_pending(session, None, now, f"Endpoint disabled ({reason}).", endpoint_id)
    if reason != "manual":
        # The id only: webhook URLs often carry tokens in their query string.
        log.warning("webhook endpoint %s disabled (%s)", endpoint_id, reason)
        data = WebhookEndpointDisabled(
            endpoint_id=endpoint_id, platform_id=platform_id, url=url, reason=reason,
            failing_since=failing_since if reason == "failing" else None, disabled_at=now,
        )
        await emit(session, EventType.WEBHOOK_ENDPOINT_DISABLED.value, msgspec.to_builtins(data),
                   platform_id=platform_id)
    return True


# -- sweeper -------------------------------------------------------------------------------


async def fan_out_stale(session: AsyncSession, now: datetime, options: WebhookOptions) -> int:
    """Fan out events still undispatched after the grace period (their job was lost)."""
    cutoff = now - options.sweep_grace
    ids = (
        await session.execute(
            select(_EV.c.id)
            .where(_EV.c.dispatched_at.is_(None), _EV.c.created_at <= cutoff)
            .order_by(_EV.c.id)
            .limit(options.sweep_batch)
        )
    ).scalars().all()
    for event_id in ids:
        await fan_out_event(session, event_id, now)
    return len(ids)


async def redrive_due(session: AsyncSession, now: datetime, options: WebhookOptions) -> int:
    """Re-send deliver jobs for pending messages overdue by the grace period and unleased.

    ``redriven_at`` keeps a backlog that the workers are merely slow to drain from being
    re-sent more than once per grace period.
    """
    cutoff = now - options.sweep_grace
    candidates = (
        await session.execute(
            select(_M.c.id)
            .where(
                _M.c.status == PENDING,
                _M.c.next_attempt_at <= cutoff,
                or_(_M.c.locked_until.is_(None),
                    _M.c.locked_until <= now),
                or_(_M.c.redriven_at.is_(None),
                    _M.c.redriven_at <= cutoff),
            )
            .order_by(_M.c.next_attempt_at)
            .limit(options.sweep_batch)
        )
    ).scalars().all()
    if not candidates:
        return 0
    await session.execute(
        update(_M)
        .where(_M.c.id.in_(list(candidates)))
        .values(redriven_at=now)
    )
    schedule_deliveries(session, [(message_id, None) for message_id in candidates])
    return len(candidates)
