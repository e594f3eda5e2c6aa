"""Builders for test data, all through the public HTTP API."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient


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
