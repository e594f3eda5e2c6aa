from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import webhooks
from webhooks.signing import (
    InvalidSecretError,
    build_headers,
    generate_secret,
    parse_secret,
    sign,
    x_signature,
)

BODY = b'{"type":"payment.settled","timestamp":"2026-03-27T08:00:00Z","data":{"amountMicros":1}}'
MSG_ID = "msg_01JQ0000000000000000000000"


def test_generated_secrets_are_prefixed_base64_of_32_random_bytes() -> None:
    # Given / when
    first, second = generate_secret(), generate_secret()

    # Then
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert parse_secret(first) == base64.b64decode(first.removeprefix("whsec_"))
    assert first != second


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "c2VjcmV0",  # no prefix
        "whsec_",
        "whsec_not*base64!",
        "whsec_" + base64.b64encode(b"x" * 8).decode(),  # too short
        "whsec_" + base64.b64encode(b"x" * 65).decode(),  # too long
    ],
)
def test_malformed_secrets_are_rejected_without_echoing_them(bad: str) -> None:
    with pytest.raises(InvalidSecretError) as excinfo:
        parse_secret(bad)
    if len(bad) > len("whsec_"):
        assert bad.removeprefix("whsec_") not in str(excinfo.value)


def test_headers_verify_with_the_standardwebhooks_package() -> None:
    # Given
    secret = generate_secret()

    # When
    headers = build_headers(MSG_ID, BODY, [secret])

    # Then
    assert Webhook(secret).verify(BODY, headers)["data"] == {"amountMicros": 1}


def test_headers_verify_with_our_own_helper() -> None:
    secret = generate_secret()

    headers = build_headers(MSG_ID, BODY, [secret])

    assert webhooks.verify(BODY, headers, secret)["type"] == "payment.settled"


def test_header_set_is_complete() -> None:
    headers = build_headers(MSG_ID, BODY, [generate_secret()], timestamp=1_774_598_400)

    assert headers["webhook-id"] == MSG_ID
    assert headers["webhook-timestamp"] == "1774598400"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("passgate/")
    assert set(headers) == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Signature",
        "Content-Type",
        "User-Agent",
    }


def test_signature_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    # Given
    secret = generate_secret()
    key = parse_secret(secret)

    # When
    value = sign(MSG_ID, 1_774_598_400, BODY, [secret])

    # Then: recomputed with the standard library, independently of the cryptography backend
    expected = hmac.new(key, f"{MSG_ID}.1774598400.".encode() + BODY, hashlib.sha256).digest()
    assert value == "v1," + base64.b64encode(expected).decode()


def test_x_signature_is_hex_hmac_of_the_raw_body_with_the_newest_secret() -> None:
    new, old = generate_secret(), generate_secret()

    headers = build_headers(MSG_ID, BODY, [new, old])

    expected = hmac.new(parse_secret(new), BODY, hashlib.sha256).hexdigest()
    assert headers["X-Signature"] == expected == x_signature(BODY, new)


def test_during_rotation_each_secret_verifies_its_own_signature() -> None:
    # Given a rotation: the new secret first, the old one still live
    new, old, unrelated = generate_secret(), generate_secret(), generate_secret()

    # When
    headers = build_headers(MSG_ID, BODY, [new, old])

    # Then
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(BODY, headers)
    assert Webhook(old).verify(BODY, headers)
    assert webhooks.verify(BODY, headers, new)
    assert webhooks.verify(BODY, headers, old)
    with pytest.raises(WebhookVerificationError):
        Webhook(unrelated).verify(BODY, headers)
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify(BODY, headers, unrelated)


def test_the_timestamp_defaults_to_now() -> None:
    headers = build_headers(MSG_ID, BODY, [generate_secret()])

    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5


@pytest.mark.parametrize("msg_id", ["", "msg.with.dots", "msg id"])
def test_message_ids_that_would_break_the_signed_content_are_refused(msg_id: str) -> None:
    with pytest.raises(ValueError, match="Message ids"):
        sign(msg_id, 1, BODY, [generate_secret()])


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="At least one secret"):
        sign(MSG_ID, 1, BODY, [])
