"""The server's access log, without the secrets some request lines carry.

A claim URL (``/v1/claims/clm_...``) holds the claim code itself, and a key pasted into a
query string is still a key; uvicorn logs every request line at INFO. ``passgate serve``
hands uvicorn :func:`access_log_config`, whose filter masks them before any handler writes.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

# Issued secrets have a type prefix and a long base62 body (see app.keys.format and the claim
# code in app.agents.service); a claim URL's last segment is a claim code however it looks.
_SECRET = re.compile(r"\b((?:ak|gw|pk|pass|mk|adm|clm)_)[0-9A-Za-z]{16,}")
_CLAIM_PATH = re.compile(r"(/v1/claims/)[^/?#\s]+")
_MASK = "[redacted]"


def redact(text: str) -> str:
    return _SECRET.sub(rf"\1{_MASK}", _CLAIM_PATH.sub(rf"\1{_MASK}", text))


class RedactSecrets(logging.Filter):
    """Masks secrets in the path of an access record (uvicorn passes it as the third of five
    arguments) and in any other message."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        elif isinstance(record.msg, str) and not args:
            record.msg = redact(record.msg)
        return True


def access_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, with :class:`RedactSecrets` on both of its handlers."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_secrets"] = {"()": RedactSecrets}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_secrets")
    return config
