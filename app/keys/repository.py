"""The SQL of the keys area: keys and their secrets, read, searched and changed conditionally."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel import col, select

from app.attention.filters import not_parked
from app.db.models.agents import Agent
from app.db.models.attention import KEY_EXPIRY
from app.db.models.keys import ApiKey, KeySecret
from app.db.paging import PageParams
from app.db.queries import get_or_404, page, where_equal
from app.db.types import utcnow
from app.db.uow import UnitOfWork


async def get(session: UnitOfWork, key_id: str) -> ApiKey:
    """The key, or NOT_FOUND."""
    return await get_or_404(session, ApiKey, key_id, "API key")


async def find(session: UnitOfWork, key_id: str) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def key_by_secret_hash(session: UnitOfWork, digest: str) -> ApiKey | None:
    """The key one of whose secrets (current or within its grace) hashes to ``digest``."""
    return (
        await session.exec(
            select(ApiKey)
            .join(KeySecret, col(KeySecret.key_id) == col(ApiKey.id))
            .where(col(KeySecret.secret_hash) == digest)
        )
    ).first()


async def agent_plans(session: UnitOfWork, agent_ids: Iterable[str]) -> dict[str, str]:
    """Each agent's plan (a key's default rate limit follows its agent's plan)."""
    wanted = set(agent_ids)
    if not wanted:
        return {}
    rows = await session.exec(select(Agent.id, Agent.plan).where(col(Agent.id).in_(wanted)))
    return dict(rows.all())


async def search(
    session: UnitOfWork,
    params: PageParams,
    *,
    agent_id: str | None,
    platform_id: str | None,
    kind: str | None,
    status: str | None,
    hint_suffix: str | None,
) -> tuple[list[ApiKey], str | None]:
    """A page of keys, newest first; a filter left out (None) does not apply."""
    stmt = where_equal(
        select(ApiKey),
        (col(ApiKey.agent_id), agent_id),
        (col(ApiKey.platform_id), platform_id),
        (col(ApiKey.kind), kind),
        (col(ApiKey.status), status),
    )
    if hint_suffix is not None:
        stmt = stmt.where(col(ApiKey.hint).endswith(hint_suffix))
    return await page(session, stmt, col(ApiKey.id), params)


async def mark_revoked(session: UnitOfWork, key_id: str) -> bool:
    """Revoke the key unless it already is; True when this call changed it."""
    changed = await session.execute(
        update(ApiKey)
        .where(col(ApiKey.id) == key_id, col(ApiKey.status) != "revoked")
        .values(status="revoked", revoked_at=utcnow())
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


async def end_secrets_by(session: UnitOfWork, key_id: str, until: datetime) -> None:
    """Every secret of the key stops working at ``until`` at the latest (only ever shortens: a
    secret already ending earlier keeps its end)."""
    await session.execute(
        update(KeySecret)
        .where(
            col(KeySecret.key_id) == key_id,
            or_(col(KeySecret.expires_at).is_(None), col(KeySecret.expires_at) > until),
        )
        .values(expires_at=until)
    )


async def due_to_expire(session: UnitOfWork, now: datetime, limit: int) -> list[str]:
    """Active keys whose ``expiresAt`` has passed (except those parked for an operator)."""
    rows = await session.exec(
        select(ApiKey.id)
        .where(col(ApiKey.status) == "active", col(ApiKey.expires_at) <= now,
               not_parked(KEY_EXPIRY, ApiKey.id))
        .order_by(col(ApiKey.expires_at))
        .limit(limit)
    )
    return list(rows.all())


async def mark_expired(session: UnitOfWork, key_id: str, now: datetime) -> bool:
    """Mark an active key past its ``expiresAt`` expired; True when this call changed it."""
    changed = await session.execute(
        update(ApiKey)
        .where(col(ApiKey.id) == key_id, col(ApiKey.status) == "active",
               col(ApiKey.expires_at) <= now)
        .values(status="expired")
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]
