"""Headers every response carries: ``X-Request-ID`` and, on keyed routes, ``X-RateLimit-*``.

Done in one ASGI middleware so that error responses, including Litestar's own 404/405/413,
get them exactly like successful ones.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.ids import new_id
from app.ratelimit.headers import headers_for_scope

_SAFE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _SAFE.match(incoming) else new_id("req")
        state: dict[str, Any] = scope.setdefault("state", {})  # type: ignore[typeddict-item]
        state["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                headers["X-Request-ID"] = request_id
                for name, value in headers_for_scope(state).items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def request_id_of(request: Request[Any, Any, Any]) -> str:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else ""
