"""Every actor module, imported by the worker. Areas add their modules here."""

from __future__ import annotations

from typing import Any

import dramatiq

import workers.chain
import workers.expiry
import workers.gateway
import workers.webhooks


def all_actors() -> list[dramatiq.Actor[Any, Any]]:
    """Every actor of the modules above (to bind them to a broker made after their import)."""
    found: list[dramatiq.Actor[Any, Any]] = []
    for module in (workers.chain, workers.expiry, workers.gateway, workers.webhooks):
        found.extend(v for v in vars(module).values() if isinstance(v, dramatiq.Actor))
    return found
