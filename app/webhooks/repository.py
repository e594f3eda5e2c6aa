"""The SQL of endpoint management: endpoints, their messages and attempts (ORM rows).

The delivery path speaks Core SQL of its own (:mod:`app.webhooks.fan_out`, ``leases``,
``attempts``, ``sweeper``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from app.db.models.webhooks import FAILED, WebhookAttempt, WebhookEndpoint, WebhookMessage
from app.db.paging import PageParams
from app.db.queries import get_or_404, page, where_equal
from app.db.uow import UnitOfWork


async def count_owned(session: UnitOfWork, platform_id: str | None) -> int:
    """How many endpoints ``platform_id`` has (the operator's when None)."""
    owned = sa_select(func.count()).select_from(WebhookEndpoint)
    owned = owned.where(
        col(WebhookEndpoint.platform_id).is_(None) if platform_id is None
        else col(WebhookEndpoint.platform_id) == platform_id
    )
    count: int = (await session.execute(owned)).scalar_one()
    return count


async def find_endpoint(session: UnitOfWork, endpoint_id: str) -> WebhookEndpoint | None:
    return await session.get(WebhookEndpoint, endpoint_id)


async def search_endpoints(
    session: UnitOfWork, params: PageParams, *, platform_id: str | None,
    operator_only: bool, enabled: bool | None,
) -> tuple[list[WebhookEndpoint], str | None]:
    stmt = select(WebhookEndpoint)
    if operator_only:
        stmt = stmt.where(col(WebhookEndpoint.platform_id).is_(None))
    else:
        stmt = where_equal(stmt, (col(WebhookEndpoint.platform_id), platform_id))
    stmt = where_equal(stmt, (col(WebhookEndpoint.enabled), enabled))
    return await page(session, stmt, col(WebhookEndpoint.id), params)


async def delete_endpoint(session: UnitOfWork, endpoint: WebhookEndpoint) -> None:
    """The endpoint with its messages and attempts."""
    await session.execute(
        delete(WebhookAttempt).where(col(WebhookAttempt.endpoint_id) == endpoint.id)
    )
    await session.execute(
        delete(WebhookMessage).where(col(WebhookMessage.endpoint_id) == endpoint.id)
    )
    await session.delete(endpoint)
    await session.flush()


async def get_message(session: UnitOfWork, message_id: str) -> WebhookMessage:
    return await get_or_404(session, WebhookMessage, message_id, "Webhook message")


async def messages(
    session: UnitOfWork, endpoint_id: str, params: PageParams, *, status: str | None,
    event_type: str | None,
) -> tuple[list[WebhookMessage], str | None]:
    """The endpoint's messages, newest first."""
    stmt = where_equal(
        select(WebhookMessage).where(col(WebhookMessage.endpoint_id) == endpoint_id),
        (col(WebhookMessage.status), status),
        (col(WebhookMessage.event_type), event_type),
    )
    return await page(session, stmt, col(WebhookMessage.id), params)


async def attempts_of(
    session: UnitOfWork, message_ids: list[str]
) -> dict[str, list[WebhookAttempt]]:
    """Each message's attempts, oldest first."""
    grouped: dict[str, list[WebhookAttempt]] = {mid: [] for mid in message_ids}
    if not message_ids:
        return grouped
    attempts = (
        await session.exec(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.message_id).in_(message_ids))
            .order_by(col(WebhookAttempt.id))
        )
    ).all()
    for attempt in attempts:
        grouped[attempt.message_id].append(attempt)
    return grouped


async def failed_since(
    session: UnitOfWork, endpoint_id: str, since: datetime, limit: int
) -> list[WebhookMessage]:
    """Up to ``limit`` of the endpoint's failed messages created since ``since``, oldest
    first."""
    return list((
        await session.exec(
            select(WebhookMessage)
            .where(col(WebhookMessage.endpoint_id) == endpoint_id,
                   col(WebhookMessage.status) == FAILED,
                   col(WebhookMessage.created_at) >= since)
            .order_by(col(WebhookMessage.id))
            .limit(limit)
        )
    ).all())
