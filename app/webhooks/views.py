"""Table rows to wire shapes."""

from __future__ import annotations

import msgspec

from app.db.models.webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage
from app.db.types import rfc3339
from app.webhooks.schemas import AttemptView, CreatedEndpoint, DeliveryView, EndpointView


def endpoint_view(endpoint: WebhookEndpoint) -> EndpointView:
    return EndpointView(
        id=endpoint.id,
        platform_id=endpoint.platform_id,
        url=endpoint.url,
        description=endpoint.description,
        event_types=list(endpoint.event_types),
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=rfc3339(endpoint.disabled_at),
        failing_since=rfc3339(endpoint.failing_since),
        secret_rotated_at=rfc3339(endpoint.secret_rotated_at),
        previous_secret_expires_at=rfc3339(endpoint.previous_secret_expires_at),
        created_at=rfc3339(endpoint.created_at) or "",
        updated_at=rfc3339(endpoint.updated_at) or "",
    )


def created_endpoint_view(endpoint: WebhookEndpoint, secret: str) -> CreatedEndpoint:
    """The endpoint plus its secret: the only response that ever carries it."""
    return CreatedEndpoint(**msgspec.structs.asdict(endpoint_view(endpoint)), secret=secret)


def attempt_view(attempt: WebhookAttempt) -> AttemptView:
    return AttemptView(
        id=attempt.id,
        success=attempt.success,
        status_code=attempt.status_code,
        latency_ms=attempt.latency_ms,
        response_body=attempt.response_body,
        error=attempt.error,
        error_kind=attempt.error_kind,
        created_at=rfc3339(attempt.created_at) or "",
    )


def delivery_view(message: WebhookMessage, attempts: list[WebhookAttempt]) -> DeliveryView:
    return DeliveryView(
        id=message.id,
        endpoint_id=message.endpoint_id,
        event_id=message.event_id,
        event_type=message.event_type,
        status=message.status,
        attempt_count=message.attempt_count,
        next_attempt_at=rfc3339(message.next_attempt_at),
        last_status_code=message.last_status_code,
        last_error=message.last_error,
        delivered_at=rfc3339(message.delivered_at),
        failed_at=rfc3339(message.failed_at),
        created_at=rfc3339(message.created_at) or "",
        attempts=[attempt_view(a) for a in attempts],
    )
