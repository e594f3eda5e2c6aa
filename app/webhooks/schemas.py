"""Wire shapes of the webhook endpoint and delivery routes (camelCase), and the views of the
rows they show."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from app.db.models.webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage
from app.db.types import rfc3339
from app.http.schemas import Description, TimedBody

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
EventTypes = Annotated[list[str], msgspec.Meta(max_length=50)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]

SECRET_WARNING = "Save this signing secret now. It will not be shown again."  # noqa: S105 - a notice, not a secret


class CreateEndpointBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    url: Url
    description: Description | None = None
    # Empty: every event type.
    event_types: EventTypes = msgspec.field(default_factory=list)
    enabled: bool = True


class UpdateEndpointBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    url: Url | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    event_types: EventTypes | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET

    def changes(self) -> dict[str, object]:
        fields = {
            "url": self.url,
            "description": self.description,
            "event_types": self.event_types,
            "enabled": self.enabled,
        }
        return {k: v for k, v in fields.items() if v is not msgspec.UNSET}


class ReplayBody(TimedBody, forbid_unknown_fields=True):
    """Replay the endpoint's failed messages created at or after ``since`` (RFC 3339)."""

    since: AwareDatetime


class EndpointView(msgspec.Struct, rename="camel"):
    id: str
    platform_id: str | None
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: str | None
    failing_since: str | None
    secret_rotated_at: str | None
    previous_secret_expires_at: str | None
    created_at: str
    updated_at: str


class CreatedEndpoint(EndpointView):
    secret: str
    warning: str = SECRET_WARNING


class RotatedSecret(msgspec.Struct, rename="camel"):
    id: str
    secret: str
    previous_secret_expires_at: str | None
    warning: str = SECRET_WARNING


class AttemptView(msgspec.Struct, rename="camel"):
    id: str
    success: bool
    status_code: int | None
    latency_ms: int
    response_body: str
    error: str | None
    error_kind: str | None
    created_at: str


class DeliveryView(msgspec.Struct, rename="camel"):
    """A message (its id is the ``webhook-id`` header) with every attempt, oldest first."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: str | None
    failed_at: str | None
    created_at: str
    attempts: list[AttemptView]


class TestSent(msgspec.Struct, rename="camel"):
    message_id: str
    event_id: str
    endpoint_id: str
    status: str


class ReplayView(msgspec.Struct, rename="camel"):
    endpoint_id: str
    replayed: int
    more: bool
    rate_per_second: float
    first_attempt_at: str | None
    last_attempt_at: str | None


# -- views: rows to wire shapes ---------------------------------------------------------------


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
