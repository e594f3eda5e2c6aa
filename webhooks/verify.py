"""Verify a passgate webhook on the receiving side.

Usage in any web framework::

    from webhooks import verify, WebhookVerificationError

    try:
        event = verify(raw_body, request.headers, "whsec_...")
    except WebhookVerificationError:
        return 400
    # event == {"type": "payment.settled", "timestamp": "...", "data": {...}}

Pass the raw request body exactly as received (bytes, before any JSON parsing): the signature
covers those bytes. The check follows Standard Webhooks, so the ``standardwebhooks`` package (or
Svix's libraries) verifies the same messages. Keep ``webhook-id`` to drop duplicates: a message
may be delivered more than once.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from webhooks.signing import hmac_sha256, parse_secret, signed_content

__all__ = [
    "InvalidSignatureError",
    "MissingHeaderError",
    "TimestampOutOfToleranceError",
    "WebhookVerificationError",
    "verify",
]

_REQUIRED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class WebhookVerificationError(Exception):
    """The message can't be trusted; the text says why (never includes the secret)."""


class MissingHeaderError(WebhookVerificationError):
    """A ``webhook-*`` header is absent or empty."""


class TimestampOutOfToleranceError(WebhookVerificationError):
    """``webhook-timestamp`` is too far from now: a replay or a badly skewed clock."""


class InvalidSignatureError(WebhookVerificationError):
    """No ``v1`` signature in ``webhook-signature`` matches the secret."""


def verify(
    payload: bytes,
    headers: Mapping[str, str],
    secret: str,
    tolerance_seconds: int = 300,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery's signature and freshness and return its parsed JSON body.

    - ``headers``: any mapping; names are matched case-insensitively.
    - ``secret``: the endpoint's ``whsec_...`` secret. Any of the space-separated ``v1,``
      signatures may match (there are two during a secret rotation).
    - ``tolerance_seconds``: how far ``webhook-timestamp`` may be from ``now`` either way
      (default 5 minutes); older messages are rejected as replays.

    Raises :class:`WebhookVerificationError` (or a subclass) when a header is missing, the
    timestamp is outside the tolerance, or no signature matches; ``InvalidSecretError`` (a
    ``ValueError``) when ``secret`` itself is malformed, which is a configuration mistake.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    values: dict[str, str] = {}
    for name in _REQUIRED_HEADERS:
        value = (lowered.get(name) or "").strip()
        if not value:
            raise MissingHeaderError(f"Missing required header {name!r}.")
        values[name] = value

    try:
        timestamp = int(values["webhook-timestamp"])
    except ValueError:
        raise TimestampOutOfToleranceError(
            "Header 'webhook-timestamp' is not an integer."
        ) from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise TimestampOutOfToleranceError(
            f"Message timestamp is more than {tolerance_seconds} s away from now."
        )

    try:
        content = signed_content(values["webhook-id"], timestamp, payload)
    except ValueError:
        raise InvalidSignatureError("Header 'webhook-id' is malformed.") from None
    expected = hmac_sha256(parse_secret(secret), content)

    matched = False
    for candidate in values["webhook-signature"].split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Keep scanning after a match so the time spent doesn't reveal which signature matched.
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise InvalidSignatureError("No matching signature found.")

    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise WebhookVerificationError("Payload is not valid JSON.") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("Payload is not a JSON object.")
    return event
