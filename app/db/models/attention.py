"""Work that failed in a way a retry cannot fix, parked for an operator."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db.columns import created_at, timestamp

# ``retrying``: failed, and will be tried again (``attempts`` so far). ``open``: failed
# ``PASSGATE_JOB_MAX_FAILURES`` times: parked, nothing re-drives it until an operator retries
# it. ``dismissed``: an operator looked and left it parked. ``retried``: an operator released it.
RETRYING = "retrying"
OPEN = "open"
DISMISSED = "dismissed"
RETRIED = "retried"
STATUSES = (RETRYING, OPEN, DISMISSED, RETRIED)
PARKED = (OPEN, DISMISSED)

# What failed: the row a job works on, named by its kind and id.
SETTLEMENT = "settlement"
WEBHOOK_EVENT = "webhook_event"
WEBHOOK_MESSAGE = "webhook_message"
CHAIN_WATCHER = "chain_watcher"
KEY_EXPIRY = "key_expiry"
PAYMENT_EXPIRY = "payment_expiry"
GATEWAY_RESERVATION = "gateway_reservation"
GATEWAY_LEASE = "gateway_lease"
KINDS = (SETTLEMENT, WEBHOOK_EVENT, WEBHOOK_MESSAGE, CHAIN_WATCHER, KEY_EXPIRY, PAYMENT_EXPIRY,
         GATEWAY_RESERVATION, GATEWAY_LEASE)


class AttentionItem(SQLModel, table=True):
    """One piece of work (``kind`` + ``ref``) that keeps failing, and what it failed with."""

    __tablename__ = "attention_items"
    __table_args__ = (sa.UniqueConstraint("kind", "ref", name="uq_attention_items_kind_ref"),)

    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=30, index=True)
    ref: str = Field(max_length=120)
    actor: str = Field(max_length=60)
    status: str = Field(default=RETRYING, max_length=12, index=True)
    attempts: int = 0
    error_type: str = Field(max_length=120)
    # The error's first line, bounded and with secret-shaped values masked.
    error: str = Field(max_length=500)
    first_failed_at: datetime = created_at()
    last_failed_at: datetime = created_at()
    parked_at: datetime | None = timestamp()
    resolved_at: datetime | None = timestamp()
    resolved_by: str | None = Field(default=None, max_length=40)
