"""Forwarding one call upstream and relaying the answer: headers, URL, streaming, failures.

Header policy (both directions work on raw ``(name, value)`` byte pairs, names lower-case):

- hop-by-hop headers (RFC 9110 section 7.6.1, plus any listed in ``Connection``) never cross;
- **to the upstream**: the caller's credentials and passgate's own protocol headers are dropped
  (``X-API-Key``, ``Authorization``, ``X-Master-Key``, ``Cookie``, ``X-Tenant-ID``, x402
  payment headers, claim tokens), as are client-supplied forwarding headers (nobody's address is
  disclosed, and a caller cannot forge one); the provider's configured headers are then set,
  replacing any caller header of the same name; ``X-Request-ID`` carries passgate's id;
- **to the caller**: cookies, authentication challenges, ``Server``/``Date``/``Alt-Svc``
  and the names passgate sets itself (request id, rate limits, ``X-Gateway-*``, x402 payment
  answers) are dropped; the upstream's request id is returned as ``X-Upstream-Request-ID``.

The path is forwarded percent-encoded as received, but with repeated slashes merged and ``;``
path parameters cut (``providers.normalised_path``): the upstream gets the path it is priced on.

Everything else passes through unchanged, including ``Accept-Encoding`` and
``Content-Encoding``: bodies are relayed as raw bytes, never decoded or buffered.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import unquote

import anyio
import httpx
import msgspec
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Scope, Send

from app.errors import UpstreamError, ValidationFailed
from app.gateway.providers import Provider, normalised_path
from app.http.json_depth import nesting_exceeds
from app.settings import Settings

log = logging.getLogger("passgate.gateway")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)

REQUEST_DROP = HOP_BY_HOP | frozenset(
    {
        # Set by the HTTP client for the upstream connection and body.
        b"host",
        b"content-length",
        b"expect",
        # The caller's credentials for passgate: they must never reach an upstream.
        b"x-api-key",
        b"authorization",
        b"x-master-key",
        b"cookie",
        b"x-tenant-id",
        b"x-claim-token",
        b"payment-signature",
        b"x-payment",
        b"x-payment-chain",
        # Client-claimed addresses and routing: not passed on, and not forgeable.
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-real-ip",
        # Replaced by passgate's own request id.
        b"x-request-id",
    }
)

UPSTREAM_REQUEST_ID = b"x-upstream-request-id"
USAGE_ID = b"x-gateway-usage-id"
COST = b"x-gateway-cost-micros"
BALANCE = b"x-gateway-balance-micros"

RESPONSE_DROP = HOP_BY_HOP | frozenset(
    {
        b"set-cookie",
        b"set-cookie2",
        b"www-authenticate",
        b"server",
        b"date",
        b"alt-svc",
        # passgate sets these itself on every response. (An upstream's own, differently named
        # limits such as ``x-ratelimit-remaining-tokens`` pass: they cannot be mistaken for
        # passgate's, and callers pace themselves by them.)
        b"x-request-id",
        b"x-ratelimit-limit",
        b"x-ratelimit-remaining",
        b"x-ratelimit-reset",
        UPSTREAM_REQUEST_ID,
        # passgate's x402 answers: an upstream's would pass for a settlement (or a challenge)
        # of passgate's, next to or instead of the real one.
        b"payment-required",
        b"payment-response",
        b"x-payment-response",
        b"x-payment-id",
        b"x-payment-status",
    }
)

# passgate's namespace (cost, balance, usage id): none of it may come from an upstream.
GATEWAY_PREFIX = b"x-gateway-"

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """What the caller asked for, as received (raw path and query, raw headers)."""

    provider: str
    method: str
    # Percent-encoded as received, "" or starting with "/".
    path: str
    query: bytes
    headers: Headers
    body: bytes
    request_id: str


# The longest path after ``/v1/gateway/{provider}`` (as sent, percent-encoded): the usage
# record's route column. Longer is a 400 before any price is quoted or payment recorded.
MAX_GATEWAY_PATH = 2048


def upstream_path(raw_path: bytes, provider: str) -> str:
    """The part of ``/v1/gateway/{provider}/...`` after the provider, still percent-encoded.

    The raw path is used (not the decoded one) so ``%2F`` and friends reach the upstream as
    the caller sent them.
    """
    path = raw_path.split(b"?", 1)[0].decode("latin-1")
    marker = f"/gateway/{provider}"
    index = path.find(marker)
    if index < 0:
        raise ValidationFailed("The gateway path is not valid.")
    rest = path[index + len(marker) :]
    if len(rest) > MAX_GATEWAY_PATH:
        raise ValidationFailed(
            f"The path after the provider is longer than {MAX_GATEWAY_PATH} characters."
        )
    if rest and not rest.startswith("/"):
        raise ValidationFailed("The gateway path is not valid.")
    check_path(rest)
    return normalised_path(rest)


def check_path(path: str) -> None:
    """Refuse dot segments (plain, encoded, or with ``;`` parameters) and control characters.

    ``/v1/gateway/p/../admin`` must not become a request to the upstream's ``/admin`` with the
    operator's credentials attached; nor may ``/..;/admin``, which servers that drop path
    parameters (and passgate's own normalisation) read as ``/../admin``.
    """
    for segment in path.split("/"):
        decoded = unquote(segment)
        if any(ord(c) < 0x20 or c == "\x7f" for c in decoded):
            raise ValidationFailed("The gateway path contains control characters.")
        for part in decoded.replace("\\", "/").split("/"):
            if part.split(";", 1)[0] in (".", ".."):
                raise ValidationFailed("The gateway path may not contain '.' or '..' segments.")


class _ModelField(msgspec.Struct):
    model: str | None = None


_model_decoder = msgspec.json.Decoder(_ModelField)


class UnreadableBody(Exception):
    """A non-empty body that is not a JSON object with a string (or null) ``model``."""


def requested_model(call: IncomingCall) -> str | None:
    """The JSON body's top-level ``model`` (for per-model prices); None without a body or model.

    Read the way upstream JSON parsers read it: Python's ``json.loads`` (and others) accept a
    UTF-8 BOM and UTF-16/32, so those are decoded first. Raises :class:`UnreadableBody` when a
    body cannot be read as a JSON object at all (form data, compressed, NaN, a non-string
    model...): the upstream may still find a model in it.
    """
    body = call.body
    if not body:
        return None
    try:
        encoding = json.detect_encoding(body)
        if encoding != "utf-8":
            # As json.loads decodes bytes; a lone surrogate then fails in msgspec (UnicodeError).
            body = body.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
        if nesting_exceeds(body):
            # Too deep to decode safely; the upstream may still take it.
            raise UnreadableBody
        return _model_decoder.decode(body).model
    except (msgspec.DecodeError, UnicodeError):
        raise UnreadableBody from None


def _connection_listed(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    listed: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            listed.update(token.strip().lower() for token in value.split(b","))
    return listed


def request_headers(call: IncomingCall, provider: Provider) -> Headers:
    """Headers for the upstream: the caller's safe ones, then the provider's injected ones."""
    extra_drop = _connection_listed(call.headers)
    injected = {name for name, _ in provider.injected_headers}
    out: Headers = []
    for name, value in call.headers:
        lower = name.lower()
        if lower in REQUEST_DROP or lower in extra_drop or lower in injected:
            continue
        out.append((lower, value))
    out.extend(provider.injected_headers)
    out.append((b"x-request-id", call.request_id.encode("latin-1")))
    return out


def response_headers(upstream: httpx.Response, provider: Provider) -> tuple[Headers, str | None]:
    """Headers for the caller, and the upstream's request id (if it sent one)."""
    raw = upstream.headers.raw
    extra_drop = _connection_listed(raw)
    out: Headers = []
    request_id: str | None = None
    for name, value in raw:
        lower = name.lower()
        if lower == provider.request_id_header and request_id is None:
            request_id = value.decode("latin-1")[:200]
        if lower in RESPONSE_DROP or lower in extra_drop or lower.startswith(GATEWAY_PREFIX):
            continue
        out.append((lower, value))
    if request_id is not None:
        out.append((UPSTREAM_REQUEST_ID, request_id.encode("latin-1")))
    return out, request_id


class UpstreamFailure(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, reason: str, message: str, latency_ms: int) -> None:
        super().__init__(message)
        self.reason = reason  # timeout, connect_error, upstream_error
        self.message = message
        self.latency_ms = latency_ms


class UpstreamClient:
    """The one pooled HTTP client of a process, for every provider.

    Created on first use (inside the running event loop) and closed with the runtime.
    Redirects are not followed (a 3xx goes back to the caller), and proxies from the
    environment are ignored: upstream traffic goes where the provider says.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            settings = self._settings
            client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                # One client serves every caller: a cookie an upstream sets on one call must
                # never ride along on another's, so the jar refuses to keep any.
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
                limits=httpx.Limits(
                    max_connections=settings.gateway_max_connections,
                    max_keepalive_connections=settings.gateway_max_keepalive_connections,
                ),
            )
            # httpx adds Accept, Accept-Encoding and User-Agent of its own; the caller's (or
            # none) must reach the upstream instead, or an upstream would compress a body for
            # a caller that never asked for it.
            for name in ("accept", "accept-encoding", "user-agent"):
                del client.headers[name]
            self._client = client
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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
        request = self.client.build_request(
            call.method,
            url,
            headers=request_headers(call, provider),
            content=call.body or None,
            timeout=self.timeout(provider),
        )
        started = time.perf_counter()
        try:
            response = await self.client.send(request, stream=True)
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


async def relay_body(response: httpx.Response, provider: str) -> AsyncIterator[bytes]:
    """The upstream body as it arrives, chunk by chunk; the connection is always released."""
    try:
        async for chunk in response.aiter_raw():
            if chunk:
                yield chunk
    except httpx.HTTPError as exc:
        # Headers (and the charge) are already out; all that can be done is to cut the body
        # short, which the caller sees as an incomplete response.
        log.warning("gateway stream from %s broke: %s", provider, type(exc).__name__)
    finally:
        # Shielded: a caller that hung up cancels this generator, and the connection must
        # still go back to the pool (or be closed) rather than leak.
        with anyio.CancelScope(shield=True):
            await response.aclose()


class RelayedResponse(ASGIStreamingResponse):
    """The upstream's answer streamed through, with exactly the given raw headers.

    Litestar's responses add a default ``Content-Type``; a relayed answer carries the
    upstream's headers (filtered), nothing invented. The upstream response is closed once this
    response has been sent or failed, or by :meth:`aclose` if it is never sent: a body nobody
    iterates never runs ``relay_body``'s cleanup, and every such leak holds one of the pool's
    connections for good.
    """

    __slots__ = ("raw_headers", "upstream")

    def __init__(
        self, *, upstream: httpx.Response, provider: str, status_code: int, raw_headers: Headers
    ) -> None:
        super().__init__(iterator=relay_body(upstream, provider), status_code=status_code)
        self.raw_headers = raw_headers
        self.upstream = upstream

    def encode_headers(self) -> list[tuple[bytes, bytes]]:
        return self.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The caller may be gone before the body starts (a failed send of the headers).
            await self.aclose()

    async def aclose(self) -> None:
        """Release the upstream connection (idempotent); for an answer that is not sent."""
        await discard(self.upstream)


# Upstream answers that announce at most this many bytes are read whole and sent in one piece:
# most API answers are small JSON, and a streamed relay costs a task group and a send per
# chunk. Anything larger, or without a Content-Length (SSE, chunked), is streamed.
BUFFER_BYTES = 64 * 1024


def fits_buffer(response: httpx.Response) -> bool:
    length = response.headers.get("content-length", "")
    return length.isdigit() and int(length) <= BUFFER_BYTES


async def read_whole(response: httpx.Response) -> bytes:
    """The raw (still content-encoded) body; the connection is always released."""
    try:
        return b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await discard(response)


class BufferedRelay(ASGIResponse):
    """A relayed answer read whole: the given raw headers and body, nothing invented."""

    __slots__ = ("raw_headers",)

    def __init__(
        self, *, body: bytes, status_code: int, raw_headers: Headers, is_head_response: bool
    ) -> None:
        super().__init__(body=body, status_code=status_code, is_head_response=is_head_response)
        self.raw_headers = raw_headers

    def encode_headers(self) -> list[tuple[bytes, bytes]]:
        return self.raw_headers


async def discard(response: httpx.Response) -> None:
    with anyio.CancelScope(shield=True):
        await response.aclose()


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
