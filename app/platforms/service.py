"""Platforms (tenants): creating and changing them, their spending limit and master keys.

Every mutation made over HTTP (the operator's or a platform's own) is audited; the agents of a
platform's fleet are :mod:`app.platforms.fleet`. A change that must bite at once clears this
process's key cache when the transaction commits; other processes hear of it at once
(``app.auth.broadcast``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.audit.service import Actor, record
from app.auth.cache import KeyCache
from app.auth.principal import Principal
from app.credentials.format import KeyKind
from app.db.models.keys import ApiKey
from app.db.models.platforms import Platform
from app.db.paging import PageParams
from app.db.types import rfc3339
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.ids import new_id
from app.keys import service as keys
from app.keys.policy import cap_expiry, check_expiry
from app.platforms import repository
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class NewPlatform:
    platform: Platform
    master: keys.IssuedKey


def platform_snapshot(platform: Platform) -> dict[str, Any]:
    """The audited view of a platform."""
    return {
        "name": platform.name,
        "disabled": platform.disabled,
        "dailySpendingLimitMicros": platform.daily_spending_limit_micros,
    }


async def create(session: UnitOfWork, pepper: str, name: str, created_by: str) -> NewPlatform:
    """A platform with its first master key (the caller audits it)."""
    platform = Platform(id=new_id("plt"), name=name)
    session.add(platform)
    await session.flush()
    master = await keys.issue(
        session, pepper, KeyKind.MASTER, platform_id=platform.id, label="first master key",
        created_by=created_by,
    )
    return NewPlatform(platform=platform, master=master)


async def create_audited(
    session: UnitOfWork, settings: Settings, actor: Actor, name: str
) -> NewPlatform:
    """The operator creates a platform with its first master key."""
    created = await create(session, keys.pepper_of(settings), name, actor.id or "")
    await record(session, actor, "platform.create", "platform", created.platform.id,
                 after=platform_snapshot(created.platform))
    return created


async def get(session: UnitOfWork, platform_id: str) -> Platform:
    """The platform, or NOT_FOUND."""
    return await repository.get(session, platform_id)


async def search(
    session: UnitOfWork, params: PageParams
) -> tuple[list[Platform], str | None]:
    """Platforms, newest first."""
    return await repository.search(session, params)


async def update_audited(
    session: UnitOfWork, cache: KeyCache, actor: Actor, platform_id: str,
    changes: dict[str, Any],
) -> Platform:
    """The operator renames, disables/enables a platform or changes its limit; disabling
    bites at once in this process."""
    platform = await get(session, platform_id)
    before = platform_snapshot(platform)
    for field, value in changes.items():
        setattr(platform, field, value)
    session.add(platform)
    await record(session, actor, "platform.update", "platform", platform.id,
                 before=before, after=platform_snapshot(platform))
    session.after_commit(lambda: cache.forget(platform_id))
    return platform


async def set_spending_limit(
    session: UnitOfWork, actor: Actor, platform_id: str, daily_limit: int | None
) -> Platform:
    """The fleet-wide daily spending limit in micros (None removes it)."""
    platform = await get(session, platform_id)
    before = {"dailyLimitMicros": platform.daily_spending_limit_micros}
    if daily_limit is not None and daily_limit < 0:
        raise ValidationFailed("dailyLimitMicros must be zero or more.")
    platform.daily_spending_limit_micros = daily_limit
    session.add(platform)
    await session.flush()
    await record(session, actor, "platform.spending_limit", "platform", platform.id,
                 before=before, after={"dailyLimitMicros": platform.daily_spending_limit_micros})
    # Every process retires the fleet's credit leases (app.gateway.leases) so the next is
    # taken under the new limit, at once where the change is broadcast.
    session.key_changed(platform_id)
    return platform


async def create_master_key(
    session: UnitOfWork,
    settings: Settings,
    actor: Actor,
    master: Principal,
    label: str | None,
    expires_at: datetime | None,
) -> keys.IssuedKey:
    """Another master key of the calling master key's platform; it never outlives the key
    creating it."""
    issued = await keys.issue(
        session, keys.pepper_of(settings), KeyKind.MASTER, platform_id=master.platform_id or "",
        label=label, expires_at=cap_expiry(check_expiry(expires_at), master.key_expires_at),
        created_by=master.key_id,
    )
    await record(session, actor, "master_key.create", "key", issued.key.id,
                 after={"label": issued.key.label, "hint": issued.key.hint,
                        "expiresAt": rfc3339(issued.key.expires_at)})
    return issued


async def list_master_keys(
    session: UnitOfWork, platform_id: str, params: PageParams
) -> tuple[list[ApiKey], str | None]:
    """The platform's master keys, newest first."""
    return await keys.list_keys(session, params, platform_id=platform_id, kind=KeyKind.MASTER.value)


async def revoke_master_key(
    session: UnitOfWork, cache: KeyCache, actor: Actor, master: Principal, key_id: str
) -> ApiKey:
    """Revoke another master key of the platform (a key cannot revoke itself: CONFLICT).

    Revoking is idempotent; a repeat is audited like the operator's, as the no-op it was."""
    key = await keys.find(session, key_id)
    if key is None or key.platform_id != (master.platform_id or "") or (
        key.kind != KeyKind.MASTER.value
    ):
        raise NotFound("Master key not found.")
    if key.id == master.key_id:
        raise Conflict("A master key cannot revoke itself; use another master key.")
    previous = key.status
    await keys.revoke(session, key)
    await record(session, actor, "master_key.revoke", "key", key.id,
                 before={"status": previous}, after={"status": key.status})
    session.after_commit(lambda: cache.forget(key_id))
    return key
