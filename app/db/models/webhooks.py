"""Webhook endpoints, one message per event and endpoint, and every delivery attempt."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db.columns import created_at, json_column, timestamp
from app.db.columns import created_at as now_column

# Message states: pending (an attempt is due at next_attempt_at), delivered, failed (retries
# exhausted, endpoint gone or disabled; replayable).
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


class WebhookEndpoint(SQLModel, table=True):
    """A receiver URL of a platform, or of the operator when ``platform_id`` is NULL.

    Secrets are stored sealed (AES-GCM, key derived from the pepper, see ``crypto``): they must
    be recoverable to sign, so a hash will not do. ``previous_secret_sealed`` keeps signing
    beside the new one until ``previous_secret_expires_at`` after a rotation.
    """

    __tablename__ = "webhook_endpoints"

    id: str = Field(primary_key=True, max_length=40)
    platform_id: str | None = Field(default=None, foreign_key="platforms.id", index=True)
    url: str = Field(max_length=2048)
    description: str | None = Field(default=None, max_length=2000)
    # Empty: every event type.
    event_types: list[str] = json_column(default=list)
    enabled: bool = Field(default=True, index=True)
    # manual, gone (410), failing (continuous failures past the threshold)
    disabled_reason: str | None = Field(default=None, max_length=20)
    disabled_at: datetime | None = timestamp()
    secret_sealed: str = Field(max_length=255)
    previous_secret_sealed: str | None = Field(default=None, max_length=255)
    previous_secret_expires_at: datetime | None = timestamp()
    secret_rotated_at: datetime | None = timestamp()
    # First failed attempt of the current streak; any success clears it.
    failing_since: datetime | None = timestamp()
    # The last slot handed out to a replay: replays queue behind it at a bounded rate.
    replay_until: datetime | None = timestamp()
    created_at: datetime = created_at()
    updated_at: datetime = now_column()


class WebhookMessage(SQLModel, table=True):
    """One event for one endpoint; its id is the ``webhook-id`` every retry repeats.

    ``body`` is fixed at creation, so retries and replays send the very bytes first signed.
    ``locked_until``/``claim_token`` are a lease: the worker holding it is the only one sending.
    """

    __tablename__ = "webhook_messages"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_messages_event_endpoint"),
        sa.Index("ix_webhook_messages_due", "status", "next_attempt_at"),
        sa.Index("ix_webhook_messages_endpoint_status", "endpoint_id", "status"),
    )

    id: str = Field(primary_key=True, max_length=40)
    # Indexed by ix_webhook_messages_endpoint_status.
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id")
    # Indexed by the unique constraint.
    event_id: str = Field(foreign_key="events.id")
    event_type: str = Field(max_length=60)
    body: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    status: str = Field(default=PENDING, max_length=10)
    # Attempts in the current round (a replay starts a new round); history in attempts.
    attempt_count: int = 0
    next_attempt_at: datetime | None = timestamp()
    locked_until: datetime | None = timestamp()
    claim_token: str | None = Field(default=None, max_length=40)
    # When the sweeper last re-sent this message to the broker.
    redriven_at: datetime | None = timestamp()
    last_attempt_at: datetime | None = timestamp()
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    delivered_at: datetime | None = timestamp()
    failed_at: datetime | None = timestamp()
    created_at: datetime = created_at()


class WebhookAttempt(SQLModel, table=True):
    """One HTTP attempt: status, latency, the first 1 KB of the response, or the error."""

    __tablename__ = "webhook_attempts"

    id: str = Field(primary_key=True, max_length=40)
    message_id: str = Field(foreign_key="webhook_messages.id", index=True)
    endpoint_id: str = Field(max_length=40, index=True)
    success: bool
    status_code: int | None = None
    latency_ms: int = 0
    response_body: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    error_kind: str | None = Field(default=None, max_length=20)
    started_at: datetime = now_column()
    created_at: datetime = created_at()
