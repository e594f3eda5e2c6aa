"""Every failure is the SPEC error body with a request id; never HTML, never a 500 for bad input."""

from __future__ import annotations

import base64

import pytest
from litestar import get
from litestar.testing import AsyncTestClient, TestClient

from app.main import create_app
from tests.factories import assert_error, key_headers, register_agent

# -- request ids -------------------------------------------------------------------------------


async def test_a_request_id_is_generated_when_none_is_sent(client):
    # when
    response = await client.get("/v1/health")

    # then
    assert response.headers["X-Request-ID"]


async def test_a_sent_request_id_is_echoed(client):
    # when
    response = await client.get("/v1/health", headers={"X-Request-ID": "trace-123.abc"})

    # then
    assert response.headers["X-Request-ID"] == "trace-123.abc"


async def test_an_unsafe_request_id_is_replaced(client):
    # when a caller sends something that must not be echoed into headers or logs
    response = await client.get("/v1/health", headers={"X-Request-ID": "a b<script>" * 20})

    # then
    assert response.headers["X-Request-ID"] != "a b<script>" * 20
    assert response.headers["X-Request-ID"]


async def test_an_error_body_names_the_echoed_request_id(client):
    # when
    response = await client.get("/v1/api-keys", headers={"X-Request-ID": "corr-42"})

    # then
    body = assert_error(response, 401, "UNAUTHORIZED")
    assert body["requestId"] == "corr-42"


# -- routing -----------------------------------------------------------------------------------


async def test_an_unknown_route_is_a_json_404(client):
    # when
    response = await client.get("/v1/nothing-here", headers={"X-Request-ID": "r-404"})

    # then
    body = assert_error(response, 404, "NOT_FOUND")
    assert body["requestId"] == "r-404"


async def test_a_wrong_method_is_a_json_405(client):
    # when
    response = await client.put("/v1/health")

    # then
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["Allow"]


# -- bodies ------------------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413(make_client):
    # given an instance that takes at most 2 KiB
    client = await make_client(max_body_bytes=2048)

    # when
    response = await client.post("/v1/agents/register",
                                 json={"name": "big", "description": "x" * 3000})

    # then
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_streamed_body_over_the_limit_is_413(settings_factory):
    # given an instance that takes at most 2 KiB (the sync client can stream a request body)
    app = create_app(settings_factory(max_body_bytes=2048))

    def chunks():
        for _ in range(10):
            yield b"x" * 1024

    # when the body comes in chunks without a Content-Length
    with TestClient(app=app) as client:
        response = client.post("/v1/agents/register", content=chunks(),
                               headers={"Content-Type": "application/json"})

    # then
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_a_body_under_the_limit_is_accepted(make_client):
    # given
    client = await make_client(max_body_bytes=2048)

    # when
    response = await client.post("/v1/agents/register",
                                 json={"name": "small", "description": "x" * 1000})

    # then
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"name": "x",}', b"", b"[1, 2]", b'"just a string"', b"\xff\xfe"],
    ids=["garbage", "trailing-comma", "empty", "array", "string", "not-utf8"],
)
async def test_a_malformed_json_body_is_a_validation_error(client, content):
    # when
    response = await client.post("/v1/agents/register", content=content,
                                 headers={"Content-Type": "application/json"})

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "body",
    [{"name": 5}, {"name": None}, {"name": ["a"]}, {"name": "x", "description": 7}],
    ids=["int", "null", "list", "description-int"],
)
async def test_a_field_of_the_wrong_type_is_a_validation_error(client, body):
    # when
    response = await client.post("/v1/agents/register", json=body)

    # then
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"]


async def test_an_unknown_field_is_a_validation_error(client):
    # when
    response = await client.post("/v1/agents/register", json={"name": "x", "admin": True})

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_a_missing_required_field_is_a_validation_error(client):
    # when
    response = await client.post("/v1/agents/register", json={"description": "no name"})

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_a_string_over_its_maximum_length_is_a_validation_error(client):
    # when
    response = await client.post("/v1/agents/register", json={"name": "n" * 201})

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


# -- input that databases choke on ----------------------------------------------------------------


async def test_a_nul_character_in_a_body_is_a_validation_error(client):
    # when (PostgreSQL cannot store U+0000 in text)
    response = await client.post("/v1/agents/register", json={"name": "nul\u0000name"})

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_a_nul_character_in_a_query_is_a_validation_error(client, admin_headers):
    # when
    response = await client.get("/admin/v1/agents", params={"q": "a\u0000b"},
                                headers=admin_headers)

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_a_nul_character_in_a_path_is_a_validation_error(client, admin_headers):
    # when
    response = await client.get("/admin/v1/agents/agt_%00", headers=admin_headers)

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_an_escaped_backslash_before_u0000_is_ordinary_text(client):
    # when the name is the six characters \u0000 (an escaped backslash, not a NUL)
    response = await client.post("/v1/agents/register",
                                 content=b'{"name": "x\\\\u0000"}',
                                 headers={"Content-Type": "application/json"})

    # then
    assert response.status_code == 201, response.text
    assert response.json()["agentName"] == "x\\u0000"


async def test_a_forged_cursor_is_a_validation_error(client):
    # given a cursor that decodes to something no id looks like
    agent = await register_agent(client)
    forged = base64.urlsafe_b64encode(b"v1:\x00' OR 1=1").decode().rstrip("=")

    # when
    response = await client.get("/v1/api-keys", params={"cursor": forged},
                                headers=key_headers(agent["apiKey"]))

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_an_overlong_path_id_is_not_found(client, admin_headers):
    # when
    response = await client.get("/admin/v1/agents/" + "a" * 5000, headers=admin_headers)

    # then
    assert_error(response, 404, "NOT_FOUND")


# -- unexpected failures --------------------------------------------------------------------------


@get("/v1/test-only/boom")
async def boom() -> None:
    raise RuntimeError("secret internal detail")


async def test_an_unexpected_exception_is_a_json_500_without_details(settings):
    # given the real app with one extra route that fails
    app = create_app(settings)
    app.register(boom)

    # when
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/v1/test-only/boom", headers={"X-Request-ID": "r-500"})

    # then
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert body["requestId"] == "r-500"
    assert "secret internal detail" not in response.text


async def test_a_missing_body_and_a_wrong_field_are_named_in_the_error(client):
    missing = await client.post("/v1/agents/register")
    wrong = await client.post("/v1/agents/register", json={"name": 5})

    assert missing.status_code == 400
    assert missing.json()["error"] == "Invalid request: A JSON body is required."
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "Invalid request: name: Expected `str`, got `int`"


async def test_truncated_json_is_a_malformed_request(client):
    response = await client.post(
        "/v1/agents/register", content=b"{", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["error"].startswith("Malformed request:")
