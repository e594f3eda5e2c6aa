"""Builders for test data, all through the public HTTP API."""

from __future__ import annotations

import secrets
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient, Response

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def with_checksum(head: str) -> str:
    """``head`` + its 6-character base62 CRC32, written independently of the app's code."""
    number, chars = zlib.crc32(head.encode()), []
    while number:
        number, rest = divmod(number, 62)
        chars.append(BASE62[rest])
    return head + "".join(reversed(chars)).rjust(6, "0")


def well_formed_key(prefix: str, random_chars: int = 27) -> str:
    """A key with a valid checksum that no one has issued."""
    body = "".join(secrets.choice(BASE62) for _ in range(random_chars))
    return with_checksum(f"{prefix}_{body}")


def unique(name: str = "agent") -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def register_agent(client: AsyncClient, name: str | None = None) -> dict[str, Any]:
    response = await client.post("/v1/agents/register", json={"name": name or unique()})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def key_headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def create_key(client: AsyncClient, agent_key: str, label: str = "extra",
                     **extra: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/api-keys", json={"label": label, **extra}, headers=key_headers(agent_key)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_platform(client: AsyncClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        "/admin/v1/platforms", json={"name": unique("platform")}, headers=admin_headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def master_headers(key: str) -> dict[str, str]:
    return {"X-Master-Key": key}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rfc3339_in(seconds: float) -> str:
    """An RFC 3339 UTC timestamp ``seconds`` from now (sub-second precision)."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")


def assert_error(response: Response, status: int, code: str) -> dict[str, Any]:
    """The SPEC error body: ``{"error", "code", "requestId"}`` with the request id header."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["requestId"]
    assert body["requestId"] == response.headers["x-request-id"]
    return body


async def create_platform_agent(
    client: AsyncClient, master_key: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/platform/agents", json={"name": unique("fleet"), **fields},
        headers=master_headers(master_key),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
