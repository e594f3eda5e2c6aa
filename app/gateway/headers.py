"""Which headers cross the gateway, in both directions.

Both directions work on raw ``(name, value)`` byte pairs, names lower-case:

- hop-by-hop headers (RFC 9110 section 7.6.1, plus any listed in ``Connection``) never cross;
- **to the upstream**: the caller's credentials and passgate's own protocol headers are dropped
  (``X-API-Key``, ``Authorization``, ``X-Master-Key``, ``Cookie``, ``X-Tenant-ID``, x402
  payment headers, SIWX proofs, claim tokens), as are client-supplied forwarding headers
  (nobody's address is disclosed, and a caller cannot forge one); the provider's configured
  headers are then set, replacing any caller header of the same name; ``X-Request-ID`` carries
  passgate's id;
- **to the caller**: cookies, authentication challenges, ``Server``/``Date``/``Alt-Svc``
  and the names passgate sets itself (request id, rate limits, ``X-Gateway-*``, x402 payment
  answers) are dropped; the upstream's request id is returned as ``X-Upstream-Request-ID``.

Everything else passes through unchanged, including ``Accept-Encoding`` and
``Content-Encoding``: bodies are relayed as raw bytes, never decoded. A usage-priced provider
(whose answer passgate reads for its usage) is asked for ``Accept-Encoding: identity``.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from app.gateway.incoming import Headers, IncomingCall
from app.gateway.providers import Provider

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
        b"sign-in-with-x",  # a wallet's sign-in proof (app.siwx)
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
    # A usage-priced answer is read for its usage: it must come uncompressed, whatever the
    # caller accepts (a gzipped body would read as "no usage").
    priced_by_usage = provider.usage_pricing is not None
    out: Headers = []
    for name, value in call.headers:
        lower = name.lower()
        if lower in REQUEST_DROP or lower in extra_drop or lower in injected:
            continue
        if priced_by_usage and lower == b"accept-encoding":
            continue
        out.append((lower, value))
    if priced_by_usage:
        out.append((b"accept-encoding", b"identity"))
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
