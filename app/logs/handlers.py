"""Where log lines go: standard error, written by a background thread.

A record is put on a queue by the code that logs it and written by a listener thread, so an
event loop never waits on a slow terminal or a full pipe (what Litestar's own queue listener
does for the API, here for every process and every Python version alike).
"""

from __future__ import annotations

import copy
import logging
import queue
import sys
from logging.handlers import QueueHandler, QueueListener
from typing import IO, Any

_TRACEBACKS = logging.Formatter()


class DirectStream(logging.StreamHandler[IO[str]]):
    """Writes to ``stream``, or to whatever ``sys.stderr`` is at the time of writing."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self._fixed = stream

    @property
    def stream(self) -> IO[str]:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        self._fixed = value


class QueuedStream(QueueHandler):
    """Queue in the logging thread, format and write in a listener thread.

    The formatter dictConfig gives this handler is the one its writer uses. The ids filter
    belongs here (it must run in the thread and task that logged the record).
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(-1)
        super().__init__(self._queue)
        self._writer = DirectStream(stream)
        self._listener: QueueListener | None = QueueListener(self._queue, self._writer)
        self._listener.start()

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        self._writer.setFormatter(fmt)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """A copy the listener can format on its own: message rendered, traceback as text."""
        prepared = copy.copy(record)
        prepared.msg = record.getMessage()
        prepared.args = None
        if record.exc_info:
            prepared.exc_text = _TRACEBACKS.formatException(record.exc_info)
        prepared.exc_info = None
        return prepared

    def flush(self) -> None:
        """Wait until every queued line is written (tests read them; exit must not lose them)."""
        if self._listener is not None:
            self._queue.join()
        self._writer.flush()

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self._writer.flush()
        super().close()


def flush_all() -> None:
    """Flush every handler of the root logger and of passgate's (tests, before reading)."""
    for name in ("", "passgate", "uvicorn"):
        for handler in logging.getLogger(name).handlers:
            handler.flush()
