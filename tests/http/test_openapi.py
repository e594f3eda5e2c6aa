"""The OpenAPI document describes the error body passgate sends and the statuses it answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
async def document(client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", path, item[method]


def schema_name(response: dict[str, Any]) -> str:
    return response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


async def test_every_error_is_documented_as_the_body_passgate_sends(document):
    # when the error responses of every operation are read
    errors = {
        (label, status): schema_name(response)
        for label, _, operation in operations(document)
        for status, response in operation["responses"].items()
        if int(status) >= 400 and "content" in response
    }

    # then each is the {error, code, requestId} body (a 402 of a paid route adds x402's form)
    assert errors
    assert set(errors.values()) <= {"ErrorBody", "PaymentRequiredBody", "Health"}
    body = document["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"error", "code", "requestId"}
    # and Litestar's own {status_code, detail, extra} shape appears nowhere
    assert "status_code" not in json.dumps(document)


async def test_every_keyed_operation_documents_its_scheme_and_its_auth_failures(document):
    # when the operations that take a credential are read
    keyed = [(label, op) for label, _, op in operations(document) if op.get("security")]

    # then each names its scheme and documents 401 and 403
    assert len(keyed) > 50
    for label, operation in keyed:
        assert {"401", "403"} <= set(operation["responses"]), label
    admin = [op for label, path, op in operations(document) if path.startswith("/admin/")]
    assert all(op["security"] == [{"adminToken": []}] for op in admin)


async def test_every_operation_documents_a_400_and_a_404_for_its_path_parameters(document):
    for label, path, operation in operations(document):
        assert "400" in operation["responses"], label
        if "{" in path:
            assert "404" in operation["responses"], label


async def test_a_paid_route_documents_its_402_with_the_payment_requirements(document):
    # when the pass purchase is read
    operation = document["paths"]["/v1/passes/{period}"]["post"]

    # then it answers 402 with x402's accepts beside the error, 201 or 202
    assert schema_name(operation["responses"]["402"]) == "PaymentRequiredBody"
    paid = document["components"]["schemas"]["PaymentRequiredBody"]["properties"]
    assert {"accepts", "x402Version", "code"} <= set(paid)
    assert {"201", "202"} <= set(operation["responses"])
