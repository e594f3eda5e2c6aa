"""Model -> wire conversions for keys."""

from __future__ import annotations

from functools import lru_cache

from app.auth.principal import Principal
from app.credentials.format import KeyKind
from app.credentials.scopes import TYPE_NAMES
from app.db.models.keys import ApiKey
from app.db.types import rfc3339
from app.http.schemas import RateLimitView
from app.keys.schemas import KeyView
from app.settings import Settings


def rate_limit_of(key: ApiKey, settings: Settings, agent_plan: str | None = None) -> RateLimitView:
    plan = key.plan if key.kind == KeyKind.PASS.value else (agent_plan or key.plan)
    limits = settings.plan_limits(plan)
    return RateLimitView(
        requests_per_minute=key.rate_limit_per_minute or limits.per_minute,
        requests_per_day=key.rate_limit_per_day or limits.per_day,
    )


def key_view(key: ApiKey, settings: Settings, agent_plan: str | None = None) -> KeyView:
    return KeyView(
        id=key.id,
        type=TYPE_NAMES[KeyKind(key.kind)],
        label=key.label,
        hint=key.hint,
        scopes=list(key.scopes),
        status=key.status,
        created_at=rfc3339(key.created_at) or "",
        expires_at=rfc3339(key.expires_at),
        period=key.period,
        rate_limit=rate_limit_of(key, settings, agent_plan),
        last_used_at=rfc3339(key.last_used_at),
        revoked_at=rfc3339(key.revoked_at),
        agent_id=key.agent_id,
    )


@lru_cache(maxsize=4096)
def principal_view(principal: Principal) -> KeyView:
    """The calling key as the cache knows it (fresh within ``key_cache_seconds``).

    Memoised: a principal is an immutable snapshot, so its view is too.
    """
    return KeyView(
        id=principal.key_id,
        type=TYPE_NAMES[principal.kind],
        label=principal.label,
        hint=principal.hint,
        scopes=sorted(principal.scopes),
        status=principal.status,
        created_at=rfc3339(principal.created_at) or "",
        expires_at=rfc3339(principal.key_expires_at),
        period=principal.period,
        rate_limit=RateLimitView(
            requests_per_minute=principal.per_minute, requests_per_day=principal.per_day
        ),
        last_used_at=rfc3339(principal.last_used_at),
        revoked_at=None,
        agent_id=principal.agent_id,
    )
