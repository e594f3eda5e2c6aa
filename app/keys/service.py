"""Issue, find, list, revoke and regenerate API keys. Secrets exist only in return values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from app.attention.filters import not_parked
from app.credentials import format as key_format
from app.credentials.format import KeyKind
from app.credentials.hashing import key_hash
from app.credentials.scopes import ALL, TYPE_NAMES
from app.db.models.attention import KEY_EXPIRY
from app.db.models.keys import ApiKey, KeySecret
from app.db.paging import PageParams, apply, split
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.events.service import emit
from app.ids import new_id
from webhooks.events import KeyCreated, KeyExpired, KeyRevoked, KeyRotated


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str


def key_event_data(key: ApiKey) -> dict[str, Any]:
    """The fields every ``key.*`` event shares (shapes in ``webhooks.events``; never the
    secret), as keyword arguments of those shapes."""
    return {
        "key_id": key.id,
        "key_type": TYPE_NAMES[KeyKind(key.kind)],
        "agent_id": key.agent_id,
        "platform_id": key.platform_id,
        "label": key.label,
        "hint": key.hint,
        "scopes": list(key.scopes),
        "expires_at": key.expires_at,
        "period": key.period,
        "created_at": key.created_at,
    }


def check_scopes(requested: list[str] | None, allowed: frozenset[str]) -> list[str] | None:
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


async def issue(
    session: UnitOfWork,
    pepper: str,
    kind: KeyKind,
    *,
    agent_id: str | None = None,
    platform_id: str | None = None,
    label: str | None = None,
    scopes: list[str] | tuple[str, ...] = (),
    plan: str = "free",
    expires_at: datetime | None = None,
    period: str | None = None,
    custom_secret: str | None = None,
    created_by: str | None = None,
    emit_event: bool = True,
) -> IssuedKey:
    secret = custom_secret or key_format.generate(kind)
    digest = key_hash(pepper, secret)
    if custom_secret is not None:
        taken = await session.exec(select(KeySecret.id).where(col(KeySecret.secret_hash) == digest))
        if taken.first() is not None:
            raise Conflict("That custom key is already taken.")
    key = ApiKey(
        id=new_id("key"),
        kind=kind.value,
        agent_id=agent_id,
        platform_id=platform_id,
        label=label,
        hint=key_format.hint(secret),
        scopes=list(scopes),
        plan=plan,
        expires_at=expires_at,
        period=period,
        created_by=created_by,
    )
    session.add(key)
    session.add(KeySecret(id=new_id("sec"), key_id=key.id, secret_hash=digest))
    try:
        await session.flush()
    except IntegrityError:
        # Two requests raced for the same custom key; the unique hash index decided.
        raise Conflict("That custom key is already taken.") from None
    if emit_event and kind is not KeyKind.ADMIN:
        await emit(session, KeyCreated(**key_event_data(key)), agent_id=agent_id,
                   platform_id=platform_id)
    return IssuedKey(key=key, secret=secret)


async def find_by_hash(session: UnitOfWork, digest: str) -> tuple[ApiKey, KeySecret] | None:
    row = (
        await session.exec(
            select(ApiKey, KeySecret)
            .join(KeySecret, col(KeySecret.key_id) == col(ApiKey.id))
            .where(col(KeySecret.secret_hash) == digest)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def get(session: UnitOfWork, key_id: str) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("API key not found.")
    return key


async def status_of(session: UnitOfWork, key_id: str) -> str | None:
    """The key's stored status, None when there is no such key (the caller decides whether
    that is an error, and with which message)."""
    key = await session.get(ApiKey, key_id)
    return None if key is None else key.status


async def get_owned(session: UnitOfWork, key_id: str, agent_id: str) -> ApiKey:
    """Someone else's key is indistinguishable from a missing one."""
    key = await session.get(ApiKey, key_id)
    if key is None or key.agent_id != agent_id:
        raise NotFound("API key not found.")
    return key


async def list_keys(
    session: UnitOfWork,
    params: PageParams,
    *,
    agent_id: str | None = None,
    platform_id: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    hint_suffix: str | None = None,
) -> tuple[list[ApiKey], str | None]:
    stmt = select(ApiKey)
    if agent_id is not None:
        stmt = stmt.where(col(ApiKey.agent_id) == agent_id)
    if platform_id is not None:
        stmt = stmt.where(col(ApiKey.platform_id) == platform_id)
    if kind:
        stmt = stmt.where(col(ApiKey.kind) == kind)
    if status:
        stmt = stmt.where(col(ApiKey.status) == status)
    if hint_suffix:
        stmt = stmt.where(col(ApiKey.hint).endswith(hint_suffix))
    rows = (await session.exec(apply(stmt, col(ApiKey.id), params))).all()  # type: ignore[call-overload]
    return split(rows, params, lambda k: k.id)


async def revoke(session: UnitOfWork, key: ApiKey) -> ApiKey:
    """Idempotent: revoking a revoked key changes nothing and emits nothing.

    The conditional UPDATE decides between concurrent revocations (two requests, a request
    and the settlement worker): the database lets one of them change the row, and only that
    one emits ``key.revoked``.
    """
    if key.status == "revoked":
        return key
    changed = await session.execute(
        sa_update(ApiKey)
        .where(col(ApiKey.id) == key.id, col(ApiKey.status) != "revoked")
        .values(status="revoked", revoked_at=utcnow())
    )
    # Either way, show the row as the database has it: the loser of a race reports the
    # winner's revocation time, not its own.
    await session.refresh(key)
    if not changed.rowcount:  # type: ignore[attr-defined]
        return key
    assert key.revoked_at is not None
    data = KeyRevoked(**key_event_data(key), revoked_at=key.revoked_at)
    await emit(session, data, agent_id=key.agent_id, platform_id=key.platform_id)
    return key


async def regenerate(
    session: UnitOfWork, pepper: str, key: ApiKey, grace_seconds: int
) -> tuple[str, datetime]:
    """A new secret with the same settings; every other secret stops working after the grace.

    Rotations of one key run one after the other, so the second one sees and expires the
    secret the first just issued (otherwise both new secrets would stay valid). PostgreSQL:
    the key row is locked before anything is read. SQLite ignores the lock, but the expiry
    below is the transaction's first write: it waits for SQLite's single write lock and then
    sees every committed secret.
    """
    await session.refresh(key, with_for_update=True)
    now = utcnow()
    old_until = now + timedelta(seconds=grace_seconds)
    # Only ever shortens: a secret already ending before the grace keeps its earlier end.
    await session.execute(
        sa_update(KeySecret)
        .where(
            col(KeySecret.key_id) == key.id,
            or_(col(KeySecret.expires_at).is_(None), col(KeySecret.expires_at) > old_until),
        )
        .values(expires_at=old_until)
    )
    # Read again now that SQLite holds its write lock too: the latest rotation's hint, and a
    # revocation committed meanwhile (raising rolls the expiry back with the request).
    await session.refresh(key)
    if key.status != "active":
        raise Conflict(f"Cannot regenerate a {key.status} key.")
    secret = key_format.generate(KeyKind(key.kind))
    session.add(KeySecret(id=new_id("sec"), key_id=key.id, secret_hash=key_hash(pepper, secret)))
    previous_hint = key.hint
    key.hint = key_format.hint(secret)
    session.add(key)
    await session.flush()
    data = KeyRotated(**key_event_data(key), previous_hint=previous_hint,
                      previous_valid_until=old_until, rotated_at=now)
    await emit(session, data, agent_id=key.agent_id, platform_id=key.platform_id)
    return secret, old_until


def key_snapshot(key: ApiKey) -> dict[str, Any]:
    return {
        "label": key.label,
        "plan": key.plan,
        "status": key.status,
        "rateLimitPerMinute": key.rate_limit_per_minute,
        "rateLimitPerDay": key.rate_limit_per_day,
    }


async def update(session: UnitOfWork, key: ApiKey, changes: dict[str, Any]) -> ApiKey:
    for field, value in changes.items():
        setattr(key, field, value)
    session.add(key)
    await session.flush()
    return key


async def due_to_expire(session: UnitOfWork, now: datetime, limit: int = 500) -> list[str]:
    """Active keys whose ``expiresAt`` has passed (except those parked for an operator)."""
    rows = await session.exec(
        select(ApiKey.id)
        .where(col(ApiKey.status) == "active", col(ApiKey.expires_at) <= now,
               not_parked(KEY_EXPIRY, ApiKey.id))
        .order_by(col(ApiKey.expires_at))
        .limit(limit)
    )
    return list(rows.all())


async def expire(session: UnitOfWork, key_id: str, now: datetime) -> bool:
    """Mark a key past ``expiresAt`` as expired and emit ``key.expired`` once.

    Authentication already refuses it on its own; this makes the state visible (lists, admin,
    webhooks). The conditional UPDATE makes two concurrent runs emit nothing twice.
    """
    changed = await session.execute(
        sa_update(ApiKey)
        .where(col(ApiKey.id) == key_id, col(ApiKey.status) == "active",
               col(ApiKey.expires_at) <= now)
        .values(status="expired")
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        return False
    key = await get(session, key_id)
    assert key.expires_at is not None
    await emit(
        session,
        KeyExpired(key_id=key.id, key_type=TYPE_NAMES[KeyKind(key.kind)], agent_id=key.agent_id,
                   platform_id=key.platform_id, hint=key.hint, expired_at=key.expires_at),
        agent_id=key.agent_id,
        platform_id=key.platform_id,
    )
    return True


async def expire_due(session: UnitOfWork, now: datetime, limit: int = 500) -> list[str]:
    """Expire every due key in the caller's transaction (tools and tests; the scheduled job
    expires each in a transaction of its own)."""
    return [key_id for key_id in await due_to_expire(session, now, limit)
            if await expire(session, key_id, now)]
