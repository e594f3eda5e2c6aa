"""The outermost layer of the API: each request's log scope, access line, count and duration.

It wraps Litestar's whole handler (``observe_requests``) rather than being an app
middleware: Litestar runs app middleware per route, so answers given before any route was
found (404, 405, a bad Host) would be neither counted nor carry a request id in their logs.

Requests are labelled by the route *template* Litestar matched (``/v1/api-keys/{key_id:str}``),
never by the path: paths are unbounded, and some carry secrets (a claim code). Requests that
matched no route are ``unmatched``; a method outside HTTP's own is ``OTHER``.

The access line (logger ``passgate.access``, INFO) replaces uvicorn's: it names the route
template rather than the path, and carries the request's ids (request, key, payment...).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.http.request_id import ensure_request_id
from app.logs import context
from app.metrics.instruments import HTTP_DURATION, HTTP_REQUESTS

access_log = logging.getLogger("passgate.access")

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
                      "CONNECT"})


class RequestObserver:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The labelled children, found once: ``labels()`` takes a lock and builds a tuple.
        self._series: dict[tuple[str, str, int], tuple[tuple[str, str, str], Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = context.open_scope(request_id=ensure_request_id(scope))
        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            labels = self._record(scope, status, seconds)
            # Still in the request's scope: the line carries its ids.
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("%s %s %d %.1f ms", labels[0], labels[1], status,
                                seconds * 1000)
            context.close_scope(token)

    def _record(self, scope: Scope, status: int, seconds: float) -> tuple[str, str]:
        """Count the request; returns its method and route labels."""
        method = str(scope.get("method", ""))
        key = (method, scope.get("path_template") or UNMATCHED, status)
        series = self._series.get(key)
        if series is None:
            labels = (method if method in _METHODS else "OTHER", key[1], str(status))
            series = (labels, HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
            # Only known methods are remembered: a flood of made-up ones must not grow this.
            if method in _METHODS:
                self._series[key] = series
        series[1].inc()
        series[2].observe(seconds)
        return series[0][0], series[0][1]


def observe_requests(app: Litestar) -> None:
    """Put :class:`RequestObserver` around everything ``app`` does for a request."""
    app.asgi_handler = RequestObserver(app.asgi_handler)
