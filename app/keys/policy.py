"""What a key may grant and manage: scopes, expiry, custom secrets, and which keys a key holder
may revoke or regenerate. Pure rules (no I/O); each refusal is an app error naming the problem.
"""

from __future__ import annotations

from datetime import datetime

from app.auth.principal import Principal
from app.credentials import format as key_format
from app.credentials.format import KeyKind
from app.credentials.scopes import ALL
from app.db.models.keys import ApiKey
from app.db.types import utcnow
from app.errors import Forbidden, ValidationFailed


def check_scopes(requested: list[str] | None, allowed: frozenset[str]) -> list[str] | None:
    """The requested scopes, sorted and deduplicated: known ones, none beyond ``allowed``."""
    if requested is None:
        return None
    unknown = sorted(set(requested) - ALL)
    if unknown:
        raise ValidationFailed(
            f"Unknown scopes: {', '.join(unknown)}.", details={"allowed": sorted(ALL)}
        )
    beyond = sorted(set(requested) - allowed)
    if beyond:
        raise ValidationFailed(
            f"A key cannot grant scopes its creator lacks: {', '.join(beyond)}."
        )
    return sorted(set(requested))


def check_expiry(expires_at: datetime | None) -> datetime | None:
    """A requested ``expiresAt`` must be an aware timestamp in the future."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise ValidationFailed("expiresAt must carry a time zone (RFC 3339).")
    if expires_at <= utcnow():
        raise ValidationFailed("expiresAt must be in the future.")
    return expires_at


def cap_expiry(expires_at: datetime | None, ceiling: datetime | None) -> datetime | None:
    """``expires_at``, but never later than ``ceiling`` (``None``: never expires)."""
    if ceiling is not None and (expires_at is None or expires_at > ceiling):
        return ceiling
    return expires_at


def parse_custom_secret(kind: KeyKind, secret: str) -> str:
    """A caller-chosen key must follow the same format as generated ones, checksum included."""
    try:
        parsed = key_format.parse(secret)
    except key_format.KeyFormatError as exc:
        head = secret[: -key_format.CHECKSUM_CHARS]
        body = head.removeprefix(f"{kind.value}_")
        details = None
        # Offer the checksum only where it is the one thing wrong: the body must be base62
        # (ASCII letters and digits), which also keeps non-ASCII text away from the CRC.
        if (
            body != head
            and body.isascii()
            and body.isalnum()
            and len(body) >= key_format.RANDOM_CHARS
            and len(secret) <= key_format.MAX_KEY_CHARS
        ):
            details = {"expectedChecksum": key_format.checksum(head)}
        raise ValidationFailed(
            f"Custom key must be '{kind.value}_' followed by at least "
            f"{key_format.RANDOM_CHARS} base62 characters and a "
            f"{key_format.CHECKSUM_CHARS}-character CRC32 checksum ({exc})",
            details=details,
        ) from None
    if parsed.kind is not kind:
        raise ValidationFailed(f"Custom key must start with '{kind.value}_'.")
    return secret


def check_may_manage(caller: Principal, key: ApiKey, action: str) -> None:
    """A key revokes or regenerates itself, and otherwise only keys it could have created: no
    scope it lacks (a regenerated secret goes to the caller), no later expiry. The agent key
    (``ak_``) is the agent's root: besides itself only the agent's platform (rotate-key)
    manages it, so no narrower key can lock the agent's owner out."""
    if key.id == caller.key_id:
        return
    beyond = sorted(set(key.scopes) - caller.scopes)
    if beyond:
        raise Forbidden(f"A key cannot {action} a key with scopes it lacks: {', '.join(beyond)}.")
    if key.kind == KeyKind.AGENT.value:
        raise Forbidden(
            f"Only the agent key itself, or the agent's platform, can {action} the agent key."
        )
    if cap_expiry(key.expires_at, caller.key_expires_at) != key.expires_at:
        raise Forbidden(f"A key cannot {action} a key that expires after it does.")
