from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

import webhooks
from webhooks.signing import build_headers, generate_secret
from webhooks.verify import (
    InvalidSignatureError,
    MissingHeaderError,
    TimestampOutOfToleranceError,
    WebhookVerificationError,
    verify,
)

BODY = b'{"type":"webhook.test","timestamp":"2026-03-27T08:00:00Z","data":{"endpointId":"whe_1"}}'
MSG_ID = "msg_01JQ0000000000000000000001"


@pytest.fixture
def secret() -> str:
    return generate_secret()


def test_package_exports_verify_as_a_function(secret: str) -> None:
    headers = build_headers(MSG_ID, BODY, [secret])

    assert webhooks.verify(BODY, headers, secret)["data"] == {"endpointId": "whe_1"}


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_named(secret: str, missing: str) -> None:
    headers = build_headers(MSG_ID, BODY, [secret])
    del headers[missing]

    with pytest.raises(MissingHeaderError, match=missing):
        verify(BODY, headers, secret)


def test_header_names_are_case_insensitive(secret: str) -> None:
    headers = {k.upper(): v for k, v in build_headers(MSG_ID, BODY, [secret]).items()}

    assert verify(BODY, headers, secret)["type"] == "webhook.test"


def test_an_old_message_is_rejected_as_a_replay(secret: str) -> None:
    # Given a message signed six minutes ago
    sent = int(time.time()) - 360
    headers = build_headers(MSG_ID, BODY, [secret], timestamp=sent)

    # Then the default 5-minute tolerance refuses it, a wider one accepts it
    with pytest.raises(TimestampOutOfToleranceError):
        verify(BODY, headers, secret)
    assert verify(BODY, headers, secret, tolerance_seconds=600)


def test_a_message_from_the_future_is_rejected(secret: str) -> None:
    headers = build_headers(MSG_ID, BODY, [secret], timestamp=int(time.time()) + 400)

    with pytest.raises(TimestampOutOfToleranceError):
        verify(BODY, headers, secret)


def test_tolerance_is_measured_against_the_given_clock(secret: str) -> None:
    headers = build_headers(MSG_ID, BODY, [secret], timestamp=1_000_000)

    assert verify(BODY, headers, secret, now=1_000_299)
    with pytest.raises(TimestampOutOfToleranceError):
        verify(BODY, headers, secret, now=1_000_301)


def test_a_non_numeric_timestamp_is_rejected(secret: str) -> None:
    headers = build_headers(MSG_ID, BODY, [secret]) | {"webhook-timestamp": "yesterday"}

    with pytest.raises(TimestampOutOfToleranceError):
        verify(BODY, headers, secret)


def test_a_tampered_body_is_rejected(secret: str) -> None:
    headers = build_headers(MSG_ID, BODY, [secret])

    with pytest.raises(InvalidSignatureError):
        verify(BODY.replace(b"whe_1", b"whe_2"), headers, secret)


def test_a_signature_moved_to_another_message_id_is_rejected(secret: str) -> None:
    headers = build_headers(MSG_ID, BODY, [secret]) | {"webhook-id": "msg_other"}

    with pytest.raises(InvalidSignatureError):
        verify(BODY, headers, secret)


def test_any_of_several_v1_signatures_may_match(secret: str) -> None:
    good = build_headers(MSG_ID, BODY, [secret])["webhook-signature"]
    noise = "v1," + base64.b64encode(b"\0" * 32).decode()
    headers = build_headers(MSG_ID, BODY, [secret]) | {
        "webhook-signature": f"v2,abc {noise} v1,@@notbase64@@ {good}"
    }

    assert verify(BODY, headers, secret)


def test_other_signature_versions_are_ignored(secret: str) -> None:
    good = build_headers(MSG_ID, BODY, [secret])["webhook-signature"]
    headers = build_headers(MSG_ID, BODY, [secret]) | {
        "webhook-signature": good.replace("v1,", "v2,")
    }

    with pytest.raises(InvalidSignatureError):
        verify(BODY, headers, secret)


def test_a_signed_body_that_is_not_a_json_object_is_rejected(secret: str) -> None:
    body = b"[1, 2, 3]"
    headers = build_headers(MSG_ID, body, [secret])

    with pytest.raises(WebhookVerificationError, match="JSON object"):
        verify(body, headers, secret)


def test_messages_signed_by_the_standardwebhooks_package_verify_too(secret: str) -> None:
    # Given a message signed by the reference implementation
    now = datetime.now(UTC).replace(microsecond=0)
    signature = Webhook(secret).sign(MSG_ID, now, BODY.decode())
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }

    # Then
    assert verify(BODY, headers, secret)["type"] == "webhook.test"
