"""The common queries, written once: get-or-404, optional equality filters, a page of rows.

Repositories build on these instead of repeating ``session.get`` + ``if None: raise``, an
``if value: stmt = stmt.where(...)`` chain per filter, or the ``apply``/``split`` pair of
:mod:`app.db.paging` on every list.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlmodel import SQLModel

from app.db.paging import PageParams, apply, split
from app.db.uow import UnitOfWork
from app.errors import NotFound

M = TypeVar("M", bound=SQLModel)
S = TypeVar("S", bound=Select[Any])


async def get_or_404(session: UnitOfWork, model: type[M], ident: Any, what: str) -> M:
    """The row ``ident`` of ``model``, or NOT_FOUND naming ``what`` ("API key", "Payment")."""
    row = await session.get(model, ident)
    if row is None:
        raise NotFound(f"{what} not found.")
    return row


def where_equal(stmt: S, *conditions: tuple[Any, object | None]) -> S:
    """``stmt`` with ``column == value`` for each ``(column, value)`` whose value is not None
    (a filter the caller left out)."""
    for column, value in conditions:
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


async def page(
    session: UnitOfWork, stmt: Select[Any], id_column: Any, params: PageParams
) -> tuple[list[Any], str | None]:
    """One page of ``stmt``'s rows, newest first by ``id_column``, and the next cursor."""
    rows = (await session.exec(apply(stmt, id_column, params))).all()  # type: ignore[call-overload]
    return split(rows, params, lambda row: getattr(row, id_column.key))
