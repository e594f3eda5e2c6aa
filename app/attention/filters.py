"""What sweepers leave alone: work parked for an operator (used by every area that re-drives)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from app.db.models.attention import PARKED, AttentionItem
from app.db.uow import UnitOfWork


def parked(kind: str, ref: Any) -> ColumnElement[bool]:
    """True for rows whose work of ``kind`` (``ref``: their id column) waits for an operator."""
    return exists().where(
        col(AttentionItem.kind) == kind,
        col(AttentionItem.ref) == ref,
        col(AttentionItem.status).in_(PARKED),
    )


def not_parked(kind: str, ref: Any) -> ColumnElement[bool]:
    return ~parked(kind, ref)


async def parked_refs(session: UnitOfWork, kind: str, refs: Sequence[str]) -> set[str]:
    """Which of ``refs`` wait for an operator."""
    if not refs:
        return set()
    rows = await session.exec(
        select(AttentionItem.ref).where(
            col(AttentionItem.kind) == kind,
            col(AttentionItem.ref).in_(list(refs)),
            col(AttentionItem.status).in_(PARKED),
        )
    )
    return set(rows.all())
