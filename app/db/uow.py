"""The unit of work: one database transaction and everything that must wait for it to commit.

Every session passgate opens is a :class:`UnitOfWork` (``app.db.engine.session_factory``). Code
that changes data queues what must follow the change on it: jobs for the workers
(:meth:`enqueue`), events for the webhook fan-out (:meth:`dispatch_events`), anything else such as
clearing a cache (:meth:`after_commit`). They run once :meth:`commit` has succeeded, in the order
queued, and are dropped when the transaction rolls back or the session closes without a commit.
Overriding ``commit`` makes it the only way to commit: no caller can commit and forget the work.

Sending is best effort by design: the database is the source of truth, so a job the broker
refuses or loses is re-driven by a sweeper from the rows this transaction wrote.

Flows that need several transactions open one unit of work each (``async with sessions() as
uow``); each area names such flows in its service module.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from app.jobs import Job, JobQueue

log = logging.getLogger("passgate.db")

Callback = Callable[[], Awaitable[None] | None]


class KeyChangeSink(Protocol):
    """Where the ids of changed keys go once a transaction commits (None: every key)."""

    async def keys_changed(self, key_ids: Sequence[str | None]) -> None: ...


class EventSink(Protocol):
    async def dispatch_events(self, event_ids: Sequence[str]) -> None:
        """Start delivering committed events; must not raise (log instead)."""


class UnitOfWork(AsyncSession):
    """A session whose commit also runs what was queued on it (see the module docstring).

    ``jobs`` and ``events`` come from whoever builds sessions (the API's app factory, a worker's
    context); without them (a tool, a migration) nothing is sent and the sweepers re-drive the
    work from the database.
    """

    def __init__(self, *args: Any, jobs: JobQueue | None = None,
                 events: EventSink | None = None, key_changes: KeyChangeSink | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._jobs = jobs
        self._events = events
        self._key_changes = key_changes
        self._changed_keys: list[str | None] = []
        self._callbacks: list[Callback] = []
        self._job_batch: list[Job] = []
        self._event_ids: list[str] = []

    def enqueue(self, *jobs: Job) -> None:
        """Send ``jobs`` to the workers once this transaction commits."""
        self._job_batch.extend(jobs)

    def dispatch_events(self, *event_ids: str) -> None:
        """Hand events written in this transaction to the fan-out once it commits."""
        self._event_ids.extend(event_ids)

    def key_changed(self, key_id: str | None) -> None:
        """Once this transaction commits, every process stops serving ``key_id`` (None: any
        key) from its cache (a change made outside the API, e.g. by a worker)."""
        self._changed_keys.append(key_id)

    def after_commit(self, callback: Callback) -> None:
        """Run ``callback`` once this transaction commits (e.g. forget a cached key)."""
        self._callbacks.append(callback)

    async def commit(self) -> None:
        await super().commit()
        jobs, self._job_batch = self._job_batch, []
        event_ids, self._event_ids = self._event_ids, []
        callbacks, self._callbacks = self._callbacks, []
        changed, self._changed_keys = self._changed_keys, []
        if changed and self._key_changes is not None:
            await self._key_changes.keys_changed(changed)
        if jobs and self._jobs is not None:
            await self._jobs.send(jobs)
        if event_ids and self._events is not None:
            await self._events.dispatch_events(event_ids)
        for callback in callbacks:
            result = callback()
            if result is not None:
                await result

    def discard(self) -> None:
        """Forget what was queued (the transaction it belonged to is gone)."""
        self._job_batch.clear()
        self._event_ids.clear()
        self._callbacks.clear()
        self._changed_keys.clear()

    async def rollback(self) -> None:
        self.discard()
        await super().rollback()

    async def close(self) -> None:
        self.discard()
        await super().close()
