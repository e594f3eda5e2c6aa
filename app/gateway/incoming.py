"""What a caller asked the gateway for: the call as received, and its upstream path.

The path is forwarded percent-encoded as received, but with repeated slashes merged and ``;``
path parameters cut (``providers.normalised_path``): the upstream gets the path it is priced on.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from app.errors import ValidationFailed
from app.gateway.providers import normalised_path

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """What the caller asked for, as received (raw path and query, raw headers)."""

    provider: str
    method: str
    # Percent-encoded as received, "" or starting with "/".
    path: str
    query: bytes
    headers: Headers
    body: bytes
    request_id: str


# The longest path after ``/v1/gateway/{provider}`` (as sent, percent-encoded): the usage
# record's route column. Longer is a 400 before any price is quoted or payment recorded.
MAX_GATEWAY_PATH = 2048


def upstream_path(raw_path: bytes, provider: str) -> str:
    """The part of ``/v1/gateway/{provider}/...`` after the provider, still percent-encoded.

    The raw path is used (not the decoded one) so ``%2F`` and friends reach the upstream as
    the caller sent them.
    """
    path = raw_path.split(b"?", 1)[0].decode("latin-1")
    marker = f"/gateway/{provider}"
    index = path.find(marker)
    if index < 0:
        raise ValidationFailed("The gateway path is not valid.")
    rest = path[index + len(marker) :]
    if len(rest) > MAX_GATEWAY_PATH:
        raise ValidationFailed(
            f"The path after the provider is longer than {MAX_GATEWAY_PATH} characters."
        )
    if rest and not rest.startswith("/"):
        raise ValidationFailed("The gateway path is not valid.")
    check_path(rest)
    return normalised_path(rest)


def check_path(path: str) -> None:
    """Refuse dot segments (plain, encoded, or with ``;`` parameters) and control characters.

    ``/v1/gateway/p/../admin`` must not become a request to the upstream's ``/admin`` with the
    operator's credentials attached; nor may ``/..;/admin``, which servers that drop path
    parameters (and passgate's own normalisation) read as ``/../admin``.
    """
    for segment in path.split("/"):
        decoded = unquote(segment)
        if any(ord(c) < 0x20 or c == "\x7f" for c in decoded):
            raise ValidationFailed("The gateway path contains control characters.")
        for part in decoded.replace("\\", "/").split("/"):
            if part.split(";", 1)[0] in (".", ".."):
                raise ValidationFailed("The gateway path may not contain '.' or '..' segments.")
