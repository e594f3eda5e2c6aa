"""One process's metrics in Prometheus' text format, for ``/metrics`` and a worker's port.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``passgate serve --workers N``: see ``app.cli``), each
API process writes its values to files there and the exposition adds up every process's
files, so a counter is the deployment's total whichever process answers the scrape. Without
it, the process's own registry is shown, including the worker actors' metrics when they run in
the same process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _Families(Collector):
    """Metric families read beforehand (the states: read asynchronously, shown here)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(extra: Sequence[Metric] = ()) -> bytes:
    """The text exposition of this process (or every API process) plus ``extra``."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(REGISTRY)
    if extra:
        registry.register(_Families(extra))
    return generate_latest(registry)
