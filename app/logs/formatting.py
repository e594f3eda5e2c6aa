"""How a log record becomes one line: JSON (``PASSGATE_LOG_FORMAT=json``) or text.

Both take the record's ids from :class:`IdsFilter`, which copies them from the log context
when the record is made (in the thread and task that logged it: the line itself is written
later by the queue's listener thread), and both pass what they write through the redactor.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from app.logs import context
from app.logs.redact import Redactor

IDS_ATTR = "passgate_ids"


class IdsFilter(logging.Filter):
    """Stamps the log context's ids on a record (once: the first handler it reaches)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, IDS_ATTR):
            setattr(record, IDS_ATTR, context.current())
        return True


def _ids(record: logging.LogRecord) -> dict[str, str]:
    found = getattr(record, IDS_ATTR, None)
    return dict(found) if found else {}


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return record.exc_text or None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, the ids, the exception."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_ids(record))
        exception = _exception(self, record)
        if exception:
            entry["exception"] = exception
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # The encoded line is redacted: JSON escapes none of the characters of a secret's
        # shape, and the redactor also knows the configured secrets in their escaped form.
        return self._redact(json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message> key=value ...`` plus the traceback, if any."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        ids = _ids(record)
        if ids:
            line += " " + " ".join(f"{name}={value}" for name, value in ids.items())
        exception = _exception(self, record)
        if exception:
            line += "\n" + exception
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return self._redact(line)
