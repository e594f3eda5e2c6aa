"""The sign-in-with-x challenge a 402 declares, and the check that a nonce is one passgate issued.

A nonce is 32 hex characters (the spec's size): 16 random, then 16 of an HMAC over the random
part and the challenge's ``issuedAt`` and ``expirationTime`` exactly as issued. Issuing one
writes nothing, so a flood of 402s costs no storage; a signed message is accepted only with a
nonce this server minted for exactly those times (a client cannot stretch its own window), and
spending it inserts a row (``app.siwx.repository``) that makes it single-use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from x402.extensions.sign_in_with_x import (
    SIGN_IN_WITH_X,
    SupportedChain,
    build_siwx_schema,
    normalize_configured_origin,
)

from app.settings import Settings

# The spec's default window: a challenge (and the message signed from it) lives five minutes.
CHALLENGE_SECONDS = 300
STATEMENT = "Sign in to passgate with the wallet that paid"
_RANDOM_HEX = 16
_NONCE_HEX = 32


def origin(settings: Settings) -> str:
    """The public origin a message's ``domain`` and ``uri`` must name (never the Host header)."""
    parts = urlsplit(str(settings.public_url))
    return normalize_configured_origin(f"{parts.scheme}://{parts.netloc}")


def supported_chains(settings: Settings) -> list[str]:
    """CAIP-2 ids of the enabled networks: where the wallets that paid live."""
    return sorted({network.caip2 for network in settings.networks().values()})


@dataclass(frozen=True, slots=True)
class _Fixed:
    """What every challenge of one configuration shares (a 402 is on the paid hot path)."""

    origin: str
    domain: str
    chains: list[dict[str, Any]]
    mac_key: bytes


# Keyed by id() with the settings object kept alive, so an id cannot be reused meanwhile.
_FIXED: dict[int, tuple[Settings, _Fixed]] = {}


def _fixed(settings: Settings) -> _Fixed:
    found = _FIXED.get(id(settings))
    if found is not None and found[0] is settings:
        return found[1]
    base = origin(settings)
    chains = [SupportedChain(chain_id=chain, type="eip191").model_dump(by_alias=True,
                                                                        exclude_none=True)
              for chain in supported_chains(settings)]
    fixed = _Fixed(base, urlsplit(base).netloc, chains, _mac_key(settings))
    _FIXED[id(settings)] = (settings, fixed)
    return fixed


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mac_key(settings: Settings) -> bytes:
    pepper = settings.key_pepper.get_secret_value().encode()
    return hmac.new(pepper, b"passgate sign-in-with-x nonce", hashlib.sha256).digest()


def _mac(key: bytes, random_part: str, issued_at: str, expires_at: str) -> str:
    message = f"{random_part}|{issued_at}|{expires_at}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[: _NONCE_HEX - _RANDOM_HEX]


def nonce_is_ours(settings: Settings, nonce: str, issued_at: str, expires_at: str | None) -> bool:
    """Whether this server minted ``nonce`` for exactly these times (constant-time compare)."""
    if expires_at is None or len(nonce) != _NONCE_HEX:
        return False
    random_part, mac = nonce[:_RANDOM_HEX], nonce[_RANDOM_HEX:]
    expected = _mac(_fixed(settings).mac_key, random_part, issued_at, expires_at)
    return hmac.compare_digest(mac.encode(), expected.encode())


def challenge_info(
    settings: Settings, resource_url: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """A fresh challenge (``info``, as the SDK's ``SIWxExtensionInfo`` dumps it by alias): a
    nonce for exactly its issue and expiry times, the resource's URI on the public origin."""
    fixed = _fixed(settings)
    issued = now or datetime.now(UTC)
    issued_at = _stamp(issued)
    expires_at = _stamp(issued + timedelta(seconds=CHALLENGE_SECONDS))
    random_part = secrets.token_hex(_RANDOM_HEX // 2)
    path = urlsplit(resource_url).path if resource_url else ""
    uri = fixed.origin + (path or "/")
    return {
        "domain": fixed.domain, "uri": uri, "statement": STATEMENT, "version": "1",
        "nonce": random_part + _mac(fixed.mac_key, random_part, issued_at, expires_at),
        "issuedAt": issued_at, "expirationTime": expires_at, "resources": [uri],
    }


def siwx_extension(
    settings: Settings, resource_url: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """``{"sign-in-with-x": {...}}`` for a 402's ``extensions``: one fresh challenge, the enabled
    EVM networks as ``supportedChains`` (EIP-191 messages; smart wallets verify on chain), and
    the SDK's payload schema (``SIWxExtension``'s shape). Empty when no network is enabled."""
    fixed = _fixed(settings)
    if not fixed.chains:
        return {}
    return {SIGN_IN_WITH_X: {
        "info": challenge_info(settings, resource_url, now=now),
        "supportedChains": [dict(chain) for chain in fixed.chains],
        "schema": build_siwx_schema(),
    }}
