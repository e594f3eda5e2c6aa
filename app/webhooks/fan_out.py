"""From outbox events to messages: one per matching endpoint, unique on event x endpoint.

Events are claimed by setting ``events.dispatched_at`` where it is NULL (a conditional UPDATE,
so a duplicate job or the sweeper finds nothing left), then their messages are written in one
INSERT. The ``fan_out`` flow's messages are born leased to it and sent at once; the others get
deliver jobs, sent once the transaction commits. Under load one job takes a batch of waiting
events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import insert, or_, select, update

from app.attention.filters import not_parked
from app.db.models.attention import WEBHOOK_EVENT
from app.db.models.events import Event
from app.db.models.webhooks import PENDING
from app.db.uow import UnitOfWork
from app.ids import new_id
from app.webhooks.leases import Claimed, lease_until, live_secrets, new_token
from app.webhooks.options import WebhookOptions
from app.webhooks.tables import ENDPOINTS as _EP
from app.webhooks.tables import EVENTS as _EV
from app.webhooks.tables import MESSAGES as _M
from app.webhooks.tasks import schedule_deliveries
from webhooks.events import (
    OPERATOR_ONLY_EVENT_TYPES,
    PayloadTooLargeError,
    UnknownEventTypeError,
    build_envelope,
    matches,
)


class UndeliverableEvent(ValueError):
    """An event whose data does not fit its webhook shape (a bug in its emitter)."""


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


def _body(event: Any) -> str:
    try:
        return build_envelope(event.type, event.data, timestamp=event.created_at).decode()
    except (UnknownEventTypeError, PayloadTooLargeError, msgspec.ValidationError,
            TypeError, ValueError) as exc:
        # Retrying can't fix it: the fan-out parks the event for an operator (app.attention)
        # rather than dropping it or blocking the outbox behind it.
        # tests/webhooks/test_event_shapes.py guards every emitter.
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
            row["claim_token"] = new_token()
            claims.append(Claimed(
                message_id=row["id"], endpoint_id=target.id, url=target.url,
                body=body.encode(), token=row["claim_token"], attempt_count=0,
                failing_since=target.failing_since,
                secrets=live_secrets(target.id, target.secret_sealed,
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
    commit and records them with :func:`app.webhooks.attempts.record_many` (no deliver job, no
    separate claim). The other new messages get deliver jobs, so any worker may take them.
    ``queued_ahead``: sends already waiting in the caller's process (see
    :func:`app.webhooks.leases.lease_until`).

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
