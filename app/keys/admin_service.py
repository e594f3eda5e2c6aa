"""The operator's actions on keys (``/admin/v1/keys``, admin tokens), each mutation audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.audit.service import Actor, record
from app.auth.cache import KeyCache
from app.auth.principal import Principal
from app.credentials.format import KeyKind
from app.credentials.hashing import key_hash
from app.db.paging import Page, PageParams
from app.db.types import rfc3339
from app.db.uow import UnitOfWork
from app.errors import NotFound
from app.keys import repository
from app.keys import service as keys
from app.keys.policy import cap_expiry, check_expiry
from app.keys.schemas import KeyView
from app.keys.service import forget_after_commit, pepper_of
from app.settings import Settings


async def search(
    session: UnitOfWork,
    settings: Settings,
    params: PageParams,
    *,
    prefix: str | None,
    agent_id: str | None,
    platform_id: str | None,
    status: str | None,
    hint: str | None,
) -> Page:
    """Any keys by prefix (kind), owner, status, or the last characters of the secret."""
    rows, next_cursor = await keys.list_keys(
        session, params, agent_id=agent_id, platform_id=platform_id,
        kind=prefix.rstrip("_") if prefix else None, status=status, hint_suffix=hint,
    )
    return Page(data=await keys.views(session, settings, rows), next_cursor=next_cursor)


async def lookup(session: UnitOfWork, settings: Settings, secret: str) -> KeyView:
    """The key a secret belongs to (e.g. one found leaked): hashes it, stores nothing."""
    key = await repository.key_by_secret_hash(session, key_hash(pepper_of(settings),
                                                                secret.strip()))
    if key is None:
        raise NotFound("No key has this secret.")
    return await keys.view(session, settings, key)


async def describe(session: UnitOfWork, settings: Settings, key_id: str) -> KeyView:
    """One key, with the rate limit it really gets."""
    return await keys.view(session, settings, await keys.get(session, key_id))


async def override(
    session: UnitOfWork, settings: Settings, cache: KeyCache, actor: Actor, key_id: str,
    changes: dict[str, Any],
) -> KeyView:
    """The operator's per-key label, plan and rate-limit overrides (audited)."""
    key = await keys.get(session, key_id)
    before = keys.key_snapshot(key)
    await keys.update(session, key, changes)
    await record(session, actor, "key.update", "key", key.id, before=before,
                 after=keys.key_snapshot(key))
    forget_after_commit(session, cache, key_id)
    return await keys.view(session, settings, key)


async def revoke_by_operator(
    session: UnitOfWork, settings: Settings, cache: KeyCache, actor: Actor, key_id: str
) -> KeyView:
    """The operator revokes any key (audited, also when it already was)."""
    key = await keys.get(session, key_id)
    before = keys.key_snapshot(key)
    await keys.revoke(session, key)
    await record(session, actor, "key.revoke", "key", key.id, before=before,
                 after=keys.key_snapshot(key))
    forget_after_commit(session, cache, key_id)
    return await keys.view(session, settings, key)


async def create_admin_token(
    session: UnitOfWork, settings: Settings, admin: Principal, actor: Actor,
    label: str | None, expires_at: datetime | None,
) -> keys.IssuedKey:
    """Another admin token, optionally expiring; never later than the calling token, so an
    expiring token cannot mint a permanent one (audited)."""
    issued = await keys.issue(
        session, pepper_of(settings), KeyKind.ADMIN, label=label,
        expires_at=cap_expiry(check_expiry(expires_at), admin.key_expires_at),
        created_by=admin.key_id,
    )
    await record(session, actor, "admin_token.create", "key", issued.key.id,
                 after={"label": issued.key.label, "hint": issued.key.hint,
                        "expiresAt": rfc3339(issued.key.expires_at)})
    return issued
