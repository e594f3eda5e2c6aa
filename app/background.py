"""Fire-and-forget work of a long-lived service object, kept referenced and drained on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

CLOSE_SECONDS = 2.0


class BackgroundTasks:
    """Tasks nobody awaits: held here so they are not garbage-collected mid-flight, their
    failures logged (by type only: they may carry secrets' context), and waited for on close."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        self.track(asyncio.ensure_future(work))

    def track(self, task: asyncio.Future[Any]) -> None:
        """Hold a task that is already running (one that someone may also await)."""
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.warning("%s failed: %s", self._what, type(task.exception()).__name__)

    async def close(self) -> None:
        """Wait (at most ``CLOSE_SECONDS``) for what is still running: each is short."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=CLOSE_SECONDS)
