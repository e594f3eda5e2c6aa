"""The database half of delivery: fan-out, claiming, recording attempts, sweeping.

The actors in ``workers/webhooks.py`` own the transactions; nothing here commits. Every step is
a conditional UPDATE, so concurrent workers (and the sweeper) can race for the same row and
exactly one wins:

- fan-out claims events by setting ``events.dispatched_at`` where it is NULL, then writes one
  message per matching endpoint (unique on event x endpoint). The ``fan_out`` actor's messages
  are born leased to it and sent at once; under load one job takes a batch of waiting events;
- a retry, replay or test claims a message by taking a lease (``locked_until`` +
  ``claim_token``) on a due, pending, unleased row;
- the HTTP call happens outside any transaction; results are written only while the lease is
  still ours;
- the sweeper re-drives what the broker lost: events left undispatched and pending messages
  overdue by the grace period and leased by nobody (a killed worker's lease runs out).

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

from app.attention.filters import not_parked
from app.db.models.attention import WEBHOOK_EVENT, WEBHOOK_MESSAGE
from app.db.models.events import Event
from app.db.models.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)
from app.db.uow import UnitOfWork
from app.events.service import emit
from app.ids import new_id
from app.webhooks.options import WebhookOptions
from app.webhooks.tasks import deliver_job
from webhooks.events import (
    OPERATOR_ONLY_EVENT_TYPES,
    PayloadTooLargeError,
    UnknownEventTypeError,
    WebhookEndpointDisabled,
    build_envelope,
    matches,
)
from webhooks.retry_policy import should_disable_endpoint
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
    session: UnitOfWork, scheduled: Sequence[tuple[str, float | None]]
) -> None:
    """Enqueue ``(message id, delay seconds)`` deliver jobs once the transaction commits."""
    session.enqueue(*(deliver_job(message_id, delay) for message_id, delay in scheduled))


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
        # Every row of one multi-row INSERT has the same keys; leased rows fill these in.
        "locked_until": None,
        "claim_token": None,
        "created_at": now,
    }


async def _claim_events(
    session: UnitOfWork, event_id: str, now: datetime, batch: int
) -> list[Any]:
    """Mark ``event_id`` dispatched, with up to ``batch`` waiting events (oldest first),
    atomically. Fewer than ``batch`` taken besides ``event_id`` means none were left waiting.

    Under load many fan-out jobs are queued at once; the first one takes a whole batch (one
    transaction, one INSERT, one recording transaction for all of it) and the jobs of the
    events it took find nothing left to do. PostgreSQL skips rows another worker is taking.
    """
    wanted = _EV.c.id == event_id
    if batch > 1:
        waiting = (
            select(_EV.c.id).where(_EV.c.dispatched_at.is_(None),
                                   not_parked(WEBHOOK_EVENT, _EV.c.id))
            .order_by(_EV.c.id).limit(batch)
        )
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            waiting = waiting.with_for_update(skip_locked=True)
        wanted = or_(wanted, _EV.c.id.in_(waiting.scalar_subquery()))
    rows = (
        await session.execute(
            update(_EV)
            .where(wanted, _EV.c.dispatched_at.is_(None))
            .values(dispatched_at=now)
            .returning(_EV.c.id, _EV.c.type, _EV.c.platform_id, _EV.c.data, _EV.c.created_at)
        )
    ).all()
    return sorted(rows, key=lambda row: row.id)


async def waiting_events(session: UnitOfWork, event_id: str, batch: int) -> list[str]:
    """``event_id`` and up to ``batch`` - 1 other undispatched events (oldest first), except
    those parked for an operator: what a fan-out batch would take."""
    rows = await session.execute(
        select(_EV.c.id)
        .where(_EV.c.dispatched_at.is_(None), _EV.c.id != event_id,
               not_parked(WEBHOOK_EVENT, _EV.c.id))
        .order_by(_EV.c.id).limit(max(batch - 1, 0))
    )
    return [event_id, *rows.scalars().all()]


async def _candidate_endpoints(session: UnitOfWork, events: list[Any]) -> list[Any]:
    """Enabled endpoints of the operator and of the events' platforms, with what sending
    needs; :func:`_receives` then picks per event."""
    platforms = {e.platform_id for e in events if e.platform_id is not None}
    owner: sa.ColumnElement[bool] = _EP.c.platform_id.is_(None)
    if platforms:
        owner = or_(owner, _EP.c.platform_id.in_(sorted(platforms)))
    stmt = select(
        _EP.c.id, _EP.c.platform_id, _EP.c.event_types, _EP.c.created_at, _EP.c.url,
        _EP.c.secret_sealed, _EP.c.previous_secret_sealed, _EP.c.previous_secret_expires_at,
        _EP.c.failing_since,
    ).where(_EP.c.enabled.is_(True), owner,
            _EP.c.created_at <= max(e.created_at for e in events))
    return list((await session.execute(stmt.order_by(_EP.c.id))).all())


def _receives(endpoint: Any, event: Any) -> bool:
    """The operator's endpoints get everything, a platform's only its own events (never the
    operator-only types), each filtered by its subscribed types. Only endpoints that existed
    when the event happened: how late the fan-out runs must not change who receives it."""
    if endpoint.created_at > event.created_at:
        return False
    if endpoint.platform_id is not None and (
        endpoint.platform_id != event.platform_id or event.type in OPERATOR_ONLY_EVENT_TYPES
    ):
        return False
    return matches(endpoint.event_types or [], event.type)


class UndeliverableEvent(ValueError):
    """An event whose data does not fit its webhook shape (a bug in its emitter)."""


def _body(event: Any) -> str:
    try:
        return build_envelope(event.type, event.data, timestamp=event.created_at).decode()
    except (UnknownEventTypeError, PayloadTooLargeError, msgspec.ValidationError,
            TypeError, ValueError) as exc:
        # Retrying can't fix it: the fan-out parks the event for an operator (app.attention)
        # rather than dropping it or blocking the outbox behind it.
        # tests/webhooks_api/test_event_shapes.py guards every emitter.
        raise UndeliverableEvent(
            f"event {event.id} ({event.type}) does not fit its webhook shape: "
            f"{type(exc).__name__}"
        ) from None


async def _fan_out(
    session: UnitOfWork, event_id: str, now: datetime, options: WebhookOptions | None,
    batch: int, lease_limit: int = 0, queued_ahead: int = 0,
) -> tuple[list[str], list[Claimed], int]:
    """Claim events and write their messages; lease up to ``lease_limit`` of them to the
    caller and schedule deliver jobs for the others.

    Returns the ids of the messages not leased, the leases, and how many events were taken.
    """
    events = await _claim_events(session, event_id, now, batch)
    if not events:
        return [], [], 0
    endpoints = await _candidate_endpoints(session, events)
    rows: list[dict[str, Any]] = []
    claims: list[Claimed] = []
    unleased: list[str] = []
    for event in events:
        targets = [endpoint for endpoint in endpoints if _receives(endpoint, event)]
        if not targets:
            continue
        body = _body(event)
        for target in targets:
            row = _message_row(target.id, event.id, event.type, body, now)
            rows.append(row)
            if options is None or len(claims) >= lease_limit:
                unleased.append(row["id"])
                continue
            row["claim_token"] = secrets.token_hex(12)
            claims.append(Claimed(
                message_id=row["id"], endpoint_id=target.id, url=target.url,
                body=body.encode(), token=row["claim_token"], attempt_count=0,
                failing_since=target.failing_since,
                secrets=_live_secrets(target.id, target.secret_sealed,
                                      target.previous_secret_sealed,
                                      target.previous_secret_expires_at, options, now),
            ))
    if claims and options is not None:
        until = lease_until(now, options, queued_ahead + len(claims))
        for row in rows:
            if row["claim_token"] is not None:
                row["locked_until"] = until
    if rows:
        await session.execute(insert(_M), rows)
    schedule_deliveries(session, [(message_id, None) for message_id in unleased])
    return unleased, claims, len(events)


def lease_until(now: datetime, options: WebhookOptions, queued: int) -> datetime:
    """How long to lease messages that wait behind ``queued`` sends of this process.

    Sends go ``send_concurrency`` at a time, each bounded by the attempt timeout, and results
    are recorded once the caller's last send is done: the lease covers the worst case, so no
    lease runs out while its message merely waits its turn.
    """
    waves = -(-queued // options.send_concurrency)
    extra = max(waves - 1, 0) * (options.transport.total_timeout + 1)
    return now + options.claim_for + timedelta(seconds=extra)


async def fan_out_event(session: UnitOfWork, event_id: str, now: datetime) -> list[str]:
    """Turn one undispatched event into messages and schedule a deliver job for each.

    Idempotent: the event is claimed by a conditional UPDATE of ``dispatched_at``, so a second
    call (a duplicate job, the sweeper) finds nothing to do.
    """
    ids, _, _ = await _fan_out(session, event_id, now, None, 1)
    return ids


async def fan_out_and_claim(
    session: UnitOfWork, event_id: str, now: datetime, options: WebhookOptions,
    *, batch: int = 1, lease_limit: int = 1, queued_ahead: int = 0,
) -> tuple[list[Claimed], int]:
    """Like :func:`fan_out_event` for ``event_id`` and up to ``batch`` waiting events, but up
    to ``lease_limit`` messages are born leased to the caller, who sends them right after the
    commit and records them with :func:`record_many` (no deliver job, no separate claim). The
    other new messages get deliver jobs, so any worker may take them. ``queued_ahead``: sends
    already waiting in the caller's process (see :func:`lease_until`).

    Returns the leases and how many events were taken (``batch`` or more: more may wait).
    """
    _, claims, taken = await _fan_out(session, event_id, now, options, batch, lease_limit,
                                      queued_ahead)
    return claims, taken


async def create_direct_message(
    session: UnitOfWork, endpoint_id: str, event: Event, now: datetime
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


async def claim(
    session: UnitOfWork, message_id: str, now: datetime, options: WebhookOptions,
    queued_ahead: int = 0,
) -> Claimed | NotDue | None:
    """Take the lease on a due message, or say why not (``None``: nothing to send)."""
    claims = await claim_many(session, [message_id], now, options, queued_ahead)
    if claims:
        return claims[0]
    return await _why_not_claimed(session, message_id, now)


async def claim_many(
    session: UnitOfWork, message_ids: Sequence[str], now: datetime, options: WebhookOptions,
    queued_ahead: int = 0,
) -> list[Claimed]:
    """Lease those of ``message_ids`` that are pending, due and unleased (one UPDATE).

    Messages of an endpoint disabled meanwhile are failed instead of leased.
    """
    if not message_ids:
        return []
    token = secrets.token_hex(12)
    rows = (
        await session.execute(
            update(_M)
            .where(
                _M.c.id.in_(list(message_ids)),
                _M.c.status == PENDING,
                _M.c.next_attempt_at <= now + EARLY_TOLERANCE,
                or_(_M.c.locked_until.is_(None), _M.c.locked_until <= now),
            )
            .values(locked_until=lease_until(now, options, queued_ahead + len(message_ids)),
                    claim_token=token)
            .returning(_M.c.id, _M.c.endpoint_id, _M.c.body, _M.c.attempt_count)
        )
    ).all()
    if not rows:
        return []
    endpoints = {
        row.id: row
        for row in (
            await session.execute(
                select(_EP.c.id, _EP.c.enabled, _EP.c.url, _EP.c.secret_sealed,
                       _EP.c.previous_secret_sealed, _EP.c.previous_secret_expires_at,
                       _EP.c.failing_since)
                .where(_EP.c.id.in_(sorted({row.endpoint_id for row in rows})))
            )
        ).all()
    }
    claims: list[Claimed] = []
    stopped: list[str] = []
    for row in sorted(rows, key=lambda r: r.id):
        endpoint = endpoints.get(row.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            stopped.append(row.id)
            continue
        claims.append(Claimed(
            message_id=row.id,
            endpoint_id=row.endpoint_id,
            url=endpoint.url,
            body=row.body.encode(),
            token=token,
            attempt_count=row.attempt_count,
            failing_since=endpoint.failing_since,
            secrets=_live_secrets(row.endpoint_id, endpoint.secret_sealed,
                                  endpoint.previous_secret_sealed,
                                  endpoint.previous_secret_expires_at, options, now),
        ))
    if stopped:
        await _fail_pending(session, stopped, now, "Endpoint is disabled.")
    return claims


async def _why_not_claimed(session: UnitOfWork, message_id: str, now: datetime) -> NotDue | None:
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


async def record_many(
    session: UnitOfWork,
    results: Sequence[tuple[Claimed, DeliveryResult]],
    now: datetime,
    options: WebhookOptions,
) -> list[Outcome]:
    """Log attempts and move their messages on: delivered, retry later, or failed.

    One INSERT for the attempts and one batched UPDATE for the successes; failures one by one:
    a 410 disables the endpoint, and so does a failure once the endpoint has failed
    continuously for longer than the threshold. A message row changes only while our lease
    holds (``claim_token``), so a worker whose lease ran out can't overwrite another's result.
    """
    # Rows deleted meanwhile (their endpoint was removed) are skipped; the others are locked
    # against deletion (PostgreSQL FOR KEY SHARE) until the attempts referencing them are in.
    present = set((await session.execute(
        select(_M.c.id).where(_M.c.id.in_([c.message_id for c, _ in results]))
        .with_for_update(read=True, key_share=True)
    )).scalars())
    results = [(c, r) for c, r in results if c.message_id in present]
    if not results:
        return []
    await session.execute(insert(_AT), [
        {
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
        }
        for claimed, result in results
    ])
    delivered = [(c, r) for c, r in results if r.success]
    if delivered:
        # Lease-fenced like every write: a row another worker took over is left alone.
        await session.execute(
            update(_M)
            .where(_M.c.id == sa.bindparam("message_id"),
                   _M.c.claim_token == sa.bindparam("token"))
            .values(status=DELIVERED, delivered_at=now, next_attempt_at=None, last_error=None,
                    last_attempt_at=now, locked_until=None, claim_token=None,
                    attempt_count=sa.bindparam("attempts"),
                    last_status_code=sa.bindparam("status_code")),
            [{"message_id": c.message_id, "token": c.token, "attempts": c.attempt_count + 1,
              "status_code": r.status_code} for c, r in delivered],
        )
        recovered = sorted({c.endpoint_id for c, _ in delivered if c.failing_since is not None})
        if recovered:
            await session.execute(
                update(_EP).where(_EP.c.id.in_(recovered)).values(failing_since=None)
            )
    outcomes: list[Outcome] = []
    for claimed, result in results:
        if result.success:
            outcomes.append(Outcome(DELIVERED))
        else:
            outcomes.append(await _record_failure(session, claimed, result, now, options))
    return outcomes


async def _record_failure(
    session: UnitOfWork, claimed: Claimed, result: DeliveryResult, now: datetime,
    options: WebhookOptions,
) -> Outcome:
    attempt_number = claimed.attempt_count + 1
    failing_since = claimed.failing_since or now
    if claimed.failing_since is None:
        await session.execute(
            update(_EP)
            .where(_EP.c.id == claimed.endpoint_id, _EP.c.failing_since.is_(None))
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
    changes: dict[str, Any] = {
        "attempt_count": attempt_number,
        "last_attempt_at": now,
        "last_status_code": result.status_code,
        "last_error": (result.error or "Delivery failed.")[:MAX_ERROR_CHARS],
        "locked_until": None,
        "claim_token": None,
    }
    if delay is None:
        changes |= {"status": FAILED, "failed_at": now, "next_attempt_at": None}
    else:
        changes |= {"status": PENDING, "next_attempt_at": now + timedelta(seconds=delay),
                    "redriven_at": None}
    still_ours = await _update_leased(claimed, session, changes)
    if reason is not None:
        await disable_endpoint(session, claimed.endpoint_id, reason, now)
    if delay is not None and still_ours:
        schedule_deliveries(session, [(claimed.message_id, delay)])
    return Outcome(FAILED if delay is None else PENDING, delay, reason)


async def _update_leased(claimed: Claimed, session: UnitOfWork, values: dict[str, Any]) -> bool:
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
    session: UnitOfWork, message_ids: Sequence[str] | None, now: datetime, error: str,
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
    session: UnitOfWork, endpoint_id: str, reason: str, now: datetime
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
        await emit(session, data, platform_id=platform_id)
    return True


# -- sweeper -------------------------------------------------------------------------------


async def stale_events(session: UnitOfWork, now: datetime, options: WebhookOptions) -> list[str]:
    """Events still undispatched after the grace period (their job was lost), except those
    parked for an operator; the sweeper fans each out in a transaction of its own."""
    cutoff = now - options.sweep_grace
    ids = (
        await session.execute(
            select(_EV.c.id)
            .where(_EV.c.dispatched_at.is_(None), _EV.c.created_at <= cutoff,
                   not_parked(WEBHOOK_EVENT, _EV.c.id))
            .order_by(_EV.c.id)
            .limit(options.sweep_batch)
        )
    ).scalars().all()
    return list(ids)


async def redrive_due(session: UnitOfWork, now: datetime, options: WebhookOptions) -> int:
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
                not_parked(WEBHOOK_MESSAGE, _M.c.id),
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
