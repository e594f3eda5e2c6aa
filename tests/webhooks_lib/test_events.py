from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from webhooks.events import (
    EVENT_DATA_TYPES,
    MAX_PAYLOAD_BYTES,
    OPERATOR_ONLY_EVENT_TYPES,
    PUBLIC_EVENT_TYPES,
    EventType,
    KeyCreated,
    PayloadTooLargeError,
    PaymentSettled,
    UnknownEventTypeError,
    WebhookTest,
    build_envelope,
    decode_envelope,
    matches,
    validate_event_types,
)

AT = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
SPEC_EVENT_TYPES = {
    "agent.registered",
    "key.created",
    "key.revoked",
    "key.rotated",
    "key.expired",
    "pass.purchased",
    "payment.pending",
    "payment.settled",
    "payment.failed",
    "payment.expired",
    "credits.deposited",
    "credits.low",
    "webhook.test",
}


def settled() -> PaymentSettled:
    return PaymentSettled(
        payment_id="pay_01JQ",
        agent_id="agt_01JQ",
        amount_micros=10_000_000,
        asset="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        network="base",
        pay_to="0x0000000000000000000000000000000000000001",
        payer="0x0000000000000000000000000000000000000002",
        transaction="0x" + "ab" * 32,
        settled_at=AT,
    )


def test_the_catalog_is_the_contract_plus_the_operator_event() -> None:
    assert {str(t) for t in PUBLIC_EVENT_TYPES} == SPEC_EVENT_TYPES
    assert {EventType.WEBHOOK_ENDPOINT_DISABLED} == OPERATOR_ONLY_EVENT_TYPES
    assert set(EVENT_DATA_TYPES) == set(EventType)


def test_the_envelope_is_compact_json_with_camel_case_data() -> None:
    body = build_envelope("payment.settled", settled(), AT)

    assert body.startswith(b'{"type":"payment.settled","timestamp":"2026-03-27T08:00:00Z","data":{')
    assert b" " not in body
    data = json.loads(body)["data"]
    assert data["paymentId"] == "pay_01JQ"
    assert data["amountMicros"] == 10_000_000
    assert data["settledAt"] == "2026-03-27T08:00:00Z"


def test_timestamps_are_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    event = WebhookTest(endpoint_id="whe_1", sent_at=datetime(2026, 3, 27, 9, 0, tzinfo=paris))

    body = json.loads(build_envelope("webhook.test", event, AT.astimezone(paris)))

    assert body["timestamp"] == "2026-03-27T08:00:00Z"
    assert body["data"]["sentAt"] == "2026-03-27T08:00:00Z"


def test_naive_timestamps_are_refused() -> None:
    event = WebhookTest(endpoint_id="whe_1", sent_at=datetime(2026, 3, 27, 8, 0))

    with pytest.raises(ValueError, match="timezone-aware"):
        build_envelope("webhook.test", event, AT)


def test_outbox_json_is_validated_against_the_shape() -> None:
    stored = json.loads(msgspec.json.encode(settled()))

    body = build_envelope("payment.settled", stored, AT)

    assert decode_envelope(body).data == settled()
    with pytest.raises(msgspec.ValidationError):
        build_envelope("payment.settled", {**stored, "amountMicros": "ten"}, AT)


def test_data_of_another_event_type_is_refused() -> None:
    with pytest.raises(TypeError, match="PaymentSettled"):
        build_envelope("payment.settled", WebhookTest(endpoint_id="whe_1", sent_at=AT), AT)


def test_unknown_event_types_are_refused() -> None:
    with pytest.raises(UnknownEventTypeError):
        build_envelope("payment.refunded", settled(), AT)


def test_payloads_of_64_kb_or_more_are_refused() -> None:
    def key_with_label(size: int) -> KeyCreated:
        return KeyCreated(
            key_id="key_1", key_type="agent", hint="ak_…abcd", label="x" * size, created_at=AT
        )

    assert len(build_envelope("key.created", key_with_label(60_000), AT)) < MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadTooLargeError):
        build_envelope("key.created", key_with_label(MAX_PAYLOAD_BYTES), AT)


def test_a_body_decodes_back_to_typed_data() -> None:
    envelope = decode_envelope(build_envelope("payment.settled", settled(), AT))

    assert envelope.type is EventType.PAYMENT_SETTLED
    assert envelope.timestamp == AT
    assert envelope.data == settled()


def test_an_empty_filter_matches_every_event() -> None:
    assert matches([], "payment.settled")
    assert matches(["payment.settled", "key.created"], "payment.settled")
    assert not matches(["key.created"], "payment.settled")


def test_filters_are_validated_and_deduplicated() -> None:
    assert validate_event_types(["key.created", "payment.settled", "key.created"]) == [
        "key.created",
        "payment.settled",
    ]
    with pytest.raises(UnknownEventTypeError, match=r"payment\.refunded"):
        validate_event_types(["payment.refunded"])


def test_platforms_cannot_subscribe_to_operator_events() -> None:
    with pytest.raises(UnknownEventTypeError):
        validate_event_types(["webhook.endpoint_disabled"])
    assert validate_event_types(["webhook.endpoint_disabled"], operator=True) == [
        "webhook.endpoint_disabled"
    ]
