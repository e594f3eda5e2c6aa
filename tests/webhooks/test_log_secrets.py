"""No secret in the logs: real requests and actors at DEBUG, their whole output scanned."""

from __future__ import annotations

from app.operator import create_admin_token
from tests.factories import (
    bearer,
    create_key,
    create_platform_agent,
    key_headers,
    master_headers,
    register_agent,
)
from tests.fixtures.webhook_receiver import Receiver, Reply
from tests.logcapture import captured, json_lines
from tests.webhooks.conftest import (
    StackFactory,
    create_endpoint,
    deliveries,
    new_platform,
    wait_for,
)
from tests.webhooks.test_delivery import TEST_ONLY, send_test


async def test_no_secret_a_test_created_appears_in_the_api_and_worker_logs(
    stack: StackFactory, admin_headers: dict[str, str], receiver: Receiver, capsys
) -> None:
    # Given an API and a worker logging JSON at DEBUG, and a receiver failing once
    api, _ = await stack(log_format="json", log_level="DEBUG")
    receiver.routes["/hook"] = Reply(200)
    receiver.routes["/flaky"] = Reply(503)
    secrets: list[str] = [admin_headers["Authorization"].removeprefix("Bearer ")]

    # When keys, claim codes, tokens and webhook secrets are created and used
    agent = await register_agent(api)
    secrets += [agent["apiKey"], agent["claimCode"]]
    await api.get(f"/v1/claims/{agent['claimCode']}")
    await api.get(f"/v1/no-such-route/{agent['apiKey']}")
    personal = await create_key(api, agent["apiKey"])
    secrets.append(personal["key"])
    await api.get("/v1/api-keys/info", headers=key_headers(personal["key"]))
    _, admin_token = await create_admin_token(api.app.state.runtime.settings, "log-test")
    secrets.append(admin_token)
    await api.get("/admin/v1/platforms", headers=bearer(admin_token))
    platform = await new_platform(api, admin_headers)
    secrets.append(platform["key"])
    fleet_agent = await create_platform_agent(api, platform["key"])
    secrets.append(fleet_agent["apiKey"])
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"), **TEST_ONLY)
    flaky = await create_endpoint(api, platform["key"], receiver.url("/flaky"), **TEST_ONLY)
    path = f"/v1/platform/webhooks/{endpoint['id']}"
    rotated = await api.post(f"{path}/rotate-secret", headers=master_headers(platform["key"]))
    secrets += [endpoint["secret"], flaky["secret"], rotated.json()["secret"]]
    delivered = await send_test(api, platform["key"], endpoint["id"])
    retried = await send_test(api, platform["key"], flaky["id"])

    async def attempted() -> bool:
        ok = await deliveries(api, platform["key"], endpoint["id"])
        failing = await deliveries(api, platform["key"], flaky["id"])
        return (any(r["id"] == delivered and r["status"] == "delivered" for r in ok)
                and any(r["id"] == retried and r["status"] == "failed" for r in failing))

    await wait_for(attempted, what="a delivery and a failed message")
    output = captured(capsys)

    # Then the requests and the jobs were logged as JSON lines with their ids (a failed
    # attempt names its job, message and endpoint), and no secret is in them
    lines = json_lines(output)
    assert any(line["logger"] == "passgate.access" for line in lines)
    failures = [line for line in lines if line["logger"] == "passgate.webhooks"
                and line.get("message_id") == retried]
    assert failures
    assert all(line["endpoint_id"] == flaky["id"] and line["actor"] == "webhook_deliver"
               and line["job_id"] for line in failures)
    leaked = [secret for secret in secrets if secret in output]
    assert leaked == []
