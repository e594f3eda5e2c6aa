"""Logging for every passgate process, from ``PASSGATE_LOG_FORMAT`` and ``PASSGATE_LOG_LEVEL``.

One ``dictConfig`` dictionary serves all of them: the API gets it through Litestar's
``LoggingConfig`` (``app.main``) and uvicorn's ``log_config`` (``passgate serve``), the worker,
the scheduler and the CLI through :func:`configure_logging`. passgate's and uvicorn's loggers
log at the configured level, every other library at WARNING; all of them go through the same
formatter and redactor. uvicorn's access log stays off: ``passgate.access`` writes one line per
request instead (route template, ids; never the raw path).
"""

from __future__ import annotations

import logging.config
from typing import IO, Any

from litestar.logging.config import LoggingConfig

from app.logs.formatting import IdsFilter, JsonFormatter, TextFormatter
from app.logs.handlers import DirectStream, QueuedStream
from app.logs.redact import Redactor
from app.settings import Settings

HANDLER = "queue_listener"  # Litestar's name for the handler it routes its loggers to


def secret_literals(settings: Settings) -> list[str]:
    """The configured secrets, so they are redacted whatever their shape."""
    found = [settings.key_pepper.get_secret_value()]
    found.extend(secret.get_secret_value() for secret in (settings.admin_token,
                 settings.metrics_token) if secret is not None)
    if settings.chain_signer_private_key is not None:
        key = settings.chain_signer_private_key.get_secret_value()
        bare = key.removeprefix("0x")
        found.extend([key, bare, bare.lower(), bare.upper()])
    for provider in settings.providers:
        found.extend(value.get_secret_value() for value in provider.headers.values())
    return found


def logging_config(settings: Settings, stream: IO[str] | None = None) -> dict[str, Any]:
    """The ``dictConfig`` of a passgate process (``stream``: standard error by default)."""
    formatter = JsonFormatter if settings.log_format == "json" else TextFormatter
    # Objects, not settings, go into the dictionary: printing it shows no secret.
    redactor = Redactor(secret_literals(settings))
    handler = {"()": QueuedStream, "stream": stream, "formatter": "passgate",
               "filters": ["ids"]}
    quiet = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"ids": {"()": IdsFilter}},
        "formatters": {"passgate": {"()": formatter, "redact": redactor}},
        # Litestar requires a "console" handler too (nothing passgate configures uses it).
        "handlers": {HANDLER: handler, "console": {**handler, "()": DirectStream}},
        "root": {"level": "WARNING", "handlers": [HANDLER]},
        "loggers": {
            "passgate": {"level": settings.log_level.upper(), **quiet},
            # Inherits passgate's level unless access lines are off.
            "passgate.access": {"level": "NOTSET" if settings.access_log else "WARNING",
                                **quiet},
            "litestar": {"level": "INFO", **quiet},
            "uvicorn": {"level": settings.log_level.upper(), **quiet},
            "uvicorn.error": {"level": settings.log_level.upper(), **quiet},
            # passgate.access replaces it. Without a handler to reach, uvicorn does not even
            # build its lines (it asks hasHandlers() once per connection).
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Apply :func:`logging_config` to this process (worker, scheduler, CLI)."""
    logging.config.dictConfig(logging_config(settings))


def litestar_logging(settings: Settings, stream: IO[str] | None = None) -> LoggingConfig:
    """The same configuration in the form Litestar applies when the app is built."""
    config = logging_config(settings, stream)
    return LoggingConfig(
        filters=config["filters"],
        formatters=config["formatters"],
        handlers=config["handlers"],
        root=config["root"],
        loggers=config["loggers"],
        log_exceptions="never",
    )
