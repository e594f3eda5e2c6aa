"""Public endpoints without authentication: health, OpenAPI (the catalogs: tests/catalog)."""

from __future__ import annotations

from tests.factories import assert_error

# Every route of the foundation (SPEC: "every route is in it"), as OpenAPI spells its paths.
FOUNDATION_ROUTES = [
    ("get", "/v1/health"),
    ("get", "/v1/providers"),
    ("get", "/v1/passes"),
    ("post", "/v1/agents/register"),
    ("get", "/v1/agents/me"),
    ("get", "/v1/claims"),
    ("get", "/v1/claims/{claim_code}"),
    ("post", "/v1/keys"),
    ("post", "/v1/api-keys"),
    ("get", "/v1/api-keys"),
    ("get", "/v1/api-keys/info"),
    ("delete", "/v1/api-keys/{key_id}"),
    ("post", "/v1/api-keys/{key_id}/regenerate"),
    ("get", "/v1/balance"),
    ("get", "/v1/platform"),
    ("post", "/v1/platform/agents"),
    ("get", "/v1/platform/agents"),
    ("get", "/v1/platform/agents/{agent_id}"),
    ("patch", "/v1/platform/agents/{agent_id}"),
    ("post", "/v1/platform/agents/{agent_id}/rotate-key"),
    ("post", "/v1/platform/agents/claim"),
    ("put", "/v1/platform/spending-limit"),
    ("post", "/v1/platform/master-keys"),
    ("get", "/v1/platform/master-keys"),
    ("delete", "/v1/platform/master-keys/{key_id}"),
    ("post", "/admin/v1/platforms"),
    ("get", "/admin/v1/platforms"),
    ("get", "/admin/v1/platforms/{platform_id}"),
    ("patch", "/admin/v1/platforms/{platform_id}"),
    ("get", "/admin/v1/agents"),
    ("get", "/admin/v1/agents/{agent_id}"),
    ("patch", "/admin/v1/agents/{agent_id}"),
    ("get", "/admin/v1/keys"),
    ("post", "/admin/v1/keys/lookup"),
    ("get", "/admin/v1/keys/{key_id}"),
    ("patch", "/admin/v1/keys/{key_id}"),
    ("post", "/admin/v1/keys/{key_id}/revoke"),
    ("post", "/admin/v1/tokens"),
    ("post", "/admin/v1/credits/adjustments"),
    ("get", "/admin/v1/credits/ledger"),
    ("get", "/admin/v1/audit-log"),
]


async def test_health_reports_database_and_broker_up(client):
    # when
    response = await client.get("/v1/health")

    # then
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok"
    assert body["broker"]["status"] == "ok"
    assert isinstance(body["chains"], list)


async def test_health_is_503_when_the_database_is_down(make_client, settings_factory, tmp_path):
    # given an instance whose database cannot be reached
    broken = await make_client(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/missing-dir/passgate.db"
    )

    # when
    response = await broken.get("/v1/health")

    # then
    assert response.status_code == 503, response.text
    assert response.json()["database"]["status"] == "down"
    assert response.json()["status"] == "degraded"


async def test_openapi_document_lists_every_route(client):
    # when
    response = await client.get("/schema/openapi.json")

    # then
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    missing = [
        (method, path) for method, path in FOUNDATION_ROUTES
        if method not in paths.get(path, {})
    ]
    assert missing == []


async def test_openapi_is_also_served_at_schema(client):
    # when
    response = await client.get("/schema")

    # then
    assert response.status_code == 200


async def test_unknown_claim_code_is_not_found(client):
    # when
    response = await client.get("/v1/claims/clm_doesnotexist")

    # then
    assert_error(response, 404, "NOT_FOUND")
