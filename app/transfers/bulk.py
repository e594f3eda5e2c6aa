"""Driver-level bulk INSERT for the watcher's backfills.

A backfill stores tens of thousands of transfers per range. Given a list of dicts,
``session.execute`` builds and type-processes a parameter set per row (ids, datetimes, booleans),
which costs the watcher more than SQLite spends writing the rows. Here the statement text is
built once per dialect and the values every row shares are type-processed once. SQLite (in
process) gets ``INSERT ... SELECT`` over a multi-row ``VALUES`` of only the per-row columns,
with the shared values bound once per statement: about a third less than the same rows through
the driver's ``executemany`` (one step, reset and re-bind per row), and another quarter less
than binding every shared value again in every row. PostgreSQL gets one statement over
``unnest`` of one array per column, because an executemany there still costs a statement
execution per row on the server.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from app.db.uow import UnitOfWork

_Processor = Callable[[Any], Any]

# Rows per multi-row VALUES statement, and the bound parameters SQLite takes in one statement
# (32,766 since 3.32; 999 before).
_VALUES_ROWS = 2_000
_MAX_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
# Where a statement's rows of placeholders go (never valid SQL, never in a quoted name).
_VALUES_SLOT = "\x00rows\x00"


@dataclass(slots=True)
class _Prepared:
    # The whole statement (PostgreSQL ``unnest``), else the text around its VALUES rows.
    sql: str
    # One array parameter per row column (PostgreSQL ``unnest``), else rows of placeholders.
    arrays: bool
    # Type processors of the per-row columns (None: the driver takes the Python value as is).
    row_processors: tuple[_Processor | None, ...]
    # Multi-row VALUES: one row's placeholders, rows per statement, statements by row count.
    values_row: str = ""
    per_statement: int = 1
    by_rows: dict[int, str] = field(default_factory=dict)

    def values_sql(self, rows: int) -> str:
        sql = self.by_rows.get(rows)
        if sql is None:
            head, _, tail = self.sql.partition(_VALUES_SLOT)
            sql = self.by_rows[rows] = head + ", ".join([self.values_row] * rows) + tail
        return sql


class BulkInsert:
    """``INSERT ... ON CONFLICT (<key>) DO NOTHING`` of many rows into one table.

    Each row is a tuple of ``row_columns`` values; ``constants`` (same for every row) complete
    it. Both SQLite and PostgreSQL spell the conflict clause the same way.
    """

    def __init__(
        self, table: sa.Table, row_columns: Sequence[str], conflict: Sequence[str]
    ) -> None:
        self.table = table
        self.row_columns = tuple(row_columns)
        self.conflict = tuple(conflict)
        self._prepared: dict[tuple[str, str, tuple[str, ...]], _Prepared] = {}

    async def execute(
        self, session: UnitOfWork, rows: Sequence[tuple[Any, ...]], constants: Mapping[str, Any]
    ) -> int:
        """Insert ``rows``; returns how many were inserted (the others' keys existed)."""
        if not rows:
            return 0
        connection = await session.connection()
        dialect = connection.dialect
        prepared = self._prepare(dialect, tuple(constants))
        shared = tuple(
            _process(self.table.c[name], dialect, value) for name, value in constants.items()
        )
        if any(prepared.row_processors):
            rows = [_apply(prepared.row_processors, row) for row in rows]
        if prepared.arrays:
            columns = [list(values) for values in zip(*rows, strict=True)]
            result = await connection.exec_driver_sql(prepared.sql, (*columns, *shared))
            # Rows skipped by ON CONFLICT DO NOTHING are not in the count ("INSERT 0 n").
            return int(result.rowcount)
        inserted, step = 0, prepared.per_statement
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            # The shared values' placeholders come first in the text (the SELECT list).
            params = shared + tuple(itertools.chain.from_iterable(chunk))
            result = await connection.exec_driver_sql(prepared.values_sql(len(chunk)), params)
            # SQLite's changes(): rows skipped by ON CONFLICT DO NOTHING are not counted.
            inserted += int(result.rowcount)
        return inserted

    def _prepare(self, dialect: Dialect, constant_names: tuple[str, ...]) -> _Prepared:
        key = (dialect.name, dialect.paramstyle, constant_names)
        prepared = self._prepared.get(key)
        if prepared is None:
            names = self.row_columns + constant_names
            per_row = len(self.row_columns)
            quote = dialect.identifier_preparer.quote
            marks = _placeholders(dialect.paramstyle, len(names))
            arrays = dialect.name == "postgresql"
            if arrays:
                # Explicit casts: nothing else tells PostgreSQL the parameters' types here.
                casts = [
                    f"{mark}::{self.table.c[name].type.compile(dialect=dialect)}"
                    for mark, name in zip(marks, names, strict=True)
                ]
                unnest = ", ".join(f"{cast}[]" for cast in casts[:per_row])
                # Only placeholders and the table's own type names go into the text.
                select_list = ", ".join(["rows.*", *casts[per_row:]])
                source = f"SELECT {select_list} FROM unnest({unnest}) AS rows"  # noqa: S608
            else:
                if dialect.paramstyle != "qmark":
                    raise NotImplementedError("bulk insert: multi-row VALUES needs qmark")
                # SQLite names a VALUES list's columns column1, column2...; "WHERE true" keeps
                # the parser from reading the upsert's ON as a join constraint.
                select_list = ", ".join(
                    [f"column{i}" for i in range(1, per_row + 1)] + marks[per_row:]
                )
                source = f"SELECT {select_list} FROM (VALUES {_VALUES_SLOT}) WHERE true"  # noqa: S608
            sql = (
                f"INSERT INTO {quote(self.table.name)} ({', '.join(quote(n) for n in names)}) "
                f"{source} ON CONFLICT ({', '.join(quote(n) for n in self.conflict)}) DO NOTHING"
            )
            processors = tuple(_processor(self.table.c[n], dialect) for n in self.row_columns)
            if arrays:
                prepared = _Prepared(sql, arrays, processors)
            else:
                room = _MAX_VARIABLES - len(constant_names)
                prepared = _Prepared(
                    sql, arrays, processors, values_row=f"({', '.join(marks[:per_row])})",
                    per_statement=max(1, min(_VALUES_ROWS, room // per_row)),
                )
            self._prepared[key] = prepared
        return prepared


def _placeholders(paramstyle: str, count: int) -> list[str]:
    # Positional styles only: the rows are tuples.
    if paramstyle == "qmark":
        return ["?"] * count
    if paramstyle == "numeric_dollar":
        return [f"${i}" for i in range(1, count + 1)]
    if paramstyle == "numeric":
        return [f":{i}" for i in range(1, count + 1)]
    if paramstyle in ("format", "pyformat"):
        return ["%s"] * count
    raise NotImplementedError(f"bulk insert: unsupported paramstyle {paramstyle!r}")


def _processor(column: sa.Column[Any], dialect: Dialect) -> _Processor | None:
    processor: _Processor | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _process(column: sa.Column[Any], dialect: Dialect, value: Any) -> Any:
    processor = _processor(column, dialect)
    return value if processor is None else processor(value)


def _apply(processors: tuple[_Processor | None, ...], row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        value if processor is None else processor(value)
        for processor, value in zip(processors, row, strict=True)
    )
