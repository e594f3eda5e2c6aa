"""The SQL of parked work: the per-work failure row, lists and counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from app.db.models.attention import OPEN, RETRYING, AttentionItem
from app.db.paging import PageParams
from app.db.queries import get_or_404, page, where_equal
from app.db.uow import UnitOfWork
from app.ids import new_id


async def locked_item(
    session: UnitOfWork, kind: str, ref: str, actor: str, now: datetime
) -> AttentionItem:
    """The failure row of ``kind``/``ref``, created when missing (a concurrent creator wins
    harmlessly), locked for this transaction and read afresh."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(AttentionItem)
        .values(id=new_id("att"), kind=kind, ref=ref, actor=actor,
                status=RETRYING, attempts=0, error_type="", error="",
                first_failed_at=now, last_failed_at=now)
        .on_conflict_do_nothing(index_elements=["kind", "ref"])
    )
    return (
        await session.exec(
            select(AttentionItem)
            .where(col(AttentionItem.kind) == kind, col(AttentionItem.ref) == ref)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()


async def get(session: UnitOfWork, item_id: str) -> AttentionItem:
    return await get_or_404(session, AttentionItem, item_id, "Attention item")


async def search(
    session: UnitOfWork, params: PageParams, *, kind: str | None = None,
    status: str | None = None, ref: str | None = None,
) -> tuple[list[AttentionItem], str | None]:
    # An empty filter is no filter, as a missing one.
    stmt = where_equal(
        select(AttentionItem),
        (col(AttentionItem.kind), kind or None),
        (col(AttentionItem.status), status or None),
        (col(AttentionItem.ref), ref or None),
    )
    return await page(session, stmt, col(AttentionItem.id), params)


async def counts(session: UnitOfWork) -> dict[tuple[str, str], int]:
    rows = await session.execute(
        select(AttentionItem.kind, AttentionItem.status, func.count())
        .group_by(col(AttentionItem.kind), col(AttentionItem.status))
    )
    return {(kind, status): int(count) for kind, status, count in rows.all()}


async def open_by_kind(session: UnitOfWork) -> dict[str, int]:
    rows = await session.execute(
        select(AttentionItem.kind, func.count())
        .where(col(AttentionItem.status) == OPEN)
        .group_by(col(AttentionItem.kind))
    )
    return {kind: int(count) for kind, count in rows.all()}
