"""Outbound webhooks: event catalog, Standard Webhooks signing, SSRF-guarded delivery.

A library with no knowledge of the app or its database: the app writes events to its outbox and
the delivery actor calls :func:`build_envelope`, :func:`build_headers`,
:meth:`WebhookSender.send` and :meth:`RetrySchedule.next_delay`. Receivers use :func:`verify`.
"""

from webhooks.events import (
    EventType,
    PayloadTooLargeError,
    UnknownEventTypeError,
    build_envelope,
    decode_envelope,
    matches,
    validate_event_types,
)
from webhooks.retry_policy import RetrySchedule, should_disable_endpoint
from webhooks.signing import (
    InvalidSecretError,
    build_headers,
    generate_secret,
    parse_secret,
    sign,
    x_signature,
)
from webhooks.ssrf import BlockedAddressError, HostResolutionError, SSRFPolicy, UnsafeURLError
from webhooks.transport import DeliveryResult, TransportConfig, WebhookSender, parse_retry_after
from webhooks.verify import WebhookVerificationError, verify

__all__ = [
    "BlockedAddressError",
    "DeliveryResult",
    "EventType",
    "HostResolutionError",
    "InvalidSecretError",
    "PayloadTooLargeError",
    "RetrySchedule",
    "SSRFPolicy",
    "TransportConfig",
    "UnknownEventTypeError",
    "UnsafeURLError",
    "WebhookSender",
    "WebhookVerificationError",
    "build_envelope",
    "build_headers",
    "decode_envelope",
    "generate_secret",
    "matches",
    "parse_retry_after",
    "parse_secret",
    "should_disable_endpoint",
    "sign",
    "validate_event_types",
    "verify",
    "x_signature",
]
