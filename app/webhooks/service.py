"""Webhook endpoints for platforms and the operator: CRUD, secrets, test sends, deliveries,
replay. Services flush but never commit; the request owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from app.db.models.webhooks import (
    FAILED,
    PENDING,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)
from app.db.paging import PageParams, apply, split
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.events.service import emit
from app.ids import new_id
from app.logs import context as log_context
from app.webhooks import delivery
from app.webhooks.options import WebhookOptions
from webhooks.events import EventType, UnknownEventTypeError, WebhookTest, validate_event_types
from webhooks.signing import generate_secret
from webhooks.ssrf import UnsafeURLError

# Endpoint owners: a platform id, or the operator.
OPERATOR = None

MESSAGE_STATUSES = frozenset({PENDING, "delivered", FAILED})


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


@dataclass(frozen=True, slots=True)
class Replay:
    count: int
    more: bool
    first_at: datetime | None
    last_at: datetime | None


def endpoint_snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """The audited view of an endpoint (never a secret)."""
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "eventTypes": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabledReason": endpoint.disabled_reason,
    }


async def _checked_url(url: str, options: WebhookOptions) -> str:
    """SSRF guard at creation and on change; the connect-time guard repeats it per delivery."""
    url = url.strip()
    try:
        await options.policy.check_url(url)
    except UnsafeURLError as exc:
        raise ValidationFailed(exc.message) from None
    return url


def _checked_types(types: list[str], *, operator: bool) -> list[str]:
    try:
        return validate_event_types(types, operator=operator)
    except UnknownEventTypeError as exc:
        allowed = sorted(t.value for t in EventType if operator or t is not
                         EventType.WEBHOOK_ENDPOINT_DISABLED)
        raise ValidationFailed(str(exc), details={"allowed": allowed}) from None


async def create(
    session: UnitOfWork,
    options: WebhookOptions,
    platform_id: str | None,
    *,
    url: str,
    description: str | None,
    event_types: list[str],
    enabled: bool = True,
) -> CreatedEndpoint:
    """A new endpoint with a fresh ``whsec_`` secret (returned here, never again)."""
    checked_url = await _checked_url(url, options)
    types = _checked_types(event_types, operator=platform_id is OPERATOR)
    owned = sa_select(func.count()).select_from(WebhookEndpoint)
    owned = owned.where(
        col(WebhookEndpoint.platform_id).is_(None) if platform_id is None
        else col(WebhookEndpoint.platform_id) == platform_id
    )
    if (await session.execute(owned)).scalar_one() >= options.max_endpoints:
        raise Conflict(f"At most {options.max_endpoints} webhook endpoints are allowed.")
    now = utcnow()
    endpoint_id = new_id("whe")
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        platform_id=platform_id,
        url=checked_url,
        description=description,
        event_types=types,
        enabled=enabled,
        disabled_reason=None if enabled else "manual",
        disabled_at=None if enabled else now,
        secret_sealed=options.box.seal(secret, context=endpoint_id),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    log_context.bind(endpoint_id=endpoint_id)
    return CreatedEndpoint(endpoint=endpoint, secret=secret)


async def get(session: UnitOfWork, endpoint_id: str, platform_id: str | None = None,
              *, any_owner: bool = False) -> WebhookEndpoint:
    """An endpoint of ``platform_id`` (the operator's when None), or of anyone for admins.

    Another owner's endpoint is NOT_FOUND, exactly like a missing one.
    """
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or (not any_owner and endpoint.platform_id != platform_id):
        raise NotFound("Webhook endpoint not found.")
    log_context.bind(endpoint_id=endpoint.id)
    return endpoint


async def search(
    session: UnitOfWork,
    params: PageParams,
    *,
    platform_id: str | None = None,
    operator_only: bool = False,
    enabled: bool | None = None,
) -> tuple[list[WebhookEndpoint], str | None]:
    stmt = select(WebhookEndpoint)
    if operator_only:
        stmt = stmt.where(col(WebhookEndpoint.platform_id).is_(None))
    elif platform_id is not None:
        stmt = stmt.where(col(WebhookEndpoint.platform_id) == platform_id)
    if enabled is not None:
        stmt = stmt.where(col(WebhookEndpoint.enabled).is_(enabled))
    rows = (await session.exec(apply(stmt, col(WebhookEndpoint.id), params))).all()  # type: ignore[call-overload]
    return split(rows, params, lambda e: e.id)


async def update_endpoint(
    session: UnitOfWork, options: WebhookOptions, endpoint: WebhookEndpoint,
    changes: dict[str, Any],
) -> WebhookEndpoint:
    """Partial update; ``changes`` uses model field names (url, description, event_types,
    enabled). Disabling fails the pending messages (replay them after re-enabling);
    re-enabling clears the failure streak but sends nothing by itself."""
    now = utcnow()
    if "url" in changes:
        endpoint.url = await _checked_url(changes["url"], options)
    if "description" in changes:
        endpoint.description = changes["description"]
    if "event_types" in changes:
        endpoint.event_types = _checked_types(
            changes["event_types"], operator=endpoint.platform_id is OPERATOR
        )
    enable = changes.get("enabled")
    if enable is True and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.disabled_reason = None
        endpoint.disabled_at = None
        endpoint.failing_since = None
    endpoint.updated_at = now
    session.add(endpoint)
    await session.flush()
    if enable is False and endpoint.enabled:
        await delivery.disable_endpoint(session, endpoint.id, "manual", now)
        await session.refresh(endpoint)
    return endpoint


async def delete_endpoint(session: UnitOfWork, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint with its messages and attempts; in-flight jobs become no-ops."""
    await session.execute(
        delete(WebhookAttempt).where(col(WebhookAttempt.endpoint_id) == endpoint.id)
    )
    await session.execute(
        delete(WebhookMessage).where(col(WebhookMessage.endpoint_id) == endpoint.id)
    )
    await session.delete(endpoint)
    await session.flush()


async def rotate_secret(
    session: UnitOfWork, options: WebhookOptions, endpoint: WebhookEndpoint
) -> tuple[str, datetime | None]:
    """A new secret; the current one keeps signing beside it for the overlap (24 h).

    Rotating again during an overlap drops the oldest secret at once: at most two sign.
    Returns the new secret and when the previous one stops signing.
    """
    now = utcnow()
    secret = generate_secret()
    until = now + options.secret_overlap if options.secret_overlap > timedelta(0) else None
    endpoint.previous_secret_sealed = endpoint.secret_sealed if until else None
    endpoint.previous_secret_expires_at = until
    endpoint.secret_sealed = options.box.seal(secret, context=endpoint.id)
    endpoint.secret_rotated_at = now
    endpoint.updated_at = now
    session.add(endpoint)
    await session.flush()
    return secret, until


async def send_test(session: UnitOfWork, endpoint: WebhookEndpoint) -> WebhookMessage:
    """A ``webhook.test`` event for this endpoint only (whatever types it subscribed to)."""
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled; enable it before sending a test.")
    now = utcnow()
    data = WebhookTest(endpoint_id=endpoint.id, sent_at=now)
    event = await emit(session, data, platform_id=endpoint.platform_id, fan_out=False)
    message_id = await delivery.create_direct_message(session, endpoint.id, event, now)
    message = await session.get(WebhookMessage, message_id)
    assert message is not None
    return message


async def deliveries(
    session: UnitOfWork,
    endpoint_id: str,
    params: PageParams,
    *,
    status: str | None = None,
    event_type: str | None = None,
) -> tuple[list[WebhookMessage], dict[str, list[WebhookAttempt]], str | None]:
    """The endpoint's messages, newest first, each with its attempts (oldest first)."""
    if status is not None and status not in MESSAGE_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(sorted(MESSAGE_STATUSES))}.")
    stmt = select(WebhookMessage).where(col(WebhookMessage.endpoint_id) == endpoint_id)
    if status is not None:
        stmt = stmt.where(col(WebhookMessage.status) == status)
    if event_type is not None:
        stmt = stmt.where(col(WebhookMessage.event_type) == event_type)
    rows = (await session.exec(apply(stmt, col(WebhookMessage.id), params))).all()  # type: ignore[call-overload]
    messages, next_cursor = split(rows, params, lambda m: m.id)
    return messages, await attempts_of(session, [m.id for m in messages]), next_cursor


async def attempts_of(
    session: UnitOfWork, message_ids: list[str]
) -> dict[str, list[WebhookAttempt]]:
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


async def get_message(session: UnitOfWork, message_id: str) -> WebhookMessage:
    message = await session.get(WebhookMessage, message_id)
    if message is None:
        raise NotFound("Webhook message not found.")
    log_context.bind(message_id=message.id, endpoint_id=message.endpoint_id)
    return message


def _require_enabled(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled; enable it before replaying messages.")


async def replay_message(session: UnitOfWork, message: WebhookMessage) -> WebhookMessage:
    """Send a delivered or failed message again, same ``webhook-id`` and body, new round."""
    endpoint = await get(session, message.endpoint_id, any_owner=True)
    _require_enabled(endpoint)
    if message.status == PENDING:
        raise Conflict("The message is already scheduled for delivery.")
    now = utcnow()
    _restart(message, now)
    session.add(message)
    await session.flush()
    delivery.schedule_deliveries(session, [(message.id, None)])
    return message


def _restart(message: WebhookMessage, at: datetime) -> None:
    message.status = PENDING
    message.attempt_count = 0
    message.next_attempt_at = at
    message.failed_at = None
    message.locked_until = None
    message.claim_token = None
    message.redriven_at = None


async def replay_failed(
    session: UnitOfWork, options: WebhookOptions, endpoint: WebhookEndpoint, since: datetime
) -> Replay:
    """Re-send the endpoint's failed messages created since ``since``, oldest first.

    Spread at the configured rate per endpoint, behind any replay still running, so an
    endpoint that was down for a day isn't flooded. At most ``replay_max`` per call; ``more``
    says whether to call again.
    """
    _require_enabled(endpoint)
    now = utcnow()
    if since > now:
        raise ValidationFailed("since must not be in the future.")
    messages = (
        await session.exec(
            select(WebhookMessage)
            .where(col(WebhookMessage.endpoint_id) == endpoint.id,
                   col(WebhookMessage.status) == FAILED,
                   col(WebhookMessage.created_at) >= since)
            .order_by(col(WebhookMessage.id))
            .limit(options.replay_max + 1)
        )
    ).all()
    more = len(messages) > options.replay_max
    messages = list(messages[: options.replay_max])
    if not messages:
        return Replay(count=0, more=False, first_at=None, last_at=None)
    start = max(now, endpoint.replay_until or now)
    spacing = timedelta(seconds=options.replay_spacing)
    scheduled: list[tuple[str, float | None]] = []
    slot = start
    for index, message in enumerate(messages):
        slot = start + spacing * index
        _restart(message, slot)
        session.add(message)
        scheduled.append((message.id, (slot - now).total_seconds()))
    endpoint.replay_until = slot + spacing
    session.add(endpoint)
    await session.flush()
    delivery.schedule_deliveries(session, scheduled)
    return Replay(count=len(messages), more=more, first_at=start, last_at=slot)


__all__ = [
    "OPERATOR",
    "CreatedEndpoint",
    "Replay",
    "create",
    "delete_endpoint",
    "deliveries",
    "endpoint_snapshot",
    "get",
    "get_message",
    "replay_failed",
    "replay_message",
    "rotate_secret",
    "search",
    "send_test",
    "update_endpoint",
]
