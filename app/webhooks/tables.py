"""The webhook tables as SQLAlchemy Core tables, for the delivery path.

Delivery runs per message, so it skips the ORM layer (identity map, synchronize_session,
bulk-persistence bookkeeping) and speaks SQL expressions over these directly. The tables
themselves are defined once, in :mod:`app.db.models.webhooks` and :mod:`app.db.models.events`.
"""

from __future__ import annotations

import sqlalchemy as sa

from app.db.models.events import Event
from app.db.models.webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage

EVENTS: sa.Table = Event.__table__  # type: ignore[attr-defined]
ENDPOINTS: sa.Table = WebhookEndpoint.__table__  # type: ignore[attr-defined]
MESSAGES: sa.Table = WebhookMessage.__table__  # type: ignore[attr-defined]
ATTEMPTS: sa.Table = WebhookAttempt.__table__  # type: ignore[attr-defined]
