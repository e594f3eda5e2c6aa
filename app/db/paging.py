"""``limit`` + opaque ``cursor`` pagination over creation-sortable ids, newest first."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Select

from app.errors import ValidationFailed

T = TypeVar("T")
_ID = re.compile(r"^[A-Za-z0-9_]{1,61}$")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Page(msgspec.Struct, rename="camel"):
    data: list[Any]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    after_id: str | None


def page_params(limit: int | None, cursor: str | None) -> PageParams:
    if limit is None:
        limit = DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}.")
    return PageParams(limit=limit, after_id=decode_cursor(cursor) if cursor else None)


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed("cursor is not valid.") from None
    # Only ever an id we produced: anything else (control characters included) never reaches SQL.
    if not raw.startswith("v1:") or not _ID.match(raw[3:]):
        raise ValidationFailed("cursor is not valid.")
    return raw[3:]


def apply(stmt: Select[Any], id_column: Any, params: PageParams) -> Select[Any]:
    """Newest first; one extra row tells whether another page exists."""
    if params.after_id is not None:
        stmt = stmt.where(id_column < params.after_id)
    return stmt.order_by(id_column.desc()).limit(params.limit + 1)


def split(rows: Sequence[T], params: PageParams, id_of: Any) -> tuple[list[T], str | None]:
    items = list(rows[: params.limit])
    more = len(rows) > params.limit
    return items, (encode_cursor(id_of(items[-1])) if more and items else None)
