"""The upstream side of a gateway call: the pooled HTTP connections, and what a failure is.

Redirects are not followed and the environment's proxies are ignored; a failure to reach the
upstream, or to hear from it in time, is an :class:`UpstreamFailure`, which the caller gets as
a ``502 UPSTREAM_ERROR`` (:func:`upstream_error`), never charged.
"""

from __future__ import annotations

import logging
import time

import httpx

from app.errors import UpstreamError, ValidationFailed
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


# Connection pools per process, taken in turn. httpcore's pool checks every one of its
# connections on each request and each release (``has_expired`` reads socket state through
# anyio's typed attributes), so one pool of N keep-alive connections costs O(N) per call: with
# 32 calls in flight that was a third of a gateway call's CPU. Shards of N/8 cost an eighth.
SHARDS = 8


class UpstreamClient:
    """The pooled HTTP connections of a process, for every provider.

    Calls go straight to httpx's connection-pool transports (its public transport API), not
    through an ``httpx.AsyncClient``: a proxy wants none of a client's layers (base URL and
    default headers to merge, auth, redirects, a cookie jar to consult and fill) and they were
    a fifth of a call's CPU. So redirects are never followed (a 3xx goes back to the caller), no
    cookie is ever kept or added (a cookie an upstream set on one caller's call must never ride
    on another's), no header is invented (the caller's Accept, Accept-Encoding and User-Agent,
    or none, reach the upstream), and proxies from the environment are ignored: upstream
    traffic goes where the provider says. Created on first use (inside the running event loop)
    and closed with the runtime.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pools: list[httpx.AsyncHTTPTransport] = []
        self._turn = 0

    def _pool(self) -> httpx.AsyncHTTPTransport:
        """The next of the connection pools."""
        if not self._pools:
            settings = self._settings
            # Never more shards than connections allowed: the shards' limits add up to them.
            shards = max(1, min(SHARDS, settings.gateway_max_connections))
            limits = httpx.Limits(
                max_connections=settings.gateway_max_connections // shards,
                max_keepalive_connections=-(-settings.gateway_max_keepalive_connections
                                            // shards),
            )
            self._pools = [httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
                           for _ in range(shards)]
        self._turn = (self._turn + 1) % len(self._pools)
        return self._pools[self._turn]

    async def aclose(self) -> None:
        pools, self._pools = self._pools, []
        for pool in pools:
            await pool.aclose()

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
        started = time.perf_counter()
        try:
            request = httpx.Request(
                call.method,
                url,
                headers=request_headers(call, provider),
                content=call.body or None,
                extensions={"timeout": self.timeout(provider).as_dict()},
            )
            response = await self._pool().handle_async_request(request)
        except httpx.InvalidURL:
            # Nothing was sent: the caller's path or query is not one a URL can carry.
            raise ValidationFailed("The call's path or query cannot be sent upstream.") from None
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
        response.request = request
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
