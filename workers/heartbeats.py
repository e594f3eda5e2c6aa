"""Every periodic job leaves a heartbeat in the database, for ``/v1/health``.

A middleware rather than a line in each actor: a new periodic actor is covered by declaring
its schedule (``workers.periodic.periodic``). The write happens after the run, on the
worker's event loop, at most once every ``BEAT_SECONDS`` per job and process (the chain tick
runs every second); a failed write is logged and never fails the job.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from app.health.service import JobRun, record_run
from workers import actor_context
from workers.periodic import periodic_of

log = logging.getLogger("passgate.worker")

BEAT_SECONDS = 5.0


class Heartbeats(Middleware):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        # job -> (monotonic time of the last write, whether it recorded a success)
        self._written: dict[str, tuple[float, bool]] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if periodic_of(message.actor_name) is not None:
            with self._lock:
                self._started[message.message_id] = time.time()

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        job = periodic_of(message.actor_name)
        if job is None:
            return
        with self._lock:
            started = self._started.pop(message.message_id, time.time())
            if not self._due(message.actor_name, exception is None):
                return
        sent = message.message_timestamp / 1000
        run = JobRun(
            job=message.actor_name, queue=message.queue_name, every_seconds=job.every_seconds,
            sent_at=datetime.fromtimestamp(sent, UTC), finished_at=datetime.now(UTC),
            queue_delay_ms=max(0, round((started - sent) * 1000)),
            error=None if exception is None else type(exception).__name__,
        )
        thread = get_event_loop_thread()
        if thread is None:
            return
        try:
            thread.run_coroutine(_write(run))
        except Exception as exc:  # health then shows the job as late; the job itself is done
            log.warning("could not record a heartbeat of %s: %s", run.job, type(exc).__name__)

    def _due(self, job: str, success: bool) -> bool:
        """Write now? (called under the lock) A change between success and failure always is."""
        now = time.monotonic()
        last = self._written.get(job)
        if last is not None and last[1] == success and now - last[0] < BEAT_SECONDS:
            return False
        self._written[job] = (now, success)
        return True


async def _write(run: JobRun) -> None:
    async with actor_context.current().sessions() as session:
        await record_run(session, run)
        await session.commit()
