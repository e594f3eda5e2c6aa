"""``GET /v1/usage``: the agent's own calls, filtered by time and provider, paginated."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.factories import assert_error, key_headers, rfc3339_in
from tests.gateway.helpers import settled_usage, signup, usage

Client = AsyncTestClient[Litestar]


async def make_calls(client: Client, key: str, paths: list[str]) -> list[str]:
    ids = []
    for path in paths:
        response = await client.get(f"/v1/gateway/{path}", headers=key_headers(key))
        ids.append(response.headers.get("x-gateway-usage-id") or "")
    for usage_id in ids:
        if usage_id:
            # A 2xx is finalised in the background, a moment after its answer.
            await settled_usage(client, key, usage_id)
    return ids


async def test_usage_pages_newest_first(gw: Client) -> None:
    # Given five calls
    key = await signup(gw)
    ids = await make_calls(gw, key, ["echo/echo"] * 5)

    # When the agent reads its usage two at a time
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await usage(gw, key, **params)
        seen.extend(r["id"] for r in page["data"])
        cursor = page["nextCursor"]
        if cursor is None:
            break

    # Then it gets every call once, newest first
    assert seen == list(reversed(ids))


async def test_usage_filters_by_provider(gw: Client) -> None:
    key = await signup(gw)
    await make_calls(gw, key, ["echo/echo", "free/echo", "echo/status/500", "free/echo"])

    free = await usage(gw, key, provider="free")
    echo = await usage(gw, key, provider="echo")

    assert [r["provider"] for r in free["data"]] == ["free", "free"]
    assert sorted(r["status"] for r in echo["data"]) == ["failed", "succeeded"]


async def test_usage_filters_by_time(gw: Client) -> None:
    key = await signup(gw)
    await make_calls(gw, key, ["echo/echo", "echo/echo"])

    around = await usage(gw, key, **{"from": rfc3339_in(-60), "to": rfc3339_in(60)})
    future = await usage(gw, key, **{"from": rfc3339_in(60)})
    past = await usage(gw, key, to=rfc3339_in(-60))

    assert len(around["data"]) == 2
    assert future["data"] == []
    assert past["data"] == []


async def test_a_bad_time_filter_is_a_validation_error(gw: Client) -> None:
    key = await signup(gw)

    response = await gw.get("/v1/usage", params={"from": "yesterday"}, headers=key_headers(key))

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_a_time_filter_beyond_the_representable_range_is_a_validation_error(
    gw: Client,
) -> None:
    key = await signup(gw)

    # Valid RFC 3339, but before year 1 or after year 9999 once in UTC
    for params in ({"from": "0001-01-01T00:00:00+01:00"}, {"to": "9999-12-31T23:59:59-01:00"}):
        response = await gw.get("/v1/usage", params=params, headers=key_headers(key))

        assert_error(response, 400, "VALIDATION_ERROR")


async def test_usage_shows_only_the_callers_own_calls(gw: Client) -> None:
    mine = await signup(gw)
    theirs = await signup(gw)
    await make_calls(gw, theirs, ["echo/echo"])

    assert (await usage(gw, mine))["data"] == []


async def test_usage_needs_the_usage_read_scope(gw: Client) -> None:
    agent = (await gw.post("/v1/agents/register", json={"name": "scoped"})).json()
    narrow = await gw.post(
        "/v1/api-keys",
        json={"label": "gw", "scopes": ["gateway:call"]},
        headers=key_headers(agent["apiKey"]),
    )
    assert narrow.status_code == 201, narrow.text

    response = await gw.get("/v1/usage", headers=key_headers(narrow.json()["key"]))

    assert_error(response, 403, "FORBIDDEN")
