"""Recording what a send did: one attempt row per send, and the message moved on (delivered,
retried later on the schedule, or failed), all fenced by the lease.

A 410 disables the endpoint, and so does a failure once the endpoint has failed continuously
for longer than ``PASSGATE_WEBHOOK_DISABLE_AFTER_SECONDS``; any success ends its failure streak.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import insert, select, update

from app.db.models.webhooks import DELIVERED, FAILED, PENDING
from app.db.uow import UnitOfWork
from app.ids import new_id
from app.webhooks.disabling import disable_endpoint
from app.webhooks.leases import Claimed
from app.webhooks.options import WebhookOptions
from app.webhooks.tables import ATTEMPTS as _AT
from app.webhooks.tables import ENDPOINTS as _EP
from app.webhooks.tables import MESSAGES as _M
from app.webhooks.tasks import schedule_deliveries
from webhooks.retry_policy import should_disable_endpoint
from webhooks.transport import DeliveryResult

log = logging.getLogger("passgate.webhooks")

MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    retry_in: float | None = None
    disabled_reason: str | None = None


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
