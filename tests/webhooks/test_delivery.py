"""Signed delivery through the real Redis broker and worker to receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from tests.factories import create_platform_agent, master_headers
from tests.fixtures.webhook_receiver import Receiver, Reply
from tests.webhooks.conftest import (
    StackFactory,
    WorkerHarness,
    create_endpoint,
    deliveries,
    new_platform,
    verified,
    wait_for,
)

OperatorEndpoints = Callable[..., Awaitable[dict[str, Any]]]
TEST_ONLY = {"eventTypes": ["webhook.test"]}  # endpoints that only get what a test sends them


async def send_test(client: AsyncTestClient[Litestar], key: str, endpoint_id: str) -> str:
    response = await client.post(f"/v1/platform/webhooks/{endpoint_id}/test",
                                 headers=master_headers(key))
    assert response.status_code == 202, response.text
    message_id: str = response.json()["messageId"]
    return message_id


async def message_status(client: AsyncTestClient[Litestar], key: str, endpoint_id: str,
                         message_id: str) -> dict[str, Any]:
    rows = await deliveries(client, key, endpoint_id)
    return next(r for r in rows if r["id"] == message_id)


async def test_a_platform_event_arrives_signed_and_verifies_with_standardwebhooks(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness,
) -> None:
    # Given a platform with an endpoint
    receiver.routes["/hook"] = Reply(200)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"))

    # When the platform creates an agent (agent.registered + key.created)
    agent = await create_platform_agent(api, platform["key"])

    # Then both events arrive, each verifying with the endpoint's secret
    await wait_for(lambda: len(receiver.hits("/hook")) >= 2, what="two deliveries")
    payloads = [verified(r, endpoint["secret"]) for r in receiver.hits("/hook")]
    assert {p["type"] for p in payloads} == {"agent.registered", "key.created"}
    registered = next(p for p in payloads if p["type"] == "agent.registered")
    assert registered["data"]["agentId"] == agent["agent"]["id"]
    assert registered["data"]["platformId"] == platform["id"]
    assert registered["timestamp"].endswith("Z")
    request = receiver.hits("/hook")[0]
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["user-agent"].startswith("passgate/")

    # And the deliveries log shows each message delivered at the first attempt
    async def all_delivered() -> bool:
        rows = await deliveries(api, platform["key"], endpoint["id"])
        return len(rows) == 2 and all(r["status"] == "delivered" for r in rows)

    await wait_for(all_delivered, what="delivered status")
    rows = await deliveries(api, platform["key"], endpoint["id"])
    assert {r["id"] for r in rows} == {r.headers["webhook-id"] for r in receiver.hits("/hook")}
    attempt = rows[0]["attempts"][0]
    assert attempt["success"] is True
    assert attempt["statusCode"] == 200
    assert attempt["responseBody"] == "ok"


async def test_platforms_only_receive_their_own_events_of_the_types_they_chose(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness, operator_endpoints: OperatorEndpoints,
) -> None:
    # Given platform A subscribed to key.created only, platform B to everything, an operator
    for path in ("/a", "/b", "/operator"):
        receiver.routes[path] = Reply(200)
    a = await new_platform(api, admin_headers)
    b = await new_platform(api, admin_headers)
    endpoint_a = await create_endpoint(api, a["key"], receiver.url("/a"),
                                       eventTypes=["key.created"])
    endpoint_b = await create_endpoint(api, b["key"], receiver.url("/b"))
    operator = await operator_endpoints(receiver.url("/operator"))

    # When each platform creates an agent
    agent_a = await create_platform_agent(api, a["key"])
    agent_b = await create_platform_agent(api, b["key"])
    mine = {agent_a["agent"]["id"], agent_b["agent"]["id"]}

    # Then the operator gets all four events, B its two, A only its key.created
    def operator_payloads() -> list[dict[str, Any]]:
        payloads = [verified(r, operator["secret"]) for r in receiver.hits("/operator")]
        return [p for p in payloads if p["data"].get("agentId") in mine]

    await wait_for(lambda: len(operator_payloads()) >= 4, what="operator deliveries")
    await wait_for(lambda: len(receiver.hits("/b")) >= 2 and len(receiver.hits("/a")) >= 1,
                   what="platform deliveries")
    await asyncio.sleep(0.3)  # anything misrouted would have arrived with the rest
    got_a = [verified(r, endpoint_a["secret"]) for r in receiver.hits("/a")]
    got_b = [verified(r, endpoint_b["secret"]) for r in receiver.hits("/b")]
    assert [(p["type"], p["data"]["agentId"]) for p in got_a] == [
        ("key.created", agent_a["agent"]["id"])
    ]
    assert {p["data"]["agentId"] for p in got_b} == {agent_b["agent"]["id"]}
    assert {p["type"] for p in got_b} == {"agent.registered", "key.created"}


async def test_a_test_send_reaches_only_that_endpoint(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness,
) -> None:
    receiver.routes["/one"] = Reply(200)
    receiver.routes["/two"] = Reply(200)
    platform = await new_platform(api, admin_headers)
    one = await create_endpoint(api, platform["key"], receiver.url("/one"), **TEST_ONLY)
    await create_endpoint(api, platform["key"], receiver.url("/two"))

    await send_test(api, platform["key"], one["id"])

    await wait_for(lambda: len(receiver.hits("/one")) == 1, what="the test event")
    await asyncio.sleep(0.3)
    payload = verified(receiver.hits("/one")[0], one["secret"])
    assert payload["type"] == "webhook.test"
    assert payload["data"]["endpointId"] == one["id"]
    assert receiver.hits("/two") == []


async def test_a_500_is_retried_on_the_schedule_and_every_attempt_is_logged(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness,
) -> None:
    # Given a receiver that fails once, then recovers
    receiver.routes["/hook"] = [Reply(500, b"boom"), Reply(200, b"thanks")]
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"), **TEST_ONLY)

    # When a message is sent
    message_id = await send_test(api, platform["key"], endpoint["id"])

    # Then it is retried after the first delay (0.3 s) with the same id and body
    await wait_for(lambda: len(receiver.hits("/hook")) >= 2, what="the retry")
    first, second = receiver.hits("/hook")[:2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == message_id
    assert first.body == second.body
    assert 0.25 <= second.at - first.at < 3.0
    verified(second, endpoint["secret"])

    async def delivered() -> bool:
        row = await message_status(api, platform["key"], endpoint["id"], message_id)
        return bool(row["status"] == "delivered")

    await wait_for(delivered, what="delivered status")
    row = await message_status(api, platform["key"], endpoint["id"], message_id)
    assert row["attemptCount"] == 2
    failed, ok = row["attempts"]
    assert (failed["success"], failed["statusCode"], failed["responseBody"]) == (False, 500, "boom")
    assert failed["error"]
    assert failed["errorKind"] == "http"
    assert (ok["success"], ok["statusCode"], ok["responseBody"]) == (True, 200, "thanks")
    assert isinstance(ok["latencyMs"], int)
    # And the endpoint's failure streak ended with the success
    response = await api.get(f"/v1/platform/webhooks/{endpoint['id']}",
                             headers=master_headers(platform["key"]))
    assert response.json()["failingSince"] is None


async def test_a_410_disables_the_endpoint_and_tells_the_operator(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness, operator_endpoints: OperatorEndpoints,
) -> None:
    receiver.routes["/gone"] = Reply(410, b"unsubscribed")
    receiver.routes["/operator"] = Reply(200)
    receiver.routes["/all"] = Reply(200)
    operator = await operator_endpoints(receiver.url("/operator"),
                                        eventTypes=["webhook.endpoint_disabled"])
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/gone"), **TEST_ONLY)
    # The platform's other endpoint takes every type, yet never operator-only ones
    await create_endpoint(api, platform["key"], receiver.url("/all"))

    message_id = await send_test(api, platform["key"], endpoint["id"])

    def disabled_events() -> list[dict[str, Any]]:
        payloads = [verified(r, operator["secret"]) for r in receiver.hits("/operator")]
        return [p for p in payloads if p["data"]["endpointId"] == endpoint["id"]]

    await wait_for(lambda: len(disabled_events()) == 1, what="webhook.endpoint_disabled")
    event = disabled_events()[0]
    assert event["type"] == "webhook.endpoint_disabled"
    assert event["data"]["reason"] == "gone"
    assert event["data"]["platformId"] == platform["id"]
    assert len(receiver.hits("/gone")) == 1  # no retry after a 410
    await asyncio.sleep(0.3)
    assert receiver.hits("/all") == []
    view = (await api.get(f"/v1/platform/webhooks/{endpoint['id']}",
                          headers=master_headers(platform["key"]))).json()
    assert view["enabled"] is False
    assert view["disabledReason"] == "gone"
    row = await message_status(api, platform["key"], endpoint["id"], message_id)
    assert row["status"] == "failed"
    assert row["attempts"][0]["statusCode"] == 410
    # The operator's admin view lists it among the disabled endpoints
    listed = (await api.get("/admin/v1/webhooks", params={"enabled": "false",
                                                          "platformId": platform["id"]},
                            headers=admin_headers)).json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]]


async def test_a_receiver_failing_past_the_threshold_is_disabled(
    stack: StackFactory, admin_headers: dict[str, str], receiver: Receiver,
) -> None:
    # Given a 0.5 s threshold instead of 5 days and retries every 0.3 s
    api, _ = await stack(webhook_disable_after_seconds=0.5,
                         webhook_retry_delays=[0.3, 0.3, 0.3, 0.3, 0.3])
    receiver.routes["/down"] = Reply(503, b"maintenance")
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/down"), **TEST_ONLY)

    message_id = await send_test(api, platform["key"], endpoint["id"])

    async def disabled() -> bool:
        view = (await api.get(f"/v1/platform/webhooks/{endpoint['id']}",
                              headers=master_headers(platform["key"]))).json()
        return view["enabled"] is False

    await wait_for(disabled, what="the endpoint to be disabled")
    view = (await api.get(f"/v1/platform/webhooks/{endpoint['id']}",
                          headers=master_headers(platform["key"]))).json()
    assert view["disabledReason"] == "failing"
    assert view["failingSince"] is not None
    row = await message_status(api, platform["key"], endpoint["id"], message_id)
    assert row["status"] == "failed"
    assert 2 <= row["attemptCount"] <= 4
    assert all(a["statusCode"] == 503 for a in row["attempts"])


async def test_a_timeout_is_recorded_as_a_failed_attempt(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness,
) -> None:
    # The receiver answers after 3 s; attempts time out after 1 s
    receiver.routes["/slow"] = Reply(200, delay=3.0)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/slow"), **TEST_ONLY)

    message_id = await send_test(api, platform["key"], endpoint["id"])

    async def attempted() -> bool:
        row = await message_status(api, platform["key"], endpoint["id"], message_id)
        return bool(row["attempts"])

    await wait_for(attempted, what="the first attempt")
    row = await message_status(api, platform["key"], endpoint["id"], message_id)
    attempt = row["attempts"][0]
    assert attempt["success"] is False
    assert attempt["statusCode"] is None
    assert attempt["errorKind"] == "timeout"
    assert 900 <= attempt["latencyMs"] < 2500
    assert row["status"] == "pending"
    assert row["nextAttemptAt"] is not None


async def test_a_redirect_is_a_failure_and_is_not_followed(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness,
) -> None:
    receiver.routes["/moved"] = Reply(302, b"", headers={"Location": receiver.url("/final")})
    receiver.routes["/final"] = Reply(200)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/moved"), **TEST_ONLY)

    message_id = await send_test(api, platform["key"], endpoint["id"])

    async def attempted() -> bool:
        row = await message_status(api, platform["key"], endpoint["id"], message_id)
        return bool(row["attempts"])

    await wait_for(attempted, what="the first attempt")
    row = await message_status(api, platform["key"], endpoint["id"], message_id)
    attempt = row["attempts"][0]
    assert (attempt["success"], attempt["statusCode"], attempt["errorKind"]) == (
        False, 302, "redirect"
    )
    assert receiver.hits("/final") == []


async def test_during_a_rotation_both_signatures_verify_with_their_own_secrets(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness,
) -> None:
    # Given an endpoint whose secret was just rotated
    receiver.routes["/hook"] = Reply(200)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"), **TEST_ONLY)
    old = endpoint["secret"]
    response = await api.post(f"/v1/platform/webhooks/{endpoint['id']}/rotate-secret",
                              headers=master_headers(platform["key"]))
    assert response.status_code == 200, response.text
    new = response.json()["secret"]
    assert new != old
    assert new.startswith("whsec_")

    # When a message is delivered
    await send_test(api, platform["key"], endpoint["id"])
    await wait_for(lambda: len(receiver.hits("/hook")) == 1, what="the delivery")

    # Then it carries two signatures, newest first, each verifying with its own secret
    request = receiver.hits("/hook")[0]
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    for signature, secret in zip(signatures, (new, old), strict=True):
        only = {**request.headers, "webhook-signature": signature}
        Webhook(secret).verify(request.body, only)
    # And X-Signature uses the new secret
    verified(request, new)


async def test_failed_messages_are_replayed_at_a_bounded_rate(
    stack: StackFactory, admin_headers: dict[str, str], receiver: Receiver,
) -> None:
    # Given an endpoint that was down: three messages failed (no retries configured)
    api, _ = await stack(webhook_retry_delays=[], webhook_replay_per_second=5.0)
    receiver.routes["/hook"] = Reply(500)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"), **TEST_ONLY)
    headers = master_headers(platform["key"])
    since = (await api.get(f"/v1/platform/webhooks/{endpoint['id']}", headers=headers)).json()[
        "createdAt"]
    sent = [await send_test(api, platform["key"], endpoint["id"]) for _ in range(3)]

    async def all_failed() -> bool:
        rows = await deliveries(api, platform["key"], endpoint["id"])
        return len(rows) == 3 and all(r["status"] == "failed" for r in rows)

    await wait_for(all_failed, what="three failed messages")

    # When the receiver is back and the failed messages are replayed
    receiver.routes["/hook"] = Reply(200)
    before = len(receiver.hits("/hook"))
    asked = time.monotonic()
    response = await api.post(f"/v1/platform/webhooks/{endpoint['id']}/replay",
                              json={"since": since}, headers=headers)

    # Then all three are delivered again, same ids, no faster than 5 per second
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["replayed"], body["more"], body["ratePerSecond"]) == (3, False, 5.0)
    await wait_for(lambda: len(receiver.hits("/hook")) >= before + 3, what="replays")
    replays = receiver.hits("/hook")[before:]
    assert sorted(r.headers["webhook-id"] for r in replays) == sorted(sent)
    # The n-th replay is not sent before its slot, n x 0.2 s after the request
    for slot, request in enumerate(replays):
        assert request.at - asked >= slot * 0.2 - 0.06, [r.at - asked for r in replays]
    for request in replays:
        verified(request, endpoint["secret"])
    # And nothing is left to replay
    again = await api.post(f"/v1/platform/webhooks/{endpoint['id']}/replay",
                           json={"since": since}, headers=headers)
    assert again.json()["replayed"] == 0


async def test_the_operator_replays_one_message(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness,
) -> None:
    receiver.routes["/hook"] = Reply(200)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"), **TEST_ONLY)
    message_id = await send_test(api, platform["key"], endpoint["id"])
    await wait_for(lambda: len(receiver.hits("/hook")) == 1, what="the first delivery")

    async def delivered() -> bool:
        response = await api.get(f"/admin/v1/webhooks/messages/{message_id}",
                                 headers=admin_headers)
        return bool(response.json()["status"] == "delivered")

    await wait_for(delivered, what="delivered status")
    response = await api.post(f"/admin/v1/webhooks/messages/{message_id}/replay",
                              headers=admin_headers)

    assert response.status_code == 202, response.text
    await wait_for(lambda: len(receiver.hits("/hook")) == 2, what="the replay")
    first, second = receiver.hits("/hook")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == message_id
    assert first.body == second.body
    await wait_for(delivered, what="delivered again")
    log = (await api.get("/admin/v1/audit-log", params={"targetId": message_id},
                         headers=admin_headers)).json()["data"]
    assert [e["action"] for e in log] == ["webhook_message.replay"]


async def test_disabling_an_endpoint_fails_its_pending_messages(
    stack: StackFactory, admin_headers: dict[str, str], receiver: Receiver,
) -> None:
    # Given a message waiting for its retry (delays of 30 s)
    api, _ = await stack(webhook_retry_delays=[30.0])
    receiver.routes["/hook"] = Reply(500)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"), **TEST_ONLY)
    headers = master_headers(platform["key"])
    message_id = await send_test(api, platform["key"], endpoint["id"])
    await wait_for(lambda: len(receiver.hits("/hook")) == 1, what="the first attempt")

    # When the platform disables the endpoint
    response = await api.patch(f"/v1/platform/webhooks/{endpoint['id']}",
                               json={"enabled": False}, headers=headers)

    # Then the message fails at once (replayable after re-enabling), and tests are refused
    assert response.status_code == 200, response.text
    assert response.json()["disabledReason"] == "manual"
    row = await message_status(api, platform["key"], endpoint["id"], message_id)
    assert row["status"] == "failed"
    refused = await api.post(f"/v1/platform/webhooks/{endpoint['id']}/test", headers=headers)
    assert refused.status_code == 409


async def test_a_burst_larger_than_the_send_slots_is_delivered_in_waves_exactly_once(
    stack: StackFactory, admin_headers: dict[str, str], receiver: Receiver,
) -> None:
    # Given nine events waiting while no worker runs, and workers sending two at a time
    api, harness = await stack(start_worker=False, webhook_send_concurrency=2)
    receiver.routes["/hook"] = Reply(200)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/hook"),
                                     eventTypes=["agent.registered"])
    agents = [await create_platform_agent(api, platform["key"]) for _ in range(9)]

    # When a worker starts (one fan-out job takes the whole batch)
    await harness.start()

    # Then every event arrives once, signed
    await wait_for(lambda: len(receiver.hits("/hook")) >= 9, what="nine deliveries")
    await asyncio.sleep(0.3)
    payloads = [verified(r, endpoint["secret"]) for r in receiver.hits("/hook")]
    assert sorted(p["data"]["agentId"] for p in payloads) == sorted(
        a["agent"]["id"] for a in agents)

    async def all_delivered() -> bool:
        rows = await deliveries(api, platform["key"], endpoint["id"])
        return len(rows) == 9 and all(r["status"] == "delivered" for r in rows)

    await wait_for(all_delivered, what="nine delivered messages")
