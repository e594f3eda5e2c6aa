"""What ``/v1/health`` reads about the background: each periodic job's last runs."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db.columns import timestamp


class JobHeartbeat(SQLModel, table=True):
    """One periodic job (a sweeper, the chain tick, an expiry job), as the worker that ran it
    last recorded it. Written at most every few seconds per job and process, so a job that runs
    every second costs the database little."""

    __tablename__ = "job_heartbeats"

    job: str = Field(primary_key=True, max_length=60)
    queue: str = Field(max_length=40)
    # Its schedule, as the worker knows it: health derives "has not run for too long" from it.
    every_seconds: float
    # When the scheduler sent the last run seen (the message's own timestamp).
    last_sent_at: datetime | None = timestamp()
    last_success_at: datetime | None = timestamp()
    # How long that successful run waited in its queue before a worker took it.
    last_queue_delay_ms: int | None = None
    last_failure_at: datetime | None = timestamp()
    # The exception's type only: messages can carry context nobody should read in a probe.
    last_error: str | None = Field(default=None, max_length=200)
    updated_at: datetime | None = timestamp()
