"""One webhook delivery attempt over HTTP, guarded against SSRF at connect time.

:class:`WebhookSender` owns a pooled ``httpx.AsyncClient``; share one per worker process.
:meth:`WebhookSender.send` makes exactly one attempt and always returns a
:class:`DeliveryResult`: network trouble, timeouts, redirects and refusals are results, not
exceptions, so the caller can record every attempt the same way.

DNS rebinding: httpx resolves names deep inside httpcore, after any check done beforehand, so a
check-then-send guard races the DNS. Instead the client's connection pool gets a network backend
(:class:`GuardedNetworkBackend`) that, for every new connection, resolves the host through
:class:`~webhooks.ssrf.SSRFPolicy`, refuses it unless every address passes, and opens the TCP
connection to one of those vetted addresses. The URL itself is untouched, so the ``Host`` header,
the TLS SNI name and certificate verification all still use the hostname, and the pool keys
connections by hostname (a TLS session is never shared between two hostnames).
"""

from __future__ import annotations

import asyncio
import codecs
import email.utils
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Literal

import httpcore
import httpx
import msgspec

from webhooks.ssrf import HostResolutionError, SSRFPolicy, UnsafeURLError, parse_webhook_url

__all__ = [
    "DeliveryResult",
    "ErrorKind",
    "GuardedNetworkBackend",
    "TransportConfig",
    "WebhookSender",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)

ErrorKind = Literal["ssrf", "dns", "connect", "tls", "timeout", "redirect", "http", "protocol"]


class TransportConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Limits of one attempt and of the shared connection pool."""

    total_timeout: float = 15.0
    connect_timeout: float = 5.0
    preview_bytes: int = 1024
    max_connections: int = 100
    max_keepalive_connections: int = 20
    keepalive_expiry: float = 30.0


class DeliveryResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one attempt produced; everything the deliveries log stores.

    ``retry_after`` is the receiver's ``Retry-After`` in seconds (either form), ``gone`` is set
    for 410 (the caller disables the endpoint), ``response_body`` is the first
    ``preview_bytes`` of the body decoded as UTF-8 with replacement characters.
    """

    success: bool
    status_code: int | None = None
    latency_ms: int = 0
    response_body: str = ""
    error: str | None = None
    error_kind: ErrorKind | None = None
    retry_after: float | None = None
    gone: bool = False


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delay-seconds or HTTP-date); ``None`` if unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        try:
            return float(int(text))
        except ValueError:  # absurdly many digits
            return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that only connects to addresses the policy accepts."""

    def __init__(
        self, policy: SSRFPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        addresses = await self._policy.resolve_checked(host, port, max_seconds=timeout)
        last_error: Exception | None = None
        # Sequential fallback over the vetted addresses; good enough for webhooks, where a few
        # seconds of connect latency on a half-broken dual-stack host don't matter.
        for address in addresses:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise httpcore.ConnectTimeout("Timed out connecting to the webhook host.")
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # resolve_checked never returns an empty list
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Webhooks are only delivered over TCP.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its pool rebuilt around :class:`GuardedNetworkBackend`.

    httpx 0.28 has no public hook for the network backend, so this swaps ``_pool``, the one
    attribute its request path uses. ``tests/webhooks_lib/test_transport.py`` fails loudly if an
    httpx upgrade stops honouring it (the rebinding, pinning and TLS tests fail).
    """

    def __init__(
        self,
        *,
        policy: SSRFPolicy,
        config: TransportConfig,
        verify: ssl.SSLContext | bool,
    ) -> None:
        limits = httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.max_keepalive_connections,
            keepalive_expiry=config.keepalive_expiry,
        )
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedNetworkBackend(policy),
        )


def _preview(data: bytes, truncated: bool) -> str:
    # An incremental decoder drops a multi-byte character cut in half at the limit instead of
    # turning it into garbage; NULs go because PostgreSQL text columns reject them.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=not truncated)
    return text.replace("\x00", "\ufffd")


def _describe_connect_error(exc: BaseException) -> tuple[ErrorKind, str]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connect", "Connection refused."
        if isinstance(current, ssl.SSLError):
            return "tls", f"TLS handshake failed: {current.reason or current}."
        current = current.__cause__ or current.__context__
    text = str(exc).strip() or type(exc).__name__
    if "refused" in text.lower():
        return "connect", "Connection refused."
    return "connect", f"Connection failed: {text}"


class WebhookSender:
    """Sends webhook attempts through one pooled, SSRF-guarded client.

    ``verify`` is for tests that serve TLS with their own CA; production keeps the default.
    """

    def __init__(
        self,
        policy: SSRFPolicy,
        config: TransportConfig | None = None,
        *,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._config = config or TransportConfig()
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(policy=policy, config=self._config, verify=verify),
            timeout=httpx.Timeout(
                self._config.total_timeout,
                connect=self._config.connect_timeout,
            ),
            follow_redirects=False,
            # No proxies or .netrc credentials from the environment: a proxy would make the
            # connect-time guard meaningless, and netrc would leak credentials to receivers.
            trust_env=False,
            # A compressed body can expand far past the 1 KB we keep.
            headers={"Accept-Encoding": "identity"},
            # One client delivers to every endpoint: a cookie one receiver sets must never be
            # sent to another on the same host, so the jar refuses to keep any.
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        )

    @property
    def config(self) -> TransportConfig:
        return self._config

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        """POST ``body`` to ``url`` once. Never raises for network or receiver failures."""
        started = time.perf_counter()

        def elapsed_ms() -> int:
            return int((time.perf_counter() - started) * 1000)

        def failure(kind: ErrorKind, message: str) -> DeliveryResult:
            return DeliveryResult(
                success=False, latency_ms=elapsed_ms(), error=message, error_kind=kind
            )

        host = "?"
        try:
            host = parse_webhook_url(url).host
            async with asyncio.timeout(self._config.total_timeout):
                return await self._attempt(url, body, headers, elapsed_ms)
        except httpx.InvalidURL:
            return failure("ssrf", "Webhook URL is not a valid URL.")
        except HostResolutionError as exc:
            return failure("dns", exc.message)
        except UnsafeURLError as exc:
            if exc.address is not None:
                # The host only: query strings of webhook URLs often carry tokens.
                logger.warning("webhook delivery refused: %s resolves to %s", host, exc.address)
            return failure("ssrf", exc.message)
        except (TimeoutError, httpx.TimeoutException):
            return failure("timeout", f"Timed out after {self._config.total_timeout:g} s.")
        except httpx.ConnectError as exc:
            return failure(*_describe_connect_error(exc))
        except (httpx.ProtocolError, httpx.DecodingError) as exc:
            return failure("protocol", f"Invalid HTTP response: {exc}")
        except (httpx.HTTPError, OSError) as exc:
            return failure("connect", f"Request failed: {exc}")

    async def _attempt(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        elapsed_ms: Callable[[], int],
    ) -> DeliveryResult:
        limit = self._config.preview_bytes
        async with self._client.stream("POST", url, content=body, headers=dict(headers)) as resp:
            buffer = bytearray()
            truncated = False
            async for chunk in resp.aiter_raw():
                buffer += chunk
                if len(buffer) >= limit:
                    # Stop reading: the rest may be huge, and the pool drops this connection.
                    truncated = True
                    break
            preview = _preview(bytes(buffer[:limit]), truncated)
        latency = elapsed_ms()
        status = resp.status_code
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if 200 <= status < 300:
            return DeliveryResult(
                success=True,
                status_code=status,
                latency_ms=latency,
                response_body=preview,
                retry_after=retry_after,
            )
        if 300 <= status < 400:
            location = resp.headers.get("Location", "")[:200]
            where = f" to {location}" if location else ""
            error = f"Redirect ({status}{where}) not followed; use the final URL."
            kind: ErrorKind = "redirect"
        else:
            error = f"Receiver answered HTTP {status}."
            kind = "http"
        return DeliveryResult(
            success=False,
            status_code=status,
            latency_ms=latency,
            response_body=preview,
            error=error,
            error_kind=kind,
            retry_after=retry_after,
            gone=status == 410,
        )
