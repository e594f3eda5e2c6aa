"""The webhook event catalog: every type, the shape of its ``data``, and the envelope.

A delivery body is ``{"type": "...", "timestamp": "<RFC 3339>", "data": {...}}`` as compact JSON.
``data`` keys are camelCase; ids are the prefixed opaque strings (``agt_``, ``key_``, ``pay_``,
``whe_`` ...); money is an integer number of USDC base units in ``...Micros`` fields
(``1000000`` = 1 USD); times are RFC 3339 UTC. Fields are only ever added to a shape, never
renamed or removed, so receivers should ignore keys they don't know.

``webhook.endpoint_disabled`` is operator-only: it goes to operator endpoints, never to a
platform's, whatever that platform subscribed to.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = [
    "EVENT_DATA_TYPES",
    "EVENT_TYPE_OF",
    "MAX_PAYLOAD_BYTES",
    "OPERATOR_ONLY_EVENT_TYPES",
    "PUBLIC_EVENT_TYPES",
    "AgentRegistered",
    "CreditsDeposited",
    "CreditsLow",
    "Envelope",
    "EventData",
    "EventType",
    "KeyCreated",
    "KeyExpired",
    "KeyRevoked",
    "KeyRotated",
    "PassPurchased",
    "PayloadTooLargeError",
    "PaymentExpired",
    "PaymentFailed",
    "PaymentPending",
    "PaymentSettled",
    "UnknownEventTypeError",
    "WebhookEndpointDisabled",
    "WebhookTest",
    "build_envelope",
    "decode_envelope",
    "matches",
    "validate_event_types",
]

MAX_PAYLOAD_BYTES = 64 * 1024


class EventType(enum.StrEnum):
    AGENT_REGISTERED = "agent.registered"
    KEY_CREATED = "key.created"
    KEY_REVOKED = "key.revoked"
    KEY_ROTATED = "key.rotated"
    KEY_EXPIRED = "key.expired"
    PASS_PURCHASED = "pass.purchased"  # noqa: S105 - an event name, not a password
    PAYMENT_PENDING = "payment.pending"
    PAYMENT_SETTLED = "payment.settled"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_EXPIRED = "payment.expired"
    CREDITS_DEPOSITED = "credits.deposited"
    CREDITS_LOW = "credits.low"
    WEBHOOK_TEST = "webhook.test"
    WEBHOOK_ENDPOINT_DISABLED = "webhook.endpoint_disabled"


class UnknownEventTypeError(ValueError):
    """An event type outside the catalog (or one the subscriber may not use)."""


class PayloadTooLargeError(ValueError):
    """An envelope at or above :data:`MAX_PAYLOAD_BYTES`."""


class EventData(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base of every ``data`` shape (camelCase on the wire)."""


class AgentRegistered(EventData, frozen=True, kw_only=True):
    """``agent.registered``: an agent signed up, or a platform created one."""

    agent_id: str
    agent_name: str
    platform_id: str | None = None
    key_id: str | None = None  # the agent's first key
    credits_micros: int | None = None  # starter credits
    created_at: datetime


class KeyCreated(EventData, frozen=True, kw_only=True):
    """``key.created``: a new API key (never the secret; ``hint`` is prefix + last 4)."""

    key_id: str
    agent_id: str | None = None
    platform_id: str | None = None
    key_type: str  # "agent", "gateway", "personal", "x402" (a pass), "master"
    label: str | None = None
    hint: str
    scopes: list[str] = msgspec.field(default_factory=list)
    period: str | None = None  # passes: "1d", "1w", "4w"
    expires_at: datetime | None = None
    created_at: datetime


class KeyRevoked(EventData, frozen=True, kw_only=True):
    """``key.revoked``: a key stopped working before its time."""

    key_id: str
    agent_id: str | None = None
    platform_id: str | None = None
    key_type: str
    label: str | None = None
    hint: str
    scopes: list[str] = msgspec.field(default_factory=list)
    period: str | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    reason: str | None = None
    revoked_at: datetime


class KeyRotated(EventData, frozen=True, kw_only=True):
    """``key.rotated``: a key got a new secret; the old one works until ``previousValidUntil``."""

    key_id: str
    agent_id: str | None = None
    platform_id: str | None = None
    key_type: str | None = None
    label: str | None = None
    hint: str
    scopes: list[str] = msgspec.field(default_factory=list)
    period: str | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    previous_hint: str
    previous_valid_until: datetime | None = None
    rotated_at: datetime


class KeyExpired(EventData, frozen=True, kw_only=True):
    """``key.expired``: a time-limited key (a pass) reached its expiry."""

    key_id: str
    agent_id: str | None = None
    platform_id: str | None = None
    key_type: str
    hint: str
    expired_at: datetime


class PassPurchased(EventData, frozen=True, kw_only=True):
    """``pass.purchased``: a pass was paid and its key issued."""

    key_id: str
    agent_id: str | None = None
    period: str  # "1d", "1w", "4w"
    amount_micros: int
    payment_id: str
    network: str  # "base", "base-sepolia", "local"
    payer: str | None = None
    transaction: str | None = None
    expires_at: datetime
    purchased_at: datetime


class PaymentPending(EventData, frozen=True, kw_only=True):
    """``payment.pending``: a payment passed verification and awaits settlement."""

    payment_id: str
    agent_id: str | None = None
    amount_micros: int
    asset: str
    network: str
    pay_to: str
    payer: str | None = None
    resource: str | None = None
    created_at: datetime


class PaymentSettled(EventData, frozen=True, kw_only=True):
    """``payment.settled``: the transfer is confirmed on chain."""

    payment_id: str
    agent_id: str | None = None
    amount_micros: int
    asset: str
    network: str
    pay_to: str
    payer: str | None = None
    transaction: str
    settled_at: datetime


class PaymentFailed(EventData, frozen=True, kw_only=True):
    """``payment.failed``: settlement failed; nothing was charged."""

    payment_id: str
    agent_id: str | None = None
    amount_micros: int
    network: str
    payer: str | None = None
    reason: str
    failed_at: datetime


class PaymentExpired(EventData, frozen=True, kw_only=True):
    """``payment.expired``: the payment was not settled within its validity window."""

    payment_id: str
    agent_id: str | None = None
    amount_micros: int
    network: str
    expired_at: datetime


class CreditsDeposited(EventData, frozen=True, kw_only=True):
    """``credits.deposited``: an agent's credit balance went up."""

    agent_id: str
    amount_micros: int
    balance_micros: int
    source: str  # "deposit", "adjustment", "starter"
    network: str | None = None
    transaction: str | None = None
    ledger_entry_id: str | None = None
    deposited_at: datetime


class CreditsLow(EventData, frozen=True, kw_only=True):
    """``credits.low``: a balance dropped below the agent's low-credit threshold."""

    agent_id: str
    balance_micros: int
    threshold_micros: int
    observed_at: datetime


class WebhookTest(EventData, frozen=True, kw_only=True):
    """``webhook.test``: sent on request to check an endpoint."""

    endpoint_id: str
    message: str = "This is a test event from passgate."
    sent_at: datetime


class WebhookEndpointDisabled(EventData, frozen=True, kw_only=True):
    """``webhook.endpoint_disabled`` (operator only): passgate stopped delivering to an endpoint.

    ``reason`` is ``"gone"`` (the receiver answered 410) or ``"failing"`` (continuous failures
    since ``failingSince``).
    """

    endpoint_id: str
    platform_id: str | None = None
    url: str
    reason: str
    failing_since: datetime | None = None
    disabled_at: datetime


EVENT_DATA_TYPES: Mapping[EventType, type[EventData]] = {
    EventType.AGENT_REGISTERED: AgentRegistered,
    EventType.KEY_CREATED: KeyCreated,
    EventType.KEY_REVOKED: KeyRevoked,
    EventType.KEY_ROTATED: KeyRotated,
    EventType.KEY_EXPIRED: KeyExpired,
    EventType.PASS_PURCHASED: PassPurchased,
    EventType.PAYMENT_PENDING: PaymentPending,
    EventType.PAYMENT_SETTLED: PaymentSettled,
    EventType.PAYMENT_FAILED: PaymentFailed,
    EventType.PAYMENT_EXPIRED: PaymentExpired,
    EventType.CREDITS_DEPOSITED: CreditsDeposited,
    EventType.CREDITS_LOW: CreditsLow,
    EventType.WEBHOOK_TEST: WebhookTest,
    EventType.WEBHOOK_ENDPOINT_DISABLED: WebhookEndpointDisabled,
}
OPERATOR_ONLY_EVENT_TYPES: frozenset[EventType] = frozenset({EventType.WEBHOOK_ENDPOINT_DISABLED})
PUBLIC_EVENT_TYPES: frozenset[EventType] = frozenset(EventType) - OPERATOR_ONLY_EVENT_TYPES


class Envelope(msgspec.Struct, frozen=True):
    """A decoded delivery body; ``data`` is the typed shape for ``type``."""

    type: EventType
    timestamp: datetime
    data: EventData


class _RawEnvelope(msgspec.Struct, frozen=True):
    type: EventType
    timestamp: datetime
    data: msgspec.Raw


def _event_type(value: str) -> EventType:
    try:
        return EventType(value)
    except ValueError:
        raise UnknownEventTypeError(f"Unknown event type {value!r}.") from None


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("Event timestamps must be timezone-aware.")
    return value.astimezone(UTC)


def _normalise(data: EventData) -> EventData:
    # msgspec writes a naive datetime without an offset and a +02:00 one as such; the contract
    # promises UTC, so every top-level datetime is checked and converted here.
    changes = {
        name: _utc(value)
        for name in data.__struct_fields__
        if isinstance(value := getattr(data, name), datetime)
    }
    return msgspec.structs.replace(data, **changes) if changes else data


def build_envelope(
    event_type: str,
    data: EventData | Mapping[str, Any],
    timestamp: datetime | None = None,
) -> bytes:
    """The compact JSON body ``{"type","timestamp","data"}`` for one event.

    ``data`` is the event's Struct, or its JSON form as stored in the outbox (camelCase keys),
    which is validated against the shape. ``timestamp`` defaults to now. Raises
    :class:`UnknownEventTypeError`, ``msgspec.ValidationError`` / ``TypeError`` for a wrong
    shape, or :class:`PayloadTooLargeError` at 64 KB and above.
    """
    kind = _event_type(event_type)
    shape = EVENT_DATA_TYPES[kind]
    if isinstance(data, EventData):
        if type(data) is not shape:
            raise TypeError(f"{kind} carries {shape.__name__}, not {type(data).__name__}.")
        typed = data
    else:
        typed = msgspec.convert(dict(data), type=shape)
    when = _utc(timestamp) if timestamp is not None else datetime.now(UTC)
    body = msgspec.json.encode(Envelope(type=kind, timestamp=when, data=_normalise(typed)))
    if len(body) >= MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"{kind} payload is {len(body)} bytes; webhooks carry less than {MAX_PAYLOAD_BYTES}."
        )
    return body


def decode_envelope(body: bytes) -> Envelope:
    """Parse a delivery body into an :class:`Envelope` with typed ``data``."""
    raw = msgspec.json.decode(body, type=_RawEnvelope)
    data = msgspec.json.decode(raw.data, type=EVENT_DATA_TYPES[raw.type])
    return Envelope(type=raw.type, timestamp=raw.timestamp, data=data)


def matches(subscribed_types: Iterable[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``subscribed_types`` gets ``event_type`` (empty = all).

    Routing of operator-only events is the caller's business; this is only the filter.
    """
    subscribed = list(subscribed_types)
    return not subscribed or event_type in subscribed


def validate_event_types(types: Iterable[str], *, operator: bool = False) -> list[str]:
    """Check an endpoint's filter: known types only, de-duplicated, order kept.

    Platforms may not subscribe to operator-only types; raises :class:`UnknownEventTypeError`.
    """
    allowed = frozenset(EventType) if operator else PUBLIC_EVENT_TYPES
    result: list[str] = []
    unknown: list[str] = []
    for value in types:
        if value in allowed:
            if value not in result:
                result.append(value)
        else:
            unknown.append(value)
    if unknown:
        raise UnknownEventTypeError(f"Unknown event type(s): {', '.join(map(repr, unknown))}.")
    return result


EVENT_TYPE_OF: Mapping[type[EventData], EventType] = {
    shape: event_type for event_type, shape in EVENT_DATA_TYPES.items()
}
