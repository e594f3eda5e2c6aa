"""Webhook endpoints for platforms and the operator: create, change, pause, delete, rotate the
secret, send a test, read the delivery log, replay. Every mutation is written to the audit log;
secrets appear in exactly two results, endpoint creation and secret rotation.

Everything here runs in the caller's one unit of work (flush, never commit). This area's flows
that need several transactions (fan-out, deliver, sweep: claim -> send -> record) are named
and run in :mod:`app.webhooks.flows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.audit.service import Actor, record
from app.auth.principal import Principal
from app.db.models.webhooks import FAILED, PENDING, WebhookEndpoint, WebhookMessage
from app.db.paging import Page, PageParams, page_params
from app.db.types import rfc3339, utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.events.service import emit
from app.ids import new_id
from app.logs import context as log_context
from app.webhooks import repository
from app.webhooks.disabling import disable_endpoint
from app.webhooks.fan_out import create_direct_message
from app.webhooks.options import WebhookOptions
from app.webhooks.schemas import (
    CreatedEndpoint,
    CreateEndpointBody,
    DeliveryView,
    EndpointView,
    ReplayBody,
    ReplayView,
    RotatedSecret,
    TestSent,
    UpdateEndpointBody,
    created_endpoint_view,
    delivery_view,
    endpoint_view,
)
from app.webhooks.tasks import schedule_deliveries
from webhooks.events import EventType, UnknownEventTypeError, WebhookTest, validate_event_types
from webhooks.signing import generate_secret
from webhooks.ssrf import UnsafeURLError

MESSAGE_STATUSES = frozenset({PENDING, "delivered", FAILED})


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose endpoints a caller manages: a platform its own; the operator (``platform_id``
    None) every endpoint, and the endpoints it creates are the operator's."""

    platform_id: str | None

    @classmethod
    def platform(cls, master: Principal) -> Owner:
        # A master key always belongs to a platform; "" can match no endpoint.
        return cls(master.platform_id or "")

    @property
    def is_operator(self) -> bool:
        return self.platform_id is None


OPERATOR = Owner(None)


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


async def endpoint_of(session: UnitOfWork, owner: Owner, endpoint_id: str) -> WebhookEndpoint:
    """An endpoint ``owner`` manages; another owner's endpoint is NOT_FOUND, exactly like a
    missing one."""
    endpoint = await repository.find_endpoint(session, endpoint_id)
    if endpoint is None or (not owner.is_operator and endpoint.platform_id != owner.platform_id):
        raise NotFound("Webhook endpoint not found.")
    log_context.bind(endpoint_id=endpoint.id)
    return endpoint


async def create_endpoint(
    session: UnitOfWork, options: WebhookOptions, actor: Actor, owner: Owner,
    data: CreateEndpointBody,
) -> CreatedEndpoint:
    """A new endpoint of ``owner`` with a fresh ``whsec_`` secret (in this result, never
    again). The URL must reach a public address (SSRF guard)."""
    checked_url = await _checked_url(data.url, options)
    types = _checked_types(list(data.event_types), operator=owner.is_operator)
    if await repository.count_owned(session, owner.platform_id) >= options.max_endpoints:
        raise Conflict(f"At most {options.max_endpoints} webhook endpoints are allowed.")
    now = utcnow()
    endpoint_id = new_id("whe")
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        platform_id=owner.platform_id,
        url=checked_url,
        description=data.description,
        event_types=types,
        enabled=data.enabled,
        disabled_reason=None if data.enabled else "manual",
        disabled_at=None if data.enabled else now,
        secret_sealed=options.box.seal(secret, context=endpoint_id),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    log_context.bind(endpoint_id=endpoint_id)
    await record(session, actor, "webhook_endpoint.create", "webhook_endpoint", endpoint.id,
                 after=endpoint_snapshot(endpoint))
    return created_endpoint_view(endpoint, secret)


async def list_endpoints(
    session: UnitOfWork, params: PageParams, *, platform_id: str | None = None,
    operator_only: bool = False, enabled: bool | None = None,
) -> Page:
    """Endpoints newest first: of one platform, the operator's only, or every one."""
    rows, next_cursor = await repository.search_endpoints(
        session, params, platform_id=platform_id, operator_only=operator_only, enabled=enabled
    )
    return Page(data=[endpoint_view(e) for e in rows], next_cursor=next_cursor)


async def get_endpoint(session: UnitOfWork, owner: Owner, endpoint_id: str) -> EndpointView:
    """One endpoint ``owner`` manages."""
    return endpoint_view(await endpoint_of(session, owner, endpoint_id))


async def update_endpoint(
    session: UnitOfWork, options: WebhookOptions, actor: Actor, owner: Owner, endpoint_id: str,
    data: UpdateEndpointBody,
) -> EndpointView:
    """Partial update of URL, description, event types. Disabling fails the pending messages
    (replay them after re-enabling); re-enabling clears the failure streak but sends nothing
    by itself."""
    endpoint = await endpoint_of(session, owner, endpoint_id)
    before = endpoint_snapshot(endpoint)
    changes: dict[str, Any] = data.changes()
    now = utcnow()
    if "url" in changes:
        endpoint.url = await _checked_url(changes["url"], options)
    if "description" in changes:
        endpoint.description = changes["description"]
    if "event_types" in changes:
        endpoint.event_types = _checked_types(
            changes["event_types"], operator=endpoint.platform_id is None
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
        await disable_endpoint(session, endpoint.id, "manual", now)
        await session.refresh(endpoint)
    await record(session, actor, "webhook_endpoint.update", "webhook_endpoint", endpoint.id,
                 before=before, after=endpoint_snapshot(endpoint))
    return endpoint_view(endpoint)


async def delete_endpoint(
    session: UnitOfWork, actor: Actor, owner: Owner, endpoint_id: str
) -> EndpointView:
    """Remove the endpoint with its messages and attempts; in-flight jobs become no-ops."""
    endpoint = await endpoint_of(session, owner, endpoint_id)
    view = endpoint_view(endpoint)
    before = endpoint_snapshot(endpoint)
    await repository.delete_endpoint(session, endpoint)
    await record(session, actor, "webhook_endpoint.delete", "webhook_endpoint", endpoint.id,
                 before=before)
    return view


async def rotate_secret(
    session: UnitOfWork, options: WebhookOptions, actor: Actor, owner: Owner, endpoint_id: str
) -> RotatedSecret:
    """A new secret (in this result only); the current one keeps signing beside it for the
    overlap (24 h). Rotating again during an overlap drops the oldest secret at once: at most
    two sign."""
    endpoint = await endpoint_of(session, owner, endpoint_id)
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
    await record(session, actor, "webhook_endpoint.rotate_secret", "webhook_endpoint",
                 endpoint.id, after={"previousSecretExpiresAt": rfc3339(until)})
    return RotatedSecret(id=endpoint.id, secret=secret, previous_secret_expires_at=rfc3339(until))


async def send_test(
    session: UnitOfWork, actor: Actor, owner: Owner, endpoint_id: str
) -> TestSent:
    """A ``webhook.test`` event for this endpoint only (whatever types it subscribed to)."""
    endpoint = await endpoint_of(session, owner, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled; enable it before sending a test.")
    now = utcnow()
    data = WebhookTest(endpoint_id=endpoint.id, sent_at=now)
    event = await emit(session, data, platform_id=endpoint.platform_id, fan_out=False)
    message_id = await create_direct_message(session, endpoint.id, event, now)
    message = await session.get(WebhookMessage, message_id)
    assert message is not None
    await record(session, actor, "webhook_endpoint.test", "webhook_endpoint", endpoint.id,
                 after={"messageId": message.id})
    return TestSent(message_id=message.id, event_id=message.event_id, endpoint_id=endpoint.id,
                    status=message.status)


async def list_deliveries(
    session: UnitOfWork, owner: Owner, endpoint_id: str, limit: int | None, cursor: str | None,
    *, status: str | None = None, event_type: str | None = None,
) -> Page:
    """The endpoint's messages, newest first, each with its attempts (oldest first)."""
    endpoint = await endpoint_of(session, owner, endpoint_id)
    params = page_params(limit, cursor)
    if status is not None and status not in MESSAGE_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(sorted(MESSAGE_STATUSES))}.")
    messages, next_cursor = await repository.messages(
        session, endpoint.id, params, status=status, event_type=event_type
    )
    attempts = await repository.attempts_of(session, [m.id for m in messages])
    return Page(data=[delivery_view(m, attempts[m.id]) for m in messages],
                next_cursor=next_cursor)


async def _message(session: UnitOfWork, message_id: str) -> WebhookMessage:
    message = await repository.get_message(session, message_id)
    log_context.bind(message_id=message.id, endpoint_id=message.endpoint_id)
    return message


async def _delivery(session: UnitOfWork, message: WebhookMessage) -> DeliveryView:
    attempts = await repository.attempts_of(session, [message.id])
    return delivery_view(message, attempts[message.id])


async def get_message(session: UnitOfWork, message_id: str) -> DeliveryView:
    """Any message with its attempts (the operator's view)."""
    return await _delivery(session, await _message(session, message_id))


def _require_enabled(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled; enable it before replaying messages.")


def _restart(message: WebhookMessage, at: datetime) -> None:
    message.status = PENDING
    message.attempt_count = 0
    message.next_attempt_at = at
    message.failed_at = None
    message.locked_until = None
    message.claim_token = None
    message.redriven_at = None


async def replay_message(session: UnitOfWork, actor: Actor, message_id: str) -> DeliveryView:
    """Send a delivered or failed message again, same ``webhook-id`` and body, new round."""
    message = await _message(session, message_id)
    before = {"status": message.status}
    _require_enabled(await endpoint_of(session, OPERATOR, message.endpoint_id))
    if message.status == PENDING:
        raise Conflict("The message is already scheduled for delivery.")
    _restart(message, utcnow())
    session.add(message)
    await session.flush()
    schedule_deliveries(session, [(message.id, None)])
    await record(session, actor, "webhook_message.replay", "webhook_message", message.id,
                 before=before, after={"status": message.status})
    return await _delivery(session, message)


async def replay_failed(
    session: UnitOfWork, options: WebhookOptions, actor: Actor, owner: Owner, endpoint_id: str,
    data: ReplayBody,
) -> ReplayView:
    """Re-send the endpoint's failed messages created since ``data.since``, oldest first.

    Spread at the configured rate per endpoint, behind any replay still running, so an
    endpoint that was down for a day isn't flooded. At most ``replay_max`` per call; ``more``
    says whether to call again.
    """
    endpoint = await endpoint_of(session, owner, endpoint_id)
    _require_enabled(endpoint)
    now = utcnow()
    if data.since > now:
        raise ValidationFailed("since must not be in the future.")
    found = await repository.failed_since(session, endpoint.id, data.since,
                                          options.replay_max + 1)
    more = len(found) > options.replay_max
    messages = found[: options.replay_max]
    start: datetime | None = None
    slot: datetime | None = None
    if messages:
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
        schedule_deliveries(session, scheduled)
    else:
        more = False
    await record(session, actor, "webhook_endpoint.replay", "webhook_endpoint", endpoint.id,
                 after={"since": rfc3339(data.since), "replayed": len(messages)})
    return ReplayView(
        endpoint_id=endpoint.id, replayed=len(messages), more=more,
        rate_per_second=round(1 / options.replay_spacing, 3),
        first_attempt_at=rfc3339(start), last_attempt_at=rfc3339(slot),
    )


__all__ = [
    "OPERATOR",
    "Owner",
    "create_endpoint",
    "delete_endpoint",
    "endpoint_of",
    "endpoint_snapshot",
    "get_endpoint",
    "get_message",
    "list_deliveries",
    "list_endpoints",
    "replay_failed",
    "replay_message",
    "rotate_secret",
    "send_test",
    "update_endpoint",
]
