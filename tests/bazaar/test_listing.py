"""``GET /v1/discovery/resources``: passgate's paid resources in x402 discovery's shape, read
with the official discovery clients (Python SDK, npm @x402/extensions), filtered and paged."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from x402.extensions.bazaar import (
    DiscoveryResourcesResponse,
    ListDiscoveryResourcesParams,
    validate_discovery_extension,
    with_bazaar,
)
from x402.extensions.bazaar.types import parse_discovery_extension
from x402.http import FacilitatorConfig
from x402.http.facilitator_client import HTTPFacilitatorClientSync
from x402.schemas import PaymentRequirements

from app.main import create_app
from tests.bazaar.conftest import CONFIGURED
from tests.fixtures.live import serve
from tests.fixtures.services import in_ci

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "chain" / "node"
LISTING = "/v1/discovery/resources"


def _sdk_list(base: str, params: ListDiscoveryResourcesParams) -> DiscoveryResourcesResponse:
    """The Python SDK's bazaar client, pointed at passgate's /v1 as at a facilitator."""
    with httpx.Client(timeout=30) as http:
        facilitator = HTTPFacilitatorClientSync(FacilitatorConfig(url=f"{base}/v1",
                                                                  http_client=http))
        return with_bazaar(facilitator).extensions.bazaar.list_resources(params)


def _check_item(item: dict[str, Any]) -> None:
    """One listed resource, as the SDK's types read it."""
    assert item["type"] == "http"
    assert item["x402Version"] == 2
    assert item["accepts"]
    for offer in item["accepts"]:
        PaymentRequirements.model_validate(offer)
    datetime.fromisoformat(item["lastUpdated"].replace("Z", "+00:00"))
    extension = parse_discovery_extension(item["extensions"]["bazaar"])
    assert validate_discovery_extension(extension).valid
    assert extension.info.input.method == "POST"


async def test_the_sdk_discovery_client_lists_passes_and_the_paid_provider(
    bazaar_settings, pay_to
):
    # given passgate on a socket
    async with serve(create_app(bazaar_settings)) as base:
        # when the SDK's discovery client lists, a page of 100
        listing = await asyncio.to_thread(_sdk_list, base,
                                          ListDiscoveryResourcesParams(limit=100))

    # then every pass and the configured provider are there, each as its 402 offers it
    public = bazaar_settings.public_url.rstrip("/")
    by_url = {item.resource: item for item in listing.items}
    for period, price in (("1d", 10_000_000), ("1w", 50_000_000), ("4w", 100_000_000)):
        item = by_url[f"{public}/v1/passes/{period}"]
        assert [offer["amount"] for offer in item.accepts or []] == [str(price)]
        assert item.description == f"{period} passgate API key pass"
    provider = by_url[f"{public}/v1/gateway/{CONFIGURED['name']}"]
    [offer] = provider.accepts or []
    assert offer["scheme"] == "exact"
    assert offer["network"] == "eip155:84532"
    assert offer["payTo"].lower() == pay_to.lower()
    assert offer["amount"] == "2500"
    for item in listing.items:
        _check_item(item.to_dict())
    assert listing.x402_version == 2
    assert listing.pagination.total == len(listing.items)
    assert listing.pagination.limit == 100


async def test_the_listing_metadata_tells_a_pass_from_a_provider_and_its_other_prices(api):
    # when
    response = await api.get(LISTING, params={"resource": f"/gateway/{CONFIGURED['name']}"})

    # then
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    assert item["metadata"] == {
        "kind": "gateway", "provider": CONFIGURED["name"], "priceMicros": 2500,
        "modelPrices": {"big": 9000}, "routePrices": {"/v1/chat": 3000},
        "forwards": "any method and path under the resource",
    }
    [pass_item] = (await api.get(LISTING, params={"resource": "passes/4w"})).json()["items"]
    assert pass_item["metadata"]["kind"] == "pass"
    assert pass_item["metadata"]["durationSeconds"] == 28 * 86_400


async def test_the_npm_discovery_client_reads_the_same_listing(bazaar_settings, pay_to):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@x402" / "extensions").exists():
        if in_ci():
            pytest.fail("node and chain/node/node_modules are required in CI")
        pytest.skip("node or the npm x402 packages are not installed (make setup)")
    params = json.dumps({"type": "http", "scheme": "exact", "payTo": pay_to, "limit": 2,
                         "offset": 1})
    async with serve(create_app(bazaar_settings)) as base:
        # when
        result = await asyncio.to_thread(
            subprocess.run, [node, "list-discovery.mjs", f"{base}/v1", params],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
        )

    # then
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout.strip().splitlines()[-1])
    assert listing["pagination"]["limit"] == 2
    assert listing["pagination"]["offset"] == 1
    assert listing["pagination"]["total"] >= 4
    assert [item["resource"].rsplit("/", 1)[-1] for item in listing["items"]] == ["1w", "4w"]
    for item in listing["items"]:
        _check_item(item)


async def _listing(api: Any, **params: Any) -> dict[str, Any]:
    response = await api.get(LISTING, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["pagination"]["total"] >= len(body["items"])
    return body


async def test_each_filter_keeps_exactly_the_matching_resources(api, pay_to):
    everything = (await _listing(api, limit=100))["items"]
    everyone = len(everything)
    other = "0x0000000000000000000000000000000000000001"
    cases: list[tuple[dict[str, Any], int]] = [
        ({"type": "http"}, everyone), ({"type": "HTTP"}, everyone), ({"type": "mcp"}, 0),
        ({"scheme": "exact"}, everyone), ({"scheme": "batch-settlement"}, 0),
        ({"network": "eip155:84532"}, everyone), ({"network": "eip155:999999999"}, 0),
        ({"payTo": pay_to}, everyone), ({"payTo": pay_to.lower()}, everyone),
        ({"payTo": other}, 0),
        ({"extensions": "bazaar"}, everyone), ({"extensions": "no-such-extension"}, 0),
        ({"resource": "/v1/passes/"}, 3), ({"resource": "PASSES/1D"}, 1),
        # full-width letters: the same text once NFKC-normalised
        ({"resource": "\uff50\uff41\uff53\uff53\uff45\uff53/1d"}, 1),
        ({"resource": "héllo"}, 0),
        ({"scheme": "exact", "network": "eip155:84532", "payTo": pay_to, "type": "http",
          "extensions": "bazaar", "resource": "/v1/passes/4"}, 1),
    ]
    for params, expected in cases:
        # when
        body = await _listing(api, limit=100, **params)

        # then
        assert body["pagination"]["total"] == expected, params
        assert len(body["items"]) == expected, params


async def test_pages_walk_the_whole_listing_once_in_a_stable_order(api):
    everything = [item["resource"] for item in (await _listing(api, limit=100))["items"]]

    # when
    walked: list[str] = []
    offset = 0
    while True:
        page = await _listing(api, limit=2, offset=offset)
        assert page["pagination"] == {"limit": 2, "offset": offset, "total": len(everything)}
        if not page["items"]:
            break
        walked.extend(item["resource"] for item in page["items"])
        offset += 2

    # then
    assert walked == everything
    assert (await _listing(api))["pagination"]["limit"] == 20  # the spec's default
    far = await _listing(api, offset=999_999_999, limit=100)
    assert far["items"] == []
    assert far["pagination"]["total"] == len(everything)


@pytest.mark.parametrize("query", [
    "network=!!!", "network=eip155", "network=local", "limit=0", "limit=101", "limit=abc",
    "limit=1e2", "limit=-1", "offset=-1", "offset=1e3", "offset=1000000000",
    "offset=99999999999999999999999999999999", "limit=" + "9" * 5000, "type=", "type=a%20b",
    "scheme=exact!", "payTo=0x12%2034", "extensions=%2Fetc", "unknown=1",
    "metadata%5Bprovider%5D=Coinbase", "type=http&type=mcp", "resource=a%00b",
    "resource=%E2%80%AEevil", "resource=%ff", "resource=" + "a" * 300, "type=%C0%AF",
    "&".join(f"p{i}=1" for i in range(40)), "resource=%ED%A0%80", "%ff=1",
    # full-width digits (int() would read them), a sign, a space
    "network=eip155:%EF%BC%98%EF%BC%94", "limit=%EF%BC%91", "offset=%2B1", "limit=%205",
    "type=%EF%AC%80", "resource=%EF%BB%BFx",
])
async def test_a_malformed_query_is_a_400_naming_it_never_a_500(api, query):
    # when
    response = await api.get(f"{LISTING}?{query}")

    # then
    assert response.status_code == 400, (query, response.text)
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert isinstance(body["error"], str)
    assert body["error"]
