"""Refuse input no part of passgate can take safely, before any of it is decoded or stored.

- NUL characters. PostgreSQL text cannot hold U+0000: a NUL in a name, e-mail, query filter or
  path id made the driver raise a data error, which surfaced as a 500. SQLite would have stored
  it instead, so the same request behaved differently per backend. Rejecting it at the edge
  gives one answer, a 400, everywhere.
- JSON bodies nested deeper than :data:`~app.http.json_depth.MAX_JSON_DEPTH`, on every route
  that decodes its body. The decoder recurses per level; a body of nested brackets took the
  process down. The gateway decodes the bodies it forwards itself (see
  :func:`app.gateway.pricing.requested_model`): they need not be JSON at all.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from app.errors import ValidationFailed
from app.http.json_depth import MAX_JSON_DEPTH, nesting_exceeds

# A JSON ``\\u0000`` escape that is not itself escaped (preceded by an even run of backslashes).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def check_input(request: Request[Any, Any, Any]) -> None:
    """Run by every route's ``before_request`` hook, before dependencies (and so before auth)."""
    if "\x00" in request.scope["path"] or b"%00" in request.scope.get("query_string", b""):
        raise ValidationFailed("The request contains a NUL character.")
    if request.method in _BODY_METHODS:
        body = await request.body()
        if b"\\u0000" in body and _ESCAPED_NUL.search(body):
            raise ValidationFailed("The request body contains a NUL character (\\u0000).")
        if request.route_handler.parsed_data_field is not None and nesting_exceeds(body):
            raise ValidationFailed(
                f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep."
            )
