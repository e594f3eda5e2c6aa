"""Standard Webhooks signing: endpoint secrets, signatures and the outgoing header set.

A message is signed as ``HMAC-SHA256(secret, "{msg_id}.{timestamp}.{body}")`` and sent as
``webhook-signature: v1,<base64>``. While a secret is being rotated the message carries one
signature per live secret, newest first, so a receiver holding either secret accepts it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac as _hmac
import secrets as _secrets
import time
from collections.abc import Sequence
from importlib import metadata

__all__ = [
    "SECRET_PREFIX",
    "InvalidSecretError",
    "build_headers",
    "generate_secret",
    "hmac_sha256",
    "parse_secret",
    "sign",
    "signed_content",
    "user_agent",
    "x_signature",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix, not a secret
SECRET_BYTES = 32
# Standard Webhooks asks for 24..64 byte keys; accepting that range lets an operator import a
# secret minted elsewhere while our own are always 32 bytes.
_MIN_SECRET_BYTES = 24
_MAX_SECRET_BYTES = 64


class InvalidSecretError(ValueError):
    """A webhook secret is not ``whsec_<base64 of 24..64 bytes>``.

    The message never contains the secret itself.
    """


def generate_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    raw = _secrets.token_bytes(SECRET_BYTES)
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_secret(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_...`` secret; raises :class:`InvalidSecretError`."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidSecretError(f"Webhook secrets start with {SECRET_PREFIX!r}.")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecretError("Webhook secret is not valid base64.") from None
    if not _MIN_SECRET_BYTES <= len(key) <= _MAX_SECRET_BYTES:
        raise InvalidSecretError(
            f"Webhook secret must decode to {_MIN_SECRET_BYTES}..{_MAX_SECRET_BYTES} bytes."
        )
    return key


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """Raw HMAC-SHA256 digest."""
    # The stdlib's one-shot HMAC (OpenSSL underneath) builds no Python objects per call.
    return _hmac.digest(key, data, "sha256")


@functools.lru_cache(maxsize=1024)
def _key(secret: str) -> bytes:
    # Every attempt signs with the same few secrets; decode each once.
    return parse_secret(secret)


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    """The exact bytes Standard Webhooks signs: ``{id}.{timestamp}.{body}``."""
    # A dot inside the id would make "{id}.{ts}" ambiguous for the receiver's parser.
    if not msg_id or "." in msg_id or any(c.isspace() for c in msg_id):
        raise ValueError("Message ids must be non-empty, without dots or whitespace.")
    return f"{msg_id}.{int(timestamp)}.".encode() + body


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` value: ``v1,<b64>`` per secret, space separated.

    Pass the newest secret first; during a rotation pass both, so receivers that still hold the
    old secret keep verifying until the overlap ends.
    """
    if not secrets:
        raise ValueError("At least one secret is needed to sign a message.")
    content = signed_content(msg_id, timestamp, body)
    parts = []
    for secret in secrets:
        digest = hmac_sha256(_key(secret), content)
        parts.append("v1," + base64.b64encode(digest).decode("ascii"))
    return " ".join(parts)


def x_signature(body: bytes, secret: str) -> str:
    """``X-Signature``: hex HMAC-SHA256 of the raw body, for receivers that skip the standard."""
    return hmac_sha256(_key(secret), body).hex()


@functools.cache
def user_agent() -> str:
    """``passgate/<installed version>``."""
    try:
        version = metadata.version("passgate")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"passgate/{version}"


def build_headers(
    msg_id: str,
    body: bytes,
    secrets: Sequence[str],
    *,
    timestamp: int | None = None,
) -> dict[str, str]:
    """Every header of one delivery attempt.

    ``msg_id`` must stay the same across retries of a message (receivers dedupe on it), while
    ``timestamp`` is the attempt's own time so a retry hours later still passes the receiver's
    tolerance window. ``secrets`` is newest first; ``X-Signature`` uses the newest only.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(msg_id, ts, body, secrets),
        "X-Signature": x_signature(body, secrets[0]),
        "Content-Type": "application/json",
        "User-Agent": user_agent(),
    }
