"""One process's metrics in Prometheus' text format, for ``/metrics`` and a worker's port.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``passgate serve --workers N``: see ``workers.cli``), each
API process writes its values to files there and the exposition adds up every process's
files, so a counter is the deployment's total whichever process answers the scrape. Without
it, the process's own registry is shown, including the worker actors' metrics when they run in
the same process.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

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


def leave_live_gauges() -> None:
    """Take this stopping process's share out of the live gauges. In multiprocess mode a
    process's files outlive it until this is called; one killed outright keeps its last share
    (for the lease gauge: the calls it lost) until ``passgate serve`` starts again."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def use_multiprocess_dir() -> str:
    """Make the API processes about to start share their metrics through files.

    Call before they start (they inherit the environment). An operator's
    ``PROMETHEUS_MULTIPROC_DIR`` is used after its files from an earlier run are removed
    (prometheus_client requires a clean directory per run); otherwise a temporary one,
    removed at exit.
    """
    path = multiprocess_dir()
    if path:
        for stale in Path(path).glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = tempfile.mkdtemp(prefix="passgate-metrics-")
        atexit.register(shutil.rmtree, path, True)
        os.environ[MULTIPROC_ENV] = path
    return path
