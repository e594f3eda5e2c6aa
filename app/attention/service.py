"""Bounded retries: work that fails for a reason a retry cannot fix is parked for an operator.

A job that hits such an error (an integrity violation, a value that does not decode, a row that
no longer matches what the code expects) would otherwise be retried by Dramatiq and then re-driven
by its sweeper forever. Instead each failure is counted per piece of work (``kind`` + ``ref``, in
a transaction of its own: the failed one was rolled back, so nothing is left half-done), and at
``PASSGATE_JOB_MAX_FAILURES`` the work is parked: logged once at ERROR with its ids, listed by
``GET /admin/v1/attention``, counted by ``passgate_attention_items``, and skipped by every sweeper
(``app.attention.filters``) until an operator retries it.

Errors of the outside world (a database, Redis or chain node that does not answer, a timeout)
are not counted: they are retried with backoff for as long as they last, and health shows them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import exc as sa_exc
from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select

from app.db.models.attention import (
    DISMISSED,
    OPEN,
    PARKED,
    RETRIED,
    RETRYING,
    AttentionItem,
)
from app.db.paging import PageParams, apply, split
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound
from app.ids import new_id
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
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await session.execute(
            insert(AttentionItem)
            .values(id=new_id("att"), kind=kind, ref=ref[:120], actor=actor[:60],
                    status=RETRYING, attempts=0, error_type="", error="",
                    first_failed_at=now, last_failed_at=now)
            .on_conflict_do_nothing(index_elements=["kind", "ref"])
        )
        item = (
            await session.exec(
                select(AttentionItem)
                .where(col(AttentionItem.kind) == kind, col(AttentionItem.ref) == ref[:120])
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).one()
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
                  kind, ref, item.attempts, actor, item.error_type, item.id)
    else:
        log.warning("%s %s failed (%d of %d before it is parked): %s", kind, ref,
                    item.attempts, limit, item.error_type)
    return parked


async def get(session: UnitOfWork, item_id: str) -> AttentionItem:
    item = await session.get(AttentionItem, item_id)
    if item is None:
        raise NotFound("Attention item not found.")
    return item


async def search(
    session: UnitOfWork, params: PageParams, *, kind: str | None = None,
    status: str | None = None, ref: str | None = None,
) -> tuple[list[AttentionItem], str | None]:
    stmt = select(AttentionItem)
    if kind:
        stmt = stmt.where(col(AttentionItem.kind) == kind)
    if status:
        stmt = stmt.where(col(AttentionItem.status) == status)
    if ref:
        stmt = stmt.where(col(AttentionItem.ref) == ref)
    rows = (await session.exec(apply(stmt, col(AttentionItem.id), params))).all()  # type: ignore[call-overload]
    return split(rows, params, lambda item: item.id)


async def counts(session: UnitOfWork) -> dict[tuple[str, str], int]:
    """Items by (kind, status), for metrics."""
    rows = await session.execute(
        select(AttentionItem.kind, AttentionItem.status, func.count())
        .group_by(col(AttentionItem.kind), col(AttentionItem.status))
    )
    return {(kind, status): int(count) for kind, status, count in rows.all()}


async def parked_by_kind(session: UnitOfWork) -> dict[str, int]:
    """Open items (parked, not yet looked at) by kind, for health."""
    rows = await session.execute(
        select(AttentionItem.kind, func.count())
        .where(col(AttentionItem.status) == OPEN)
        .group_by(col(AttentionItem.kind))
    )
    return {kind: int(count) for kind, count in rows.all()}


async def retry(session: UnitOfWork, item: AttentionItem, by: str | None,
                now: datetime | None = None) -> AttentionItem:
    """Release parked work: its sweeper re-drives it within seconds; a new failure starts a
    new count."""
    if item.status not in PARKED:
        raise Conflict(f"Only parked work can be retried (this one is {item.status}).")
    item.status, item.resolved_at, item.resolved_by = RETRIED, now or utcnow(), by
    session.add(item)
    await session.flush()
    return item


async def dismiss(session: UnitOfWork, item: AttentionItem, by: str | None,
                  now: datetime | None = None) -> AttentionItem:
    """Acknowledge parked work and leave it parked (nothing will re-drive it)."""
    if item.status != OPEN:
        raise Conflict(f"Only open items can be dismissed (this one is {item.status}).")
    item.status, item.resolved_at, item.resolved_by = DISMISSED, now or utcnow(), by
    session.add(item)
    await session.flush()
    return item
