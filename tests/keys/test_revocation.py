"""Revocation and disabling take effect in every API process within about a second."""

from __future__ import annotations

import asyncio
import time

from sqlmodel import col, select

from app.db.engine import create_engine, session_factory
from app.db.models.events import Event
from app.keys import service as keys
from tests.factories import (
    create_key,
    create_platform_agent,
    key_headers,
    master_headers,
    register_agent,
)

DEADLINE_SECONDS = 1.5


async def status_within(client, path: str, headers: dict[str, str], expected: int,
                        deadline: float = DEADLINE_SECONDS) -> tuple[int, float]:
    """Poll until ``expected`` or the deadline; return the last status and the time taken."""
    started = time.monotonic()
    while True:
        status = (await client.get(path, headers=headers)).status_code
        elapsed = time.monotonic() - started
        if status == expected or elapsed > deadline:
            return status, elapsed
        await asyncio.sleep(0.05)


async def test_a_key_revoked_in_one_process_is_refused_by_another_within_a_second(
    client, make_client, settings
):
    # given a second API process that has just accepted (and cached) a key
    other = await make_client(settings)
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])
    assert (await other.get("/v1/api-keys/info", headers=key_headers(extra["key"]))).is_success

    # when the first process revokes it
    revoked = await client.delete(f"/v1/api-keys/{extra['id']}",
                                  headers=key_headers(agent["apiKey"]))
    assert revoked.status_code == 200, revoked.text

    # then the second process refuses it within the deadline
    status, elapsed = await status_within(other, "/v1/api-keys/info",
                                          key_headers(extra["key"]), 401)
    assert status == 401, f"still accepted after {elapsed:.2f} s"


async def test_an_agent_disabled_in_one_process_is_refused_by_another_within_a_second(
    client, make_client, settings, platform
):
    # given a fleet agent whose key another process has cached
    other = await make_client(settings)
    fleet = await create_platform_agent(client, platform["masterKey"])
    assert (await other.get("/v1/api-keys/info", headers=key_headers(fleet["apiKey"]))).is_success

    # when the platform disables it through the first process
    await client.patch(f"/v1/platform/agents/{fleet['agent']['id']}", json={"disabled": True},
                       headers=master_headers(platform["masterKey"]))

    # then
    status, elapsed = await status_within(other, "/v1/api-keys/info",
                                          key_headers(fleet["apiKey"]), 403)
    assert status == 403, f"still accepted after {elapsed:.2f} s"


async def test_a_master_key_revoked_in_one_process_is_refused_by_another_within_a_second(
    client, make_client, settings, platform
):
    # given a second master key that another process has cached
    other = await make_client(settings)
    mk = master_headers(platform["masterKey"])
    second = (await client.post("/v1/platform/master-keys", json={}, headers=mk)).json()
    assert (await other.get("/v1/platform", headers=master_headers(second["key"]))).is_success

    # when
    await client.delete(f"/v1/platform/master-keys/{second['id']}", headers=mk)

    # then
    status, elapsed = await status_within(other, "/v1/platform", master_headers(second["key"]),
                                          401)
    assert status == 401, f"still accepted after {elapsed:.2f} s"


async def test_two_concurrent_revocations_emit_one_key_revoked_event(client, settings):
    # given a key that two transactions have both read while it was active
    agent = await register_agent(client)
    key = await create_key(client, agent["apiKey"])
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as first, session_factory(engine)() as second:
            mine = await keys.get(first, key["id"])
            theirs = await keys.get(second, key["id"])

            # when both revoke it, the second before the first has committed
            await keys.revoke(first, mine)
            racing = asyncio.create_task(keys.revoke(second, theirs))  # waits for the row
            await asyncio.sleep(0.2)
            await first.commit()
            await asyncio.wait_for(racing, timeout=30)
            await second.commit()
            events = (
                await first.exec(select(Event).where(col(Event.type) == "key.revoked"))
            ).all()
    finally:
        await engine.dispose()

    # then the key is revoked once, with one event, and both report the same revocation
    assert [e.data["keyId"] for e in events].count(key["id"]) == 1
    assert theirs.status == "revoked"
    assert theirs.revoked_at == mine.revoked_at
