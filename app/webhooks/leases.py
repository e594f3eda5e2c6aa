"""Who sends a message: a lease (``locked_until`` + ``claim_token``) taken by one conditional
UPDATE, so concurrent workers (and the sweeper) can race for a row and exactly one wins.

A retry, replay or test claims a due, pending, unleased message here; the fan-out's messages are
born leased (:mod:`app.webhooks.fan_out`). Results are written only while the lease is still
ours (:mod:`app.webhooks.attempts`), and a killed worker's lease simply runs out.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from app.db.models.webhooks import PENDING
from app.db.uow import UnitOfWork
from app.webhooks.disabling import fail_pending
from app.webhooks.options import WebhookOptions
from app.webhooks.tables import ENDPOINTS as _EP
from app.webhooks.tables import MESSAGES as _M

# A deliver job may arrive a little before its row is due (clocks, millisecond rounding).
EARLY_TOLERANCE = timedelta(milliseconds=50)


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


def new_token() -> str:
    return secrets.token_hex(12)


def lease_until(now: datetime, options: WebhookOptions, queued: int) -> datetime:
    """How long to lease messages that wait behind ``queued`` sends of this process.

    Sends go ``send_concurrency`` at a time, each bounded by the attempt timeout, and results
    are recorded once the caller's last send is done: the lease covers the worst case, so no
    lease runs out while its message merely waits its turn.
    """
    waves = -(-queued // options.send_concurrency)
    extra = max(waves - 1, 0) * (options.transport.total_timeout + 1)
    return now + options.claim_for + timedelta(seconds=extra)


def live_secrets(
    endpoint_id: str, sealed: str, previous_sealed: str | None,
    previous_expires_at: datetime | None, options: WebhookOptions, now: datetime,
) -> list[str]:
    """The endpoint's signing secrets, newest first: the previous one only while it overlaps."""
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
    token = new_token()
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
            secrets=live_secrets(row.endpoint_id, endpoint.secret_sealed,
                                 endpoint.previous_secret_sealed,
                                 endpoint.previous_secret_expires_at, options, now),
        ))
    if stopped:
        await fail_pending(session, stopped, now, "Endpoint is disabled.")
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
