"""What authentication reads and writes: a key by the hash of a secret, its owners, its last use.

Authentication sits below the keys area (whose routes use its guards), so it reads the key
tables itself rather than through the keys service.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select

from app.db.models.agents import Agent
from app.db.models.keys import ApiKey, KeySecret
from app.db.models.platforms import Platform
from app.db.uow import UnitOfWork


async def key_by_secret_hash(session: UnitOfWork, digest: str) -> tuple[ApiKey, KeySecret] | None:
    """The key one of whose secrets hashes to ``digest``, with that secret."""
    row = (
        await session.exec(
            select(ApiKey, KeySecret)
            .join(KeySecret, col(KeySecret.key_id) == col(ApiKey.id))
            .where(col(KeySecret.secret_hash) == digest)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def key(session: UnitOfWork, key_id: str) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def agent(session: UnitOfWork, agent_id: str | None) -> Agent | None:
    return await session.get(Agent, agent_id) if agent_id else None


async def platform(session: UnitOfWork, platform_id: str | None) -> Platform | None:
    return await session.get(Platform, platform_id) if platform_id else None


async def touch(session: UnitOfWork, key_id: str, now: datetime) -> None:
    """Record a use of the key (``lastUsedAt``)."""
    await session.execute(
        update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=now)
    )
