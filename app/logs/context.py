"""The ids a log line is about (request, payment, key, endpoint, message...), per task.

One context variable holds an immutable mapping. A request (``app.metrics.request_observer``)
or a job (``workers.log_context``) opens a scope; code that learns an id binds it, and every
record logged afterwards in that task, or in tasks it starts, carries it. asyncio copies the
context into each new task, so a bind inside one job never shows in another's lines, and a
scope's end restores what was there before (a test client calling the app in the test's own
task).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType

Ids = Mapping[str, str]

_EMPTY: Ids = MappingProxyType({})
_IDS: ContextVar[Ids] = ContextVar("passgate_log_ids", default=_EMPTY)


def current() -> Ids:
    return _IDS.get()


def bind(**ids: str | None) -> None:
    """Add ids to the current scope (``None`` values are skipped)."""
    values = {name: value for name, value in ids.items() if value is not None}
    if values:
        _IDS.set(MappingProxyType({**_IDS.get(), **values}))


def open_scope(**ids: str) -> Token[Ids]:
    """Start a fresh scope holding only ``ids``; pass the token to :func:`close_scope`."""
    return _IDS.set(MappingProxyType(dict(ids)))


def close_scope(token: Token[Ids]) -> None:
    _IDS.reset(token)


@contextmanager
def scope(**ids: str) -> Iterator[None]:
    token = open_scope(**ids)
    try:
        yield
    finally:
        close_scope(token)
