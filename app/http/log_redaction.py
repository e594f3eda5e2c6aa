"""Secrets never reach a log line, wherever they appear in it.

Three rules, applied to a record's message, its arguments and its traceback text:

- anything shaped like a secret passgate issues (``ak_``/``gw_``/``pk_``/``pass_``/``mk_``/
  ``adm_`` keys, ``clm_`` claim codes, ``clt_`` claim tokens, ``whsec_`` webhook secrets) keeps
  its prefix and loses the rest;
- a path segment that is a secret by position (``/v1/claims/{claimCode}``) is masked even when
  it is mistyped, since a near miss still gives most of a code away;
- query parameters whose name says they carry a secret (``key``, ``token``, ``code``, ...)
  are masked, whoever they are meant for (a gateway call's upstream query included).

The access log is where paths and queries land: uvicorn's ``uvicorn.access`` records carry the
path with its query as an argument. :func:`install` puts the filter on uvicorn's loggers and on
every handler of the app's logging config, so passgate's own loggers are covered too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

MASK = "[redacted]"

# Prefixes of every secret passgate issues; tests/http check this against the key kinds.
SECRET_PREFIXES = ("ak", "gw", "pk", "pass", "mk", "adm", "clm", "clt")
# Paths whose next segment is a secret (the route's path parameter).
SECRET_PATH_SEGMENTS = ("/v1/claims/",)
SECRET_QUERY_NAMES = (
    "key", "api_key", "apikey", "api-key", "token", "access_token", "claim_token", "claimtoken",
    "claim_code", "claimcode", "code", "secret", "client_secret", "password", "signature",
    "sig", "master_key",
)

# Preceded by neither a letter, a digit nor "_", so identifiers such as ``test_pass_purchase``
# are left alone; 12 characters on is long enough to leave words alone and short enough to
# catch any useful part of a secret (keys carry 33, claim codes 24).
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_])((?:" + "|".join(SECRET_PREFIXES) + r")_)[A-Za-z0-9_-]{12,}"
    r"|(?<![A-Za-z0-9_])(whsec_)[A-Za-z0-9+/=_-]{12,}"
)
_PATH = re.compile(
    "(" + "|".join(re.escape(prefix) for prefix in SECRET_PATH_SEGMENTS) + r")[^/?#\s\"']+"
)
_QUERY = re.compile(
    r"([?&;](?:" + "|".join(re.escape(name) for name in SECRET_QUERY_NAMES) + r")=)[^&;#\s\"']*",
    re.IGNORECASE,
)
_SAFE_ARGS = (int, float, bool, type(None))
_TRACEBACKS = logging.Formatter()


def redact(text: str) -> str:
    """``text`` with every secret masked (see the module docstring)."""
    if "_" not in text and "=" not in text and not _PATH.search(text):
        # The other rules need one of these: most access-log paths cost one scan.
        return text
    text = _PATH.sub(lambda m: m.group(1) + MASK, text)
    text = _QUERY.sub(lambda m: m.group(1) + MASK, text)
    return _TOKEN.sub(lambda m: (m.group(1) or m.group(2)) + MASK, text)


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _SAFE_ARGS):
        return value
    # An object formatted with %s (an exception, a URL): masked only if it showed a secret.
    shown = str(value)
    masked = redact(shown)
    return value if masked == shown else masked


class RedactSecrets(logging.Filter):
    """Rewrites a record in place before any handler formats it; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redact_arg(value) for value in args)
        elif isinstance(args, Mapping):
            record.args = {name: _redact_arg(value) for name, value in args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


# Loggers whose records reach no handler of the app's logging config.
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")


def install(handler_owners: tuple[str, ...] = ("", "litestar", "passgate")) -> None:
    """Filter uvicorn's loggers (records are filtered by the logger that made them) and every
    handler of ``handler_owners`` (records propagated from child loggers, passgate's own).
    Idempotent: an app built twice in one process filters once."""
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in SERVER_LOGGERS]
    for owner in handler_owners:
        targets.extend(logging.getLogger(owner).handlers)
    for target in targets:
        if not any(isinstance(existing, RedactSecrets) for existing in target.filters):
            target.addFilter(RedactSecrets())
