"""API keys: issue, read, list, revoke, regenerate, expire. Secrets exist only in return values.

Key holders manage their agent's keys here (an extra key, revocation, regeneration); the
operator's actions on any key are in :mod:`app.keys.admin_service`. A change that must bite at
once drops the key from this process's cache when the transaction commits; other processes
hear of it at once (``app.auth.broadcast``).

Several transactions: the scheduled expiry (``due_to_expire``, then ``expire`` for each key in
a transaction of its own).

A key's view carries the rate limit it really gets, which follows its agent's plan: views are
built here (one read of the plans), not in the routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.auth.cache import KeyCache
from app.auth.principal import Principal
from app.credentials import format as key_format
from app.credentials.format import KeyKind
from app.credentials.hashing import key_hash
from app.credentials.scopes import DEFAULTS, TYPE_NAMES
from app.db.models.keys import ApiKey, KeySecret
from app.db.paging import Page, PageParams
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.events.service import emit
from app.ids import new_id
from app.keys import repository
from app.keys.policy import (
    cap_expiry,
    check_expiry,
    check_may_manage,
    check_scopes,
    parse_custom_secret,
)
from app.keys.schemas import CreateKeyBody, KeyView, key_view
from app.settings import Settings
from webhooks.events import KeyCreated, KeyExpired, KeyRevoked, KeyRotated


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class RegeneratedSecret:
    key: ApiKey
    secret: str
    previous_valid_until: datetime


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


def key_snapshot(key: ApiKey) -> dict[str, Any]:
    """The audited view of a key (never a secret or a hash)."""
    return {
        "label": key.label,
        "plan": key.plan,
        "status": key.status,
        "rateLimitPerMinute": key.rate_limit_per_minute,
        "rateLimitPerDay": key.rate_limit_per_day,
    }


def pepper_of(settings: Settings) -> str:
    """The server pepper that keys every stored secret hash."""
    return settings.key_pepper.get_secret_value()


def forget_after_commit(session: UnitOfWork, cache: KeyCache, key_id: str) -> None:
    """Once this transaction commits, this process stops serving the key from its cache."""
    session.after_commit(lambda: cache.forget(key_id))


# -- issuing and reading -------------------------------------------------------------------------


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
    """A new key and its first secret (``key.created`` unless it is an admin token)."""
    secret = custom_secret or key_format.generate(kind)
    digest = key_hash(pepper, secret)
    if custom_secret is not None and (
        await repository.key_by_secret_hash(session, digest) is not None
    ):
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


async def get(session: UnitOfWork, key_id: str) -> ApiKey:
    """The key, or NOT_FOUND."""
    return await repository.get(session, key_id)


async def find(session: UnitOfWork, key_id: str) -> ApiKey | None:
    """The key, None when there is no such key (the caller decides whether that is an error,
    and with which message)."""
    return await repository.find(session, key_id)


async def status_of(session: UnitOfWork, key_id: str) -> str | None:
    """The key's stored status, None when there is no such key."""
    key = await find(session, key_id)
    return None if key is None else key.status


async def get_owned(session: UnitOfWork, key_id: str, agent_id: str) -> ApiKey:
    """Someone else's key is indistinguishable from a missing one."""
    key = await find(session, key_id)
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
    """A page of keys, newest first; an empty or omitted filter does not apply (owner ids
    apply whenever given)."""
    return await repository.search(
        session, params, agent_id=agent_id, platform_id=platform_id, kind=kind or None,
        status=status or None, hint_suffix=hint_suffix or None,
    )


async def views(session: UnitOfWork, settings: Settings, keys: Sequence[ApiKey]) -> list[KeyView]:
    """The keys as anyone may see them, each with the rate limit it really gets."""
    plans = await repository.agent_plans(session, {k.agent_id for k in keys if k.agent_id})
    return [key_view(k, settings, plans.get(k.agent_id or "")) for k in keys]


async def view(session: UnitOfWork, settings: Settings, key: ApiKey) -> KeyView:
    """The key as anyone may see it, with the rate limit it really gets."""
    return (await views(session, settings, [key]))[0]


# -- changing ------------------------------------------------------------------------------------


async def revoke(session: UnitOfWork, key: ApiKey) -> ApiKey:
    """Idempotent: revoking a revoked key changes nothing and emits nothing.

    The conditional UPDATE decides between concurrent revocations (two requests, a request
    and the settlement worker): the database lets one of them change the row, and only that
    one emits ``key.revoked``.
    """
    if key.status == "revoked":
        return key
    changed = await repository.mark_revoked(session, key.id)
    # Either way, show the row as the database has it: the loser of a race reports the
    # winner's revocation time, not its own.
    await session.refresh(key)
    if not changed:
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
    await repository.end_secrets_by(session, key.id, old_until)
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


async def update(session: UnitOfWork, key: ApiKey, changes: dict[str, Any]) -> ApiKey:
    """Apply a partial update; ``changes`` uses model field names."""
    for field, value in changes.items():
        setattr(key, field, value)
    session.add(key)
    await session.flush()
    return key


async def due_to_expire(session: UnitOfWork, now: datetime, limit: int = 500) -> list[str]:
    """Active keys whose ``expiresAt`` has passed (except those parked for an operator)."""
    return await repository.due_to_expire(session, now, limit)


async def expire(session: UnitOfWork, key_id: str, now: datetime) -> bool:
    """Mark a key past ``expiresAt`` as expired and emit ``key.expired`` once.

    Authentication already refuses it on its own; this makes the state visible (lists, admin,
    webhooks). The conditional UPDATE makes two concurrent runs emit nothing twice.
    """
    if not await repository.mark_expired(session, key_id, now):
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


# -- a key holder's own agent's keys -------------------------------------------------------------


async def list_for_agent(
    session: UnitOfWork, settings: Settings, params: PageParams, caller: Principal,
    status: str | None,
) -> Page:
    """The caller's agent's keys, newest first (never secrets)."""
    rows, next_cursor = await list_keys(session, params, agent_id=caller.agent_id or "",
                                        status=status)
    return Page(data=await views(session, settings, rows), next_cursor=next_cursor)


async def create_for_agent(
    session: UnitOfWork, settings: Settings, caller: Principal, body: CreateKeyBody
) -> IssuedKey:
    """An extra personal key on the caller's agent: scopes within the caller's, never
    outliving the caller."""
    if caller.agent_id is None:
        raise Forbidden("Only keys that belong to an agent can create keys.")
    if body.label is None:
        raise ValidationFailed("label is required when creating an additional key.")
    check_expiry(body.expires_at)
    scopes = check_scopes(body.scopes, caller.scopes)
    custom = parse_custom_secret(KeyKind.PERSONAL, body.key) if body.key else None
    # A new key can never outlive the key that created it.
    expires_at = cap_expiry(body.expires_at, caller.key_expires_at)
    default_scopes = sorted(set(DEFAULTS[KeyKind.PERSONAL]) & caller.scopes)
    return await issue(
        session,
        pepper_of(settings),
        KeyKind.PERSONAL,
        agent_id=caller.agent_id,
        platform_id=caller.platform_id,
        label=body.label,
        scopes=scopes if scopes is not None else default_scopes,
        expires_at=expires_at,
        custom_secret=custom,
        created_by=caller.key_id,
    )


async def revoke_for_holder(
    session: UnitOfWork, settings: Settings, cache: KeyCache, caller: Principal, key_id: str
) -> KeyView:
    """Revoke one of the caller's agent's keys (the caller's own included)."""
    key = await get_owned(session, key_id, caller.agent_id or "")
    check_may_manage(caller, key, "revoke")
    key = await revoke(session, key)
    forget_after_commit(session, cache, key_id)
    return await view(session, settings, key)


async def regenerate_for_holder(
    session: UnitOfWork, settings: Settings, cache: KeyCache, caller: Principal, key_id: str,
    grace_seconds: int,
) -> RegeneratedSecret:
    """A new secret for one of the caller's agent's keys (the caller's own included)."""
    key = await get_owned(session, key_id, caller.agent_id or "")
    check_may_manage(caller, key, "regenerate")
    secret, old_until = await regenerate(session, pepper_of(settings), key, grace_seconds)
    forget_after_commit(session, cache, key_id)
    return RegeneratedSecret(key=key, secret=secret, previous_valid_until=old_until)
