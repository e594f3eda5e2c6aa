"""Forwarding: what reaches the upstream, what comes back, and what never crosses."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.gateway.incoming import MAX_GATEWAY_PATH
from app.main import create_app
from tests.factories import assert_error, key_headers
from tests.fixtures.live import serve
from tests.gateway.conftest import GatewayFactory
from tests.gateway.helpers import (
    PRICE,
    UPSTREAM_SECRET,
    balance,
    settled_usage,
    signup,
    upstream_hits,
)

Client = AsyncTestClient[Litestar]


def received_headers(response: httpx.Response) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


async def test_method_path_query_and_body_reach_the_upstream(gw: Client) -> None:
    # Given a key with credits
    key = await signup(gw)

    # When it calls the upstream through the gateway
    response = await gw.put(
        "/v1/gateway/echo/echo/a%2Fb/c?x=1&y=two%20words&x=3",
        content=b'{"hello": "world"}',
        headers={**key_headers(key), "Content-Type": "application/json"},
    )

    # Then the upstream saw the same method, raw path, query and body
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["method"] == "PUT"
    assert seen["rawPath"] == "/echo/a%2Fb/c"
    assert seen["query"] == "x=1&y=two%20words&x=3"
    assert seen["body"] == '{"hello": "world"}'
    assert received_headers(response)["content-type"] == ["application/json"]


async def test_the_callers_credentials_never_reach_the_upstream(gw: Client) -> None:
    # Given a key, sent every way passgate accepts credentials, plus cookies and proxy headers
    key = await signup(gw)
    headers = {
        "X-API-Key": key,
        "X-Master-Key": "mk_something",
        "Cookie": "session=passgate",
        "X-Forwarded-For": "10.0.0.1",
        "Forwarded": "for=10.0.0.1",
        "X-Payment": "0x" + "ab" * 32,
        "Proxy-Authorization": "Basic eA==",
        "Connection": "x-secret-hop",
        "X-Secret-Hop": "hop",
        "X-Upstream-Key": "caller-chosen",
        "X-Custom": "kept",
        "User-Agent": "agent/1.0",
    }

    # When the call goes through
    response = await gw.get("/v1/gateway/echo/echo", headers=headers)

    # Then the upstream sees only safe headers and the provider's injected credentials
    assert response.status_code == 200, response.text
    seen = received_headers(response)
    for name in (
        "x-api-key",
        "x-master-key",
        "cookie",
        "x-tenant-id",
        "x-forwarded-for",
        "forwarded",
        "x-payment",
        "proxy-authorization",
        "x-secret-hop",
    ):
        assert name not in seen, name
    assert seen["authorization"] == [f"Bearer {UPSTREAM_SECRET}"]
    assert seen["x-upstream-key"] == ["k-123"]
    assert seen["x-custom"] == ["kept"]
    assert seen["user-agent"] == ["agent/1.0"]
    assert seen["x-request-id"] == [response.headers["x-request-id"]]
    assert key not in response.text


async def test_a_bearer_key_is_replaced_by_the_providers_credentials(gw: Client) -> None:
    # Given a key presented as a bearer token
    key = await signup(gw)

    # When it calls the gateway
    response = await gw.get("/v1/gateway/echo/echo", headers={"Authorization": f"Bearer {key}"})

    # Then the upstream gets the operator's Authorization, not the caller's
    assert response.status_code == 200, response.text
    assert received_headers(response)["authorization"] == [f"Bearer {UPSTREAM_SECRET}"]
    assert key not in response.text


async def test_upstream_cookies_challenges_and_hop_headers_are_not_relayed(gw: Client) -> None:
    # Given an upstream answering with headers meant for itself
    key = await signup(gw)

    # When the answer comes back through the gateway
    response = await gw.get("/v1/gateway/echo/leaky", headers=key_headers(key))

    # Then only end-to-end headers pass, passgate's own ones are passgate's
    assert response.status_code == 200, response.text
    for name in ("set-cookie", "www-authenticate", "x-hop-custom", "alt-svc"):
        assert name not in response.headers, name
    assert response.headers["x-kept"] == "yes"
    assert response.headers.get_list("x-multi") == ["a", "b"]
    assert response.headers["x-ratelimit-limit"] == "100000"  # passgate's limit, not upstream's
    assert response.headers["x-upstream-request-id"].startswith("up-")
    assert response.headers["x-request-id"].startswith("req_")
    assert not response.cookies


async def test_an_upstream_cannot_forge_passgates_payment_or_gateway_headers(gw: Client) -> None:
    # Given an upstream answering with headers that only passgate may set
    key = await signup(gw)

    # When its answer comes back through the gateway
    response = await gw.get("/v1/gateway/echo/forged", headers=key_headers(key))

    # Then none of the upstream's copies reach the caller; passgate's own are the only ones
    assert response.status_code == 200, response.text
    for name in (
        "payment-response",
        "x-payment-response",
        "payment-required",
        "x-payment-id",
        "x-payment-status",
        "x-gateway-refund",
    ):
        assert name not in response.headers, name
    assert response.headers.get_list("x-gateway-cost-micros") == [str(PRICE)]
    assert response.headers.get_list("x-gateway-usage-id") != ["use_forged"]
    assert len(response.headers.get_list("x-gateway-usage-id")) == 1
    assert len(response.headers.get_list("x-gateway-balance-micros")) == 1
    assert response.headers["x-gateway-balance-micros"] != "999999999"
    # An upstream's own, differently named limits are the caller's to see
    assert response.headers["x-ratelimit-remaining-tokens"] == "42"


async def test_an_upstreams_cookie_never_reaches_another_call(gw: Client) -> None:
    # Given one agent whose call made the upstream set a cookie
    first, second = await signup(gw), await signup(gw)
    leaky = await gw.get("/v1/gateway/echo/leaky", headers=key_headers(first))
    assert leaky.status_code == 200, leaky.text

    # When another agent (and the first one again) calls the same upstream
    others = await gw.get("/v1/gateway/echo/echo", headers=key_headers(second))
    again = await gw.get("/v1/gateway/echo/echo", headers=key_headers(first))

    # Then the upstream sees no cookie: the shared client keeps none between calls
    for response in (others, again):
        assert response.status_code == 200, response.text
        assert "cookie" not in received_headers(response), received_headers(response)


async def test_a_4xx_passes_through_uncharged(gw: Client) -> None:
    # Given a key with 10 USD
    key = await signup(gw)

    # When the upstream answers 404
    response = await gw.get("/v1/gateway/echo/status/404", headers=key_headers(key))

    # Then the caller gets the upstream's 404 as it was, and pays nothing
    assert response.status_code == 404
    assert response.json() == {"status": 404, "secret": "internal"}
    assert response.headers["x-gateway-cost-micros"] == "0"
    assert (await balance(gw, key))["creditsMicros"] == 10_000_000


async def test_a_redirect_is_relayed_not_followed(gw: Client) -> None:
    key = await signup(gw)

    response = await gw.get(
        "/v1/gateway/echo/redirect", headers=key_headers(key), follow_redirects=False
    )

    assert response.status_code == 302
    assert response.headers["location"] == "/echo"
    assert (await balance(gw, key))["creditsMicros"] == 10_000_000


async def test_dot_segments_cannot_escape_the_providers_base_path(
    make_gateway: GatewayFactory, upstream_url: str
) -> None:
    # Given a provider rooted at /echo/base
    gw = await make_gateway(
        providers=[
            {
                "name": "rooted",
                "base_url": f"{upstream_url}/echo/base",
                "price_micros": 1,
            }
        ]
    )
    key = await signup(gw)

    # When a path tries to climb out of it (raw or percent-encoded)
    for path in (
        "/v1/gateway/rooted/%2e%2e/status/500",
        "/v1/gateway/rooted/a/..%2F..%2Fx",
        "/v1/gateway/rooted/%2E/x",
    ):
        response = await gw.get(path, headers=key_headers(key))
        # Then it is refused before anything is charged or sent
        assert_error(response, 400, "VALIDATION_ERROR")
    assert (await balance(gw, key))["creditsMicros"] == 10_000_000
    ok = await gw.get("/v1/gateway/rooted/deeper", headers=key_headers(key))
    assert ok.json()["path"] == "/echo/base/deeper"


async def test_a_path_parameter_cannot_smuggle_a_dot_segment(
    make_gateway: GatewayFactory, upstream_url: str
) -> None:
    # Given a provider rooted at /echo/base
    gw = await make_gateway(
        providers=[{"name": "rooted", "base_url": f"{upstream_url}/echo/base", "price_micros": 1}]
    )
    key = await signup(gw)

    # When a dot segment hides behind a path parameter (read as '..' by servers that drop them)
    for path in ("/v1/gateway/rooted/..;/status/500", "/v1/gateway/rooted/%2e%2e;x/status/500"):
        response = await gw.get(path, headers=key_headers(key))

        # Then it is refused like a plain one
        assert_error(response, 400, "VALIDATION_ERROR")
    assert (await balance(gw, key))["creditsMicros"] == 10_000_000


async def test_repeated_slashes_and_path_parameters_are_merged_before_forwarding(
    gw: Client,
) -> None:
    key = await signup(gw)

    response = await gw.get(
        "/v1/gateway/echo//echo///a;v=1/b/?x=1;y", headers=key_headers(key)
    )

    # The upstream gets the one spelling the call was priced on; the query is untouched
    assert response.status_code == 200, response.text
    assert response.json()["rawPath"] == "/echo/a/b/"
    assert response.json()["query"] == "x=1;y"


async def test_a_path_as_long_as_allowed_is_forwarded_and_recorded(gw: Client) -> None:
    # given a key, and a path of exactly the longest length a gateway path may have
    key = await signup(gw)
    rest = "/echo/" + "a" * (MAX_GATEWAY_PATH - len("/echo/"))

    # when it is called, and then with one character more
    served = await gw.get(f"/v1/gateway/echo{rest}", headers=key_headers(key))
    refused = await gw.get(f"/v1/gateway/echo{rest}a", headers=key_headers(key))

    # then the first reaches the upstream and is recorded; the second is a 400, free
    assert served.status_code == 200, served.text
    assert served.json()["path"] == rest
    usage = await settled_usage(gw, key, served.headers["x-gateway-usage-id"])
    assert usage["route"] == rest
    assert_error(refused, 400, "VALIDATION_ERROR")
    assert (await balance(gw, key))["spentMicros"] == PRICE


async def test_unknown_provider_is_not_found_and_free(gw: Client) -> None:
    key = await signup(gw)

    response = await gw.get("/v1/gateway/nope/anything", headers=key_headers(key))

    assert_error(response, 404, "NOT_FOUND")
    assert (await balance(gw, key))["creditsMicros"] == 10_000_000


async def test_the_gateway_needs_a_key_with_the_gateway_scope(gw: Client) -> None:
    # Without a key
    assert_error(await gw.get("/v1/gateway/echo/echo"), 401, "UNAUTHORIZED")
    # With a key that lacks gateway:call
    agent = (await gw.post("/v1/agents/register", json={"name": "scoped"})).json()
    limited = await gw.post(
        "/v1/api-keys",
        json={"label": "ro", "scopes": ["balance:read"]},
        headers=key_headers(agent["apiKey"]),
    )
    assert limited.status_code == 201, limited.text
    response = await gw.get("/v1/gateway/echo/echo", headers=key_headers(limited.json()["key"]))
    assert_error(response, 403, "FORBIDDEN")


async def test_a_large_response_arrives_whole(gw: Client) -> None:
    key = await signup(gw)
    size = 5 * 1024 * 1024 + 7

    response = await gw.get(f"/v1/gateway/echo/large?bytes={size}", headers=key_headers(key))

    assert response.status_code == 200
    assert len(response.content) == size
    assert response.headers["content-length"] == str(size)


async def test_head_requests_get_headers_only(gw: Client) -> None:
    key = await signup(gw)

    response = await gw.head("/v1/gateway/echo/large?bytes=1000", headers=key_headers(key))

    assert response.status_code == 200
    assert response.content == b""


async def test_head_requests_give_their_upstream_connection_back(
    make_gateway: GatewayFactory,
) -> None:
    # Given a gateway with a single upstream connection
    gw = await make_gateway(gateway_max_connections=1, gateway_max_keepalive_connections=1)
    key = await signup(gw)

    # When HEAD requests go through, one after another
    heads = [
        await gw.head("/v1/gateway/echo/large?bytes=1000000", headers=key_headers(key))
        for _ in range(3)
    ]

    # Then each is answered with the upstream's status and headers, and the next call still
    # gets the connection
    for response in heads:
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["content-length"] == "1000000"
        assert response.headers["x-upstream-request-id"].startswith("up-")
    after = await gw.get("/v1/gateway/echo/echo", headers=key_headers(key))
    assert after.status_code == 200, after.text


async def test_server_sent_events_stream_through_as_they_happen(
    settings_factory: Any, providers: list[dict[str, Any]]
) -> None:
    # Given the gateway on a real socket, and an upstream sending 5 events 0.3 s apart
    app = create_app(settings_factory(providers=providers, plan_free_per_minute=100_000))
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        key = await signup(http)
        started = time.monotonic()
        arrivals: list[float] = []
        chunks: list[bytes] = []

        # When the caller reads the stream
        async with http.stream(
            "GET", "/v1/gateway/echo/sse?events=5&interval=0.3", headers=key_headers(key)
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            assert "content-length" not in response.headers
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
                arrivals.append(time.monotonic() - started)

    # Then the first event arrives long before the last one was sent (not buffered)
    assert b"".join(chunks) == b"".join(f"data: {i}\n\n".encode() for i in range(5))
    assert arrivals[0] < 0.9, arrivals
    assert arrivals[-1] - arrivals[0] > 0.9, arrivals


async def test_a_caller_hanging_up_mid_stream_stops_the_upstream_stream_and_pays_for_it(
    settings_factory: Any, providers: list[dict[str, Any]], upstream_url: str
) -> None:
    # Given the gateway on a real socket with one upstream connection, and an upstream that
    # would stream for 10 s
    app = create_app(settings_factory(providers=providers, plan_free_per_minute=100_000,
                                      gateway_max_connections=1))
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        key = await signup(http)
        for _ in range(3):
            before = await upstream_hits(upstream_url, "/sse#left")

            # When the caller reads the first event and hangs up
            async with http.stream("GET", "/v1/gateway/echo/sse?events=200&interval=0.05",
                                   headers=key_headers(key)) as response:
                usage_id = response.headers["x-gateway-usage-id"]
                first = await anext(response.aiter_raw())

            # Then the upstream's stream is ended within a second, not run to its end
            deadline = time.monotonic() + 3
            while await upstream_hits(upstream_url, "/sse#left") == before:
                assert time.monotonic() < deadline, "the upstream stream ran on after the hang-up"
                await asyncio.sleep(0.05)
            # And the call was served (its answer had started), so it is paid; and the one
            # connection went back to the pool: the next call gets it
            assert first == b"data: 0\n\n"
            assert (await settled_usage(http, key, usage_id))["costMicros"] == PRICE
            after = await http.get("/v1/gateway/echo/echo", headers=key_headers(key))
            assert after.status_code == 200, after.text


async def test_a_compressed_body_is_relayed_as_sent(gw: Client, upstream_url: str) -> None:
    # Given a caller that did not ask for compression
    key = await signup(gw)
    before = await upstream_hits(upstream_url, "/echo/plain")

    # When it calls the upstream
    response = await gw.get(
        "/v1/gateway/echo/echo/plain", headers={**key_headers(key), "Accept-Encoding": "identity"}
    )

    # Then the upstream was not asked for gzip by the gateway's own client
    seen = received_headers(response)
    assert seen["accept-encoding"] == ["identity"]
    assert await upstream_hits(upstream_url, "/echo/plain") == before + 1
