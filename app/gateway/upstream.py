"""The upstream side of a gateway call: one pooled HTTP client, and what a failure is.

Redirects are not followed and the environment's proxies are ignored; a failure to reach the
upstream, or to hear from it in time, is an :class:`UpstreamFailure`, which the caller gets as
a ``502 UPSTREAM_ERROR`` (:func:`upstream_error`), never charged.
"""

from __future__ import annotations

import logging
import time
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from app.errors import UpstreamError
from app.gateway.headers import request_headers
from app.gateway.incoming import IncomingCall
from app.gateway.providers import Provider
from app.settings import Settings

log = logging.getLogger("passgate.gateway")


class UpstreamFailure(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, reason: str, message: str, latency_ms: int) -> None:
        super().__init__(message)
        self.reason = reason  # timeout, connect_error, upstream_error
        self.message = message
        self.latency_ms = latency_ms


# Pooled clients per process, taken in turn. httpcore's pool checks every one of its
# connections on each request and each release (``has_expired`` reads socket state through
# anyio's typed attributes), so one pool of N keep-alive connections costs O(N) per call: with
# 32 calls in flight that was a third of a gateway call's CPU. Shards of N/8 cost an eighth.
SHARDS = 8


class UpstreamClient:
    """The pooled HTTP clients of a process, for every provider.

    Created on first use (inside the running event loop) and closed with the runtime.
    Redirects are not followed (a 3xx goes back to the caller), and proxies from the
    environment are ignored: upstream traffic goes where the provider says.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: list[httpx.AsyncClient] = []
        self._turn = 0

    @property
    def client(self) -> httpx.AsyncClient:
        """The next of the pooled clients."""
        if not self._clients:
            # Never more shards than connections allowed: the shards' limits add up to them.
            shards = max(1, min(SHARDS, self._settings.gateway_max_connections))
            self._clients = [self._new_client(shards) for _ in range(shards)]
        self._turn = (self._turn + 1) % len(self._clients)
        return self._clients[self._turn]

    def _new_client(self, shards: int) -> httpx.AsyncClient:
        settings = self._settings
        client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            # One client serves every caller: a cookie an upstream sets on one call must never
            # ride along on another's, so the jar refuses to keep any.
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
            limits=httpx.Limits(
                max_connections=settings.gateway_max_connections // shards,
                max_keepalive_connections=-(-settings.gateway_max_keepalive_connections
                                            // shards),
            ),
        )
        # httpx adds Accept, Accept-Encoding and User-Agent of its own; the caller's (or none)
        # must reach the upstream instead, or an upstream would compress a body for a caller
        # that never asked for it.
        for name in ("accept", "accept-encoding", "user-agent"):
            del client.headers[name]
        return client

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()

    def timeout(self, provider: Provider) -> httpx.Timeout:
        total = provider.timeout_seconds
        return httpx.Timeout(
            total, connect=min(total, self._settings.gateway_connect_timeout_seconds)
        )

    async def open(self, call: IncomingCall, provider: Provider) -> tuple[httpx.Response, int]:
        """Send the call and wait for the response headers; the body stays unread.

        Returns the open response and the milliseconds until its headers arrived.
        """
        url = provider.base_url + call.path
        if call.query:
            url += "?" + call.query.decode("latin-1")
        client = self.client
        request = client.build_request(
            call.method,
            url,
            headers=request_headers(call, provider),
            content=call.body or None,
            timeout=self.timeout(provider),
        )
        started = time.perf_counter()
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamFailure(
                "timeout",
                f"The upstream provider '{provider.name}' timed out.",
                _elapsed_ms(started),
            ) from None
        except httpx.ConnectError:
            raise UpstreamFailure(
                "connect_error",
                f"The upstream provider '{provider.name}' could not be reached.",
                _elapsed_ms(started),
            ) from None
        except httpx.HTTPError as exc:
            log.warning("gateway call to %s failed: %s", provider.name, type(exc).__name__)
            raise UpstreamFailure(
                "upstream_error",
                f"The upstream provider '{provider.name}' failed.",
                _elapsed_ms(started),
            ) from None
        return response, _elapsed_ms(started)


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)



def upstream_error(
    failure: UpstreamFailure | None,
    provider: str,
    *,
    status: int | None = None,
    request_id: str | None = None,
    retry_after: str | None = None,
) -> UpstreamError:
    """The 502 the caller gets; the upstream's own error body is not passed on."""
    if failure is not None:
        return UpstreamError(
            failure.message, details={"provider": provider, "reason": failure.reason}
        )
    details: dict[str, object] = {
        "provider": provider,
        "reason": "upstream_status",
        "upstreamStatus": status,
    }
    if request_id:
        details["upstreamRequestId"] = request_id
    return UpstreamError(
        f"The upstream provider '{provider}' answered {status}.",
        details=details,
        headers={"Retry-After": retry_after} if retry_after else None,
    )
