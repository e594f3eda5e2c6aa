"""The demo's server: exactly what ``passgate serve`` runs on embedded defaults, on a thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from app.settings import Settings
from workers.onebox import free_port, serve_in_thread
from workers.startup import serve_line

__all__ = ["embedded_service", "free_port"]

THREADS = 2


@contextmanager
def embedded_service(settings: Settings, *, announce: bool = False) -> Iterator[str]:
    """Start the API with its in-process background; yield the base URL; stop both."""
    if announce:
        line = serve_line(settings, host="127.0.0.1", port=settings.port, processes=1,
                          background=True, threads=THREADS, role="demo")
        click.echo(line, err=True)
    with serve_in_thread(settings, background=True, threads=THREADS) as base:
        yield base
