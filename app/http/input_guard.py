"""Refuse NUL characters in a request before any of it reaches the database.

PostgreSQL text cannot hold U+0000: a NUL in a name, e-mail, query filter or path id made the
driver raise a data error, which surfaced as a 500. SQLite would have stored it instead, so the
same request behaved differently per backend. Rejecting it at the edge gives one answer, a 400,
everywhere.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from app.errors import ValidationFailed

# A JSON ``\\u0000`` escape that is not itself escaped (preceded by an even run of backslashes).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def reject_nul_characters(request: Request[Any, Any, Any]) -> None:
    """App-level ``before_request`` hook; runs before dependencies (and so before auth)."""
    if "\x00" in request.scope["path"] or b"%00" in request.scope.get("query_string", b""):
        raise ValidationFailed("The request contains a NUL character.")
    if request.method in _BODY_METHODS:
        body = await request.body()
        if b"\\u0000" in body and _ESCAPED_NUL.search(body):
            raise ValidationFailed("The request body contains a NUL character (\\u0000).")
