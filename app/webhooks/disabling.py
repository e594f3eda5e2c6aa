"""Stopping delivery to an endpoint: it is disabled, its pending messages fail (replayable once
it is enabled again), and an automatic disable is announced to the operator's endpoints."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update

from app.db.models.webhooks import FAILED, PENDING
from app.db.uow import UnitOfWork
from app.events.service import emit
from app.webhooks.tables import ENDPOINTS as _EP
from app.webhooks.tables import MESSAGES as _M
from webhooks.events import WebhookEndpointDisabled

log = logging.getLogger("passgate.webhooks")


async def fail_pending(
    session: UnitOfWork, message_ids: Sequence[str] | None, now: datetime, error: str,
    endpoint_id: str | None = None,
) -> None:
    """Fail the pending ones of ``message_ids`` (all of them when None) or of ``endpoint_id``."""
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
    await fail_pending(session, None, now, f"Endpoint disabled ({reason}).", endpoint_id)
    if reason != "manual":
        # The id only: webhook URLs often carry tokens in their query string.
        log.warning("webhook endpoint %s disabled (%s)", endpoint_id, reason)
        data = WebhookEndpointDisabled(
            endpoint_id=endpoint_id, platform_id=platform_id, url=url, reason=reason,
            failing_since=failing_since if reason == "failing" else None, disabled_at=now,
        )
        await emit(session, data, platform_id=platform_id)
    return True
