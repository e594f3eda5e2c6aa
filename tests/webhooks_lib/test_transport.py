"""One delivery attempt against real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook

from tests.fixtures.webhook_receiver import Receiver, Reply
from tests.webhooks_lib.fakes import FAST, LOOPBACK_CIDRS, FakeResolver, ThrowawayCA
from webhooks.signing import build_headers, generate_secret
from webhooks.ssrf import SSRFPolicy
from webhooks.transport import TransportConfig, WebhookSender, parse_retry_after

BODY = b'{"type":"webhook.test","timestamp":"2026-03-27T08:00:00Z","data":{"endpointId":"whe_1"}}'
MSG_ID = "msg_01JQ0000000000000000000002"


def signed(secret: str | None = None) -> dict[str, str]:
    return build_headers(MSG_ID, BODY, [secret or generate_secret()])


async def test_a_2xx_answer_is_a_success_and_the_receiver_can_verify_it(
    sender: WebhookSender, receiver: Receiver
) -> None:
    # Given
    secret = generate_secret()
    receiver.routes["/hook"] = Reply(200, b'{"received":true}')

    # When
    result = await sender.send(receiver.url("/hook"), BODY, signed(secret))

    # Then
    assert result.success
    assert result.status_code == 200
    assert result.response_body == '{"received":true}'
    assert result.error is None
    assert result.gone is False
    assert 0 <= result.latency_ms < 1000
    [request] = receiver.hits("/hook")
    assert request.method == "POST"
    assert request.body == BODY
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "webhook.test"
    assert request.headers["user-agent"].startswith("passgate/")
    assert request.headers["content-type"] == "application/json"


async def test_a_cookie_one_receiver_sets_is_never_sent_to_another(
    sender: WebhookSender, receiver: Receiver
) -> None:
    # Given a receiver that answers with a cookie, and another endpoint on the same host
    receiver.routes["/first"] = Reply(200, b"ok", {"Set-Cookie": "session=first; Path=/"})
    receiver.routes["/second"] = Reply(200, b"ok")

    # When both get deliveries, the first one twice
    for path in ("/first", "/second", "/first"):
        assert (await sender.send(receiver.url(path), BODY, signed())).success

    # Then no delivery carried a cookie
    for path in ("/first", "/second"):
        for request in receiver.hits(path):
            assert "cookie" not in request.headers, (path, request.headers)


async def test_a_500_is_a_failure_with_the_first_kilobyte_of_the_body(
    sender: WebhookSender, receiver: Receiver
) -> None:
    receiver.routes["/hook"] = Reply(500, b"E" * 10_240)

    result = await sender.send(receiver.url("/hook"), BODY, signed())

    assert not result.success
    assert result.status_code == 500
    assert result.response_body == "E" * 1024
    assert result.error_kind == "http"
    assert result.error is not None
    assert "500" in result.error


async def test_the_body_preview_never_ends_in_half_a_character(
    sender: WebhookSender, receiver: Receiver
) -> None:
    # Given 1023 ASCII bytes then a 2-byte character straddling the 1 KB limit, and a NUL
    receiver.routes["/hook"] = Reply(400, b"\x00" + b"a" * 1022 + "é".encode() * 10)

    result = await sender.send(receiver.url("/hook"), BODY, signed())

    assert result.response_body == "\ufffd" + "a" * 1022


async def test_410_marks_the_endpoint_gone(sender: WebhookSender, receiver: Receiver) -> None:
    receiver.routes["/hook"] = Reply(410, b"unsubscribed")

    result = await sender.send(receiver.url("/hook"), BODY, signed())

    assert not result.success
    assert result.gone
    assert result.status_code == 410


async def test_a_redirect_is_a_failure_and_is_not_followed(
    sender: WebhookSender, receiver: Receiver
) -> None:
    # Given
    receiver.routes["/hook"] = Reply(302, b"", {"Location": receiver.url("/elsewhere")})
    receiver.routes["/elsewhere"] = Reply(200)

    # When
    result = await sender.send(receiver.url("/hook"), BODY, signed())

    # Then
    assert not result.success
    assert result.status_code == 302
    assert result.error_kind == "redirect"
    assert receiver.hits("/elsewhere") == []


async def test_a_slow_receiver_times_out_within_the_total_timeout(
    loopback_policy: SSRFPolicy, receiver: Receiver
) -> None:
    receiver.routes["/hook"] = Reply(200, delay=5)

    async with WebhookSender(loopback_policy, FAST) as sender:
        started = time.monotonic()
        result = await sender.send(receiver.url("/hook"), BODY, signed())
        elapsed = time.monotonic() - started

    assert not result.success
    assert result.error_kind == "timeout"
    assert result.status_code is None
    assert FAST.total_timeout - 0.1 <= elapsed < FAST.total_timeout + 1


async def test_a_closed_port_is_a_refused_connection(sender: WebhookSender) -> None:
    # Given a port nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = await sender.send(f"http://127.0.0.1:{port}/hook", BODY, signed())

    assert not result.success
    assert result.error_kind == "connect"
    assert result.error == "Connection refused."


async def test_retry_after_in_seconds_is_reported(
    sender: WebhookSender, receiver: Receiver
) -> None:
    receiver.routes["/hook"] = Reply(429, b"slow down", {"Retry-After": "120"})

    result = await sender.send(receiver.url("/hook"), BODY, signed())

    assert result.status_code == 429
    assert result.retry_after == 120


async def test_retry_after_as_an_http_date_is_reported(
    sender: WebhookSender, receiver: Receiver
) -> None:
    later = datetime.now(UTC) + timedelta(minutes=10)
    receiver.routes["/hook"] = Reply(503, b"", {"Retry-After": format_datetime(later, True)})

    result = await sender.send(receiver.url("/hook"), BODY, signed())

    assert result.status_code == 503
    assert result.retry_after is not None
    assert 590 <= result.retry_after <= 600


async def test_a_loopback_receiver_is_refused_without_the_allowlist(receiver: Receiver) -> None:
    # Given production's policy (no allowlist)
    async with WebhookSender(SSRFPolicy(), FAST) as strict:
        result = await strict.send(receiver.url("/hook"), BODY, signed())

    # Then nothing was even connected
    assert not result.success
    assert result.error_kind == "ssrf"
    assert receiver.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/hook",
        "ftp://127.0.0.1/hook",
        "http://user:pass@127.0.0.1/hook",
    ],
)
async def test_unsafe_urls_are_refused_before_connecting(sender: WebhookSender, url: str) -> None:
    result = await sender.send(url, BODY, signed())

    assert not result.success
    assert result.error_kind == "ssrf"


async def test_a_host_rebound_to_a_private_address_after_creation_is_refused(
    receiver: Receiver,
) -> None:
    # Given a name that resolves to the allowlisted receiver once, then to a private address
    resolver = FakeResolver({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
    policy = SSRFPolicy.from_cidrs(LOOPBACK_CIDRS, resolver=resolver)
    url = receiver.url("/hook", host="rebind.test")
    await policy.check_url(url)  # endpoint creation passes

    # When the delivery connects
    async with WebhookSender(policy, FAST) as client:
        result = await client.send(url, BODY, signed())

    # Then the connect-time check saw the new answer and refused before connecting
    assert result.error_kind == "ssrf"
    assert resolver.calls == ["rebind.test", "rebind.test"]
    assert receiver.connections == 0


async def test_a_hostname_is_pinned_to_the_vetted_address_keeping_its_host_header(
    receiver: Receiver,
) -> None:
    resolver = FakeResolver({"hooks.example.test": [["127.0.0.1"]]})
    policy = SSRFPolicy.from_cidrs(LOOPBACK_CIDRS, resolver=resolver)
    receiver.routes["/hook"] = Reply(204, b"")

    async with WebhookSender(policy, FAST) as client:
        result = await client.send(receiver.url("/hook", host="hooks.example.test"), BODY, signed())

    assert result.success
    assert resolver.calls == ["hooks.example.test"]
    [request] = receiver.hits("/hook")
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"


async def test_the_next_vetted_address_is_tried_when_one_refuses(receiver: Receiver) -> None:
    # Given a name with two loopback addresses; only 127.0.0.1 has a listener on the port
    resolver = FakeResolver({"two.test": [["127.0.0.2", "127.0.0.1"]]})
    policy = SSRFPolicy.from_cidrs(LOOPBACK_CIDRS, resolver=resolver)
    receiver.routes["/hook"] = Reply(200)

    async with WebhookSender(policy, FAST) as client:
        result = await client.send(receiver.url("/hook", host="two.test"), BODY, signed())

    assert result.success, result.error


async def test_tls_uses_the_hostname_for_sni_and_certificate_checks(
    throwaway_ca: ThrowawayCA,
) -> None:
    # Given an HTTPS receiver on 127.0.0.1 whose certificate names hooks.example.test
    receiver = await Receiver({"/hook": Reply(200, b"tls ok")}).start(
        tls=throwaway_ca.server_context("hooks.example.test")
    )
    resolver = FakeResolver({"hooks.example.test": [["127.0.0.1"]]})
    policy = SSRFPolicy.from_cidrs(LOOPBACK_CIDRS, resolver=resolver)
    try:
        async with WebhookSender(policy, FAST, verify=throwaway_ca.client_context()) as client:
            # When
            result = await client.send(
                receiver.url("/hook", host="hooks.example.test"), BODY, signed()
            )
    finally:
        await receiver.stop()

    # Then the handshake named the host, not the address we connected to
    assert result.success, result.error
    assert result.response_body == "tls ok"
    assert receiver.sni_names == ["hooks.example.test"]


async def test_a_certificate_for_another_name_fails_the_attempt(
    throwaway_ca: ThrowawayCA,
) -> None:
    receiver = await Receiver({"/hook": Reply(200)}).start(
        tls=throwaway_ca.server_context("someone-else.test")
    )
    resolver = FakeResolver({"hooks.example.test": [["127.0.0.1"]]})
    policy = SSRFPolicy.from_cidrs(LOOPBACK_CIDRS, resolver=resolver)
    try:
        async with WebhookSender(policy, FAST, verify=throwaway_ca.client_context()) as client:
            result = await client.send(
                receiver.url("/hook", host="hooks.example.test"), BODY, signed()
            )
    finally:
        await receiver.stop()

    assert not result.success
    assert result.error_kind == "tls"
    assert receiver.requests == []


async def test_an_unresolvable_host_is_a_dns_failure() -> None:
    policy = SSRFPolicy.from_cidrs(LOOPBACK_CIDRS, resolver=FakeResolver())

    async with WebhookSender(policy, FAST) as client:
        result = await client.send("http://gone.test/hook", BODY, signed())

    assert result.error_kind == "dns"


async def test_the_connection_timeout_is_configurable() -> None:
    config = TransportConfig(total_timeout=3, connect_timeout=0.2)
    resolver = FakeResolver({"slow-dns.test": [["127.0.0.1"]]}, delay=2)
    policy = SSRFPolicy.from_cidrs(LOOPBACK_CIDRS, resolver=resolver)

    started = time.monotonic()
    async with WebhookSender(policy, config) as client:
        result = await client.send("http://slow-dns.test/hook", BODY, signed())

    assert result.error_kind == "dns"
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), ("0", 0.0), ("  7 ", 7.0), ("", None), ("soon", None), (None, None)],
)
def test_retry_after_values_parse(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_a_retry_after_date_in_the_past_means_now() -> None:
    now = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)

    assert parse_retry_after("Fri, 27 Mar 2026 07:00:00 GMT", now=now) == 0
    assert parse_retry_after("Fri, 27 Mar 2026 08:01:30 GMT", now=now) == 90
