"""Every string a request can store is bounded at the edge: at its limit it is stored (on
PostgreSQL too, where a column shorter than the limit made it a 500), one past it is a 400."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.factories import (
    assert_error,
    create_platform,
    key_headers,
    master_headers,
    register_agent,
    unique,
)

Target = tuple[str, str, dict[str, str]]  # method, path, headers


@dataclass(frozen=True)
class Field:
    """A stored string: where it is sent, the body around it, and how long it may be."""

    target: Callable[[Any, dict[str, str]], Awaitable[Target]]
    body: Callable[[str], dict[str, Any]]
    limit: int
    text: Callable[[int], str] = lambda n: "x" * n


def _open_to(path: str) -> Callable[[Any, dict[str, str]], Awaitable[Target]]:
    async def target(client: Any, admin: dict[str, str]) -> Target:
        return "POST", path, {}

    return target


def _admin(path: str) -> Callable[[Any, dict[str, str]], Awaitable[Target]]:
    async def target(client: Any, admin: dict[str, str]) -> Target:
        return "POST", path, admin

    return target


def _agent(path: str) -> Callable[[Any, dict[str, str]], Awaitable[Target]]:
    async def target(client: Any, admin: dict[str, str]) -> Target:
        agent = await register_agent(client)
        return "POST", path, key_headers(agent["apiKey"])

    return target


def _master(path: str) -> Callable[[Any, dict[str, str]], Awaitable[Target]]:
    async def target(client: Any, admin: dict[str, str]) -> Target:
        platform = await create_platform(client, admin)
        return "POST", path, master_headers(platform["masterKey"])

    return target


def _adjustment(field: str) -> Callable[[str], dict[str, Any]]:
    def body(value: str) -> dict[str, Any]:
        base = {"agentId": "agt_unused", "amountMicros": 1, "reason": "long input test"}
        return {**base, field: value}

    return body


def _email(n: int) -> str:
    local = uuid.uuid4().hex * 2  # 64 characters, unique per call
    return f"{local}@{'d' * (n - len(local) - 6)}.test"


def _provider(field: str) -> Callable[[str], dict[str, Any]]:
    def body(value: str) -> dict[str, Any]:
        # Disabled: other tests list the enabled providers of this shared database.
        base = {"name": f"p{uuid.uuid4().hex[:12]}", "baseUrl": "http://127.0.0.1:9",
                "priceMicros": 1, "enabled": False}
        return {**base, field: value}

    return body


def _url(n: int) -> str:
    prefix = f"http://127.0.0.1:9/{uuid.uuid4().hex}/"
    return prefix + "a" * (n - len(prefix))


FIELDS = {
    "agent-name": Field(_open_to("/v1/agents/register"), lambda v: {"name": v}, 200),
    "agent-description": Field(
        _open_to("/v1/agents/register"), lambda v: {"name": unique(), "description": v}, 2000
    ),
    "signup-email": Field(_open_to("/v1/keys"), lambda v: {"email": v}, 320, _email),
    "key-label": Field(_agent("/v1/api-keys"), lambda v: {"label": v}, 200),
    "fleet-agent-name": Field(_master("/v1/platform/agents"), lambda v: {"name": v}, 200),
    "master-key-label": Field(_master("/v1/platform/master-keys"), lambda v: {"label": v}, 200),
    "webhook-url": Field(_master("/v1/platform/webhooks"), lambda v: {"url": v}, 2048, _url),
    "webhook-description": Field(
        _master("/v1/platform/webhooks"),
        lambda v: {"url": _url(40), "description": v}, 2000,
    ),
    "platform-name": Field(_admin("/admin/v1/platforms"), lambda v: {"name": v}, 200),
    "admin-token-label": Field(_admin("/admin/v1/tokens"), lambda v: {"label": v}, 200),
    "adjustment-reason": Field(
        _admin("/admin/v1/credits/adjustments"), _adjustment("reason"), 500
    ),
    "adjustment-idempotency-key": Field(
        _admin("/admin/v1/credits/adjustments"), _adjustment("idempotencyKey"), 120
    ),
    "provider-base-url": Field(_admin("/admin/v1/providers"), _provider("baseUrl"), 2048, _url),
    "provider-description": Field(
        _admin("/admin/v1/providers"), _provider("description"), 2000
    ),
    "provider-request-id-header": Field(
        _admin("/admin/v1/providers"), _provider("requestIdHeader"), 100
    ),
}


async def _send(client, admin_headers, field: Field, value: str):
    method, path, headers = await field.target(client, admin_headers)
    body = field.body(value)
    if "agentId" in body:
        body["agentId"] = (await register_agent(client))["agentId"]
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("name", sorted(FIELDS))
async def test_a_string_at_its_limit_is_stored(client, admin_headers, name):
    # given
    field = FIELDS[name]

    # when
    response = await _send(client, admin_headers, field, field.text(field.limit))

    # then
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("name", sorted(FIELDS))
async def test_a_string_past_its_limit_is_a_validation_error(client, admin_headers, name):
    # given
    field = FIELDS[name]

    # when
    response = await _send(client, admin_headers, field, field.text(field.limit + 1))

    # then
    assert_error(response, 400, "VALIDATION_ERROR")
