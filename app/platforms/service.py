"""Platforms (tenants) and their master keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from app.credentials.format import KeyKind
from app.db.models.keys import ApiKey
from app.db.models.platforms import Platform
from app.db.paging import PageParams, apply, split
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.ids import new_id
from app.keys import service as keys


@dataclass(frozen=True, slots=True)
class NewPlatform:
    platform: Platform
    master: keys.IssuedKey


async def create(session: UnitOfWork, pepper: str, name: str, created_by: str) -> NewPlatform:
    platform = Platform(id=new_id("plt"), name=name)
    session.add(platform)
    await session.flush()
    master = await keys.issue(
        session, pepper, KeyKind.MASTER, platform_id=platform.id, label="first master key",
        created_by=created_by,
    )
    return NewPlatform(platform=platform, master=master)


async def get(session: UnitOfWork, platform_id: str) -> Platform:
    platform = await session.get(Platform, platform_id)
    if platform is None:
        raise NotFound("Platform not found.")
    return platform


async def search(
    session: UnitOfWork, params: PageParams
) -> tuple[list[Platform], str | None]:
    rows = (await session.exec(apply(select(Platform), col(Platform.id), params))).all()  # type: ignore[call-overload]
    return split(rows, params, lambda p: p.id)


async def set_spending_limit(
    session: UnitOfWork, platform: Platform, daily_limit: int | None
) -> Platform:
    if daily_limit is not None and daily_limit < 0:
        raise ValidationFailed("dailyLimitMicros must be zero or more.")
    platform.daily_spending_limit_micros = daily_limit
    session.add(platform)
    await session.flush()
    return platform


async def create_master_key(
    session: UnitOfWork,
    pepper: str,
    platform_id: str,
    label: str | None,
    created_by: str,
    expires_at: datetime | None = None,
    ceiling: datetime | None = None,
) -> keys.IssuedKey:
    """Another master key; it never outlives ``ceiling``, the expiry of the key creating it."""
    return await keys.issue(
        session, pepper, KeyKind.MASTER, platform_id=platform_id, label=label,
        expires_at=keys.cap_expiry(keys.check_expiry(expires_at), ceiling),
        created_by=created_by,
    )


async def list_master_keys(
    session: UnitOfWork, platform_id: str, params: PageParams
) -> tuple[list[ApiKey], str | None]:
    return await keys.list_keys(session, params, platform_id=platform_id, kind=KeyKind.MASTER.value)


async def revoke_master_key(
    session: UnitOfWork, platform_id: str, key_id: str, calling_key_id: str
) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or key.platform_id != platform_id or key.kind != KeyKind.MASTER.value:
        raise NotFound("Master key not found.")
    if key.id == calling_key_id:
        raise Conflict("A master key cannot revoke itself; use another master key.")
    return await keys.revoke(session, key)
