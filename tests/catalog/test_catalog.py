"""The public catalogs: gateway providers and key passes, with prices."""

from __future__ import annotations


async def test_providers_lists_configured_upstreams_with_prices(make_client):
    # given a configured provider
    client = await make_client(providers=[
        {"name": "echo", "base_url": "http://127.0.0.1:9/", "price_micros": 2500,
         "description": "test upstream"},
    ])

    # when
    response = await client.get("/v1/providers")

    # then
    assert response.status_code == 200, response.text
    [provider] = response.json()["data"]
    expected = {"name": "echo", "description": "test upstream", "priceMicros": 2500,
                "priceUsd": 0.0025}
    assert expected.items() <= provider.items()


async def test_passes_lists_the_catalog_with_prices_scopes_and_limits(client):
    # when
    response = await client.get("/v1/passes")

    # then
    assert response.status_code == 200, response.text
    passes = {p["period"]: p for p in response.json()["data"]}
    assert set(passes) == {"1d", "1w", "4w"}
    assert passes["1d"]["priceMicros"] == 10_000_000
    assert passes["1w"]["priceMicros"] == 50_000_000
    assert passes["4w"]["priceMicros"] == 100_000_000
    assert passes["1d"]["durationSeconds"] == 86_400
    assert passes["1d"]["rateLimit"] == {"requestsPerMinute": 30, "requestsPerDay": 10_000}
    assert passes["1d"]["scopes"]
