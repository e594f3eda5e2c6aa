"""Bounded retries: work that fails for a reason a retry cannot fix is parked for an operator.

A job that hits such an error (an integrity violation, a value that does not decode, a row that
no longer matches what the code expects) would otherwise be retried by Dramatiq and then re-driven
by its sweeper forever. Instead each failure is counted per piece of work (``kind`` + ``ref``, in
a transaction of its own: the failed one was rolled back, so nothing is left half-done), and at
``PASSGATE_JOB_MAX_FAILURES`` the work is parked: logged once at ERROR with its ids, listed by
``GET /admin/v1/attention``, counted by ``passgate_attention_items``, and skipped by every sweeper
(``app.attention.filters``) until an operator retries it.

Multi-transaction flows: :func:`record_failure` counts in a transaction of its own (the one that
failed was rolled back), and :func:`run_each` runs a sweeper's work one ref per transaction.

Errors of the outside world (a database, Redis or chain node that does not answer, a timeout)
are not counted: they are retried with backoff for as long as they last, and health shows them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.attention import repository
from app.attention.schemas import AttentionView, attention_view
from app.audit.service import Actor, record
from app.db.models.attention import (
    DISMISSED,
    OPEN,
    PARKED,
    RETRIED,
    RETRYING,
    AttentionItem,
)
from app.db.paging import Page, PageParams
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict
from chain.errors import ChainError

log = logging.getLogger("passgate.attention")

# Failures further apart than this start the count again: a job that failed twice a week ago
# and once today has not failed three times in a row.
COUNT_WINDOW = timedelta(hours=1)

_TRANSIENT: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    OSError,  # ConnectionError, TimeoutError, socket errors
    asyncio.TimeoutError,
    ChainError,  # the node did not answer, or answered nonsense: its problem, not the row's
)
# Secret-shaped values never reach the table: passgate keys, and long hex (signatures, keys).
_SECRETISH = re.compile(
    r"\b(?:ak|gw|pk|mk|adm|pass|whsec|clt)_[A-Za-z0-9+/=_-]{8,}|0x[0-9a-fA-F]{64,}"
)


def is_transient(exc: BaseException) -> bool:
    """True for failures of a dependency, which a later retry may not meet again."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, _TRANSIENT):
        return True
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


def describe(exc: BaseException) -> str:
    """The error's first line, bounded, secret-shaped values masked."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _SECRETISH.sub("[redacted]", text)[:500]


async def record_failure(
    sessions: async_sessionmaker[UnitOfWork], kind: str, ref: str, exc: BaseException, *,
    actor: str, limit: int,
) -> bool:
    """Count one failure of ``kind``/``ref``; True once the work is parked (stop retrying)."""
    now = utcnow()
    async with sessions() as session:
        item = await repository.locked_item(session, kind, ref[:120], actor[:60], now)
        if item.status in PARKED:
            await session.commit()
            return True
        if item.status == RETRIED or now - item.last_failed_at > COUNT_WINDOW:
            item.attempts, item.first_failed_at, item.status = 0, now, RETRYING
        item.attempts += 1
        item.actor = actor[:60]
        item.error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"[:120]
        item.error = describe(exc)
        item.last_failed_at = now
        parked = item.attempts >= limit
        if parked:
            item.status, item.parked_at, item.resolved_at, item.resolved_by = OPEN, now, None, None
        session.add(item)
        await session.commit()
    if parked:
        log.error("%s %s parked for an operator after %d failures of %s: %s (attention %s)",
                  kind, ref, item.attempts, actor, item.error_type, item.id, exc_info=exc)
    else:
        log.warning("%s %s failed (%d of %d before it is parked): %s", kind, ref,
                    item.attempts, limit, item.error_type)
    return parked


async def run_each(
    sessions: async_sessionmaker[UnitOfWork], kind: str, refs: Iterable[str],
    work: Callable[[UnitOfWork, str], Awaitable[object]], *, actor: str, limit: int,
) -> int:
    """Run ``work`` for each ref in a transaction of its own, for sweepers: one row that fails
    for a reason a retry cannot fix is counted (and in the end parked) while the others go on,
    instead of failing the whole batch on every run. Returns how many did something (``work``
    returned a true value)."""
    done = 0
    for ref in refs:
        try:
            async with sessions() as session:
                result = await work(session, ref)
                await session.commit()
        except Exception as exc:
            if is_transient(exc):
                raise
            await record_failure(sessions, kind, ref, exc, actor=actor, limit=limit)
            continue
        done += 1 if result else 0
    return done


async def get(session: UnitOfWork, item_id: str) -> AttentionView:
    """One item, open or resolved."""
    return attention_view(await repository.get(session, item_id))


async def search(
    session: UnitOfWork, params: PageParams, *, kind: str | None = None,
    status: str | None = None, ref: str | None = None,
) -> Page:
    """Items newest first, filtered by kind, status and ref."""
    rows, next_cursor = await repository.search(session, params, kind=kind, status=status,
                                                ref=ref)
    return Page(data=[attention_view(item) for item in rows], next_cursor=next_cursor)


async def counts(session: UnitOfWork) -> dict[tuple[str, str], int]:
    """Items by (kind, status), for metrics."""
    return await repository.counts(session)


async def parked_by_kind(session: UnitOfWork) -> dict[str, int]:
    """Open items (parked, not yet looked at) by kind, for health."""
    return await repository.open_by_kind(session)


def _retry(item: AttentionItem, by: str | None, now: datetime) -> None:
    if item.status not in PARKED:
        raise Conflict(f"Only parked work can be retried (this one is {item.status}).")
    item.status, item.resolved_at, item.resolved_by = RETRIED, now, by


def _dismiss(item: AttentionItem, by: str | None, now: datetime) -> None:
    if item.status != OPEN:
        raise Conflict(f"Only open items can be dismissed (this one is {item.status}).")
    item.status, item.resolved_at, item.resolved_by = DISMISSED, now, by


def _snapshot(item: AttentionItem) -> dict[str, Any]:
    return {"status": item.status, "kind": item.kind, "ref": item.ref}


async def _resolve(
    session: UnitOfWork, item_id: str, actor: Actor, reason: str, action: str,
    change: Callable[[AttentionItem, str | None, datetime], None],
) -> AttentionView:
    item = await repository.get(session, item_id)
    before = _snapshot(item)
    change(item, actor.id, utcnow())
    session.add(item)
    await session.flush()
    await record(session, actor, f"attention.{action}", "attention", item.id, before=before,
                 after={**_snapshot(item), "reason": reason})
    return attention_view(item)


async def retry(session: UnitOfWork, item_id: str, actor: Actor, reason: str) -> AttentionView:
    """Release parked work (audited): its sweeper re-drives it within seconds; a new failure
    starts a new count."""
    return await _resolve(session, item_id, actor, reason, "retry", _retry)


async def dismiss(session: UnitOfWork, item_id: str, actor: Actor, reason: str) -> AttentionView:
    """Acknowledge parked work and leave it parked (audited; nothing will re-drive it)."""
    return await _resolve(session, item_id, actor, reason, "dismiss", _dismiss)
