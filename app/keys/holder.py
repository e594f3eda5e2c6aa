"""What a key holder does with keys, composed from the agent and key services."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from app.agents import service as agents
from app.auth.principal import Principal
from app.credentials.format import KeyKind
from app.credentials.scopes import DEFAULTS
from app.db.models.keys import ApiKey
from app.db.uow import UnitOfWork
from app.errors import Forbidden, ValidationFailed
from app.keys import service as keys
from app.keys.schemas import CreateKeyBody
from app.runtime import Runtime

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret: str
    claim_code: str | None = None


@dataclass(frozen=True, slots=True)
class RegeneratedSecret:
    key: ApiKey
    secret: str
    previous_valid_until: datetime


def validate_email(email: str) -> str:
    email = email.strip()
    if len(email) > 320 or not _EMAIL.match(email):
        raise ValidationFailed("email is not a valid e-mail address.")
    return email


async def signup(session: UnitOfWork, rt: Runtime, email: str) -> agents.NewAgent:
    return await agents.signup_by_email(
        session, rt.pepper, validate_email(email), rt.settings.starter_credits_micros
    )


async def create_personal_key(
    session: UnitOfWork, rt: Runtime, caller: Principal | None, body: CreateKeyBody
) -> NewKey:
    """With a caller: an extra key on the caller's agent. Without: a fresh unclaimed account."""
    if caller is None:
        if body.scopes is not None or body.expires_at is not None:
            raise ValidationFailed("scopes and expiresAt need an authenticated caller.")
        custom = keys.parse_custom_secret(KeyKind.PERSONAL, body.key) if body.key else None
        created = await agents.create_unclaimed_key(session, rt.pepper, body.label, custom)
        return NewKey(key=created.key.key, secret=created.key.secret,
                      claim_code=created.claim_code)

    if caller.agent_id is None:
        raise Forbidden("Only keys that belong to an agent can create keys.")
    if body.label is None:
        raise ValidationFailed("label is required when creating an additional key.")
    keys.check_expiry(body.expires_at)
    scopes = keys.check_scopes(body.scopes, caller.scopes)
    custom = keys.parse_custom_secret(KeyKind.PERSONAL, body.key) if body.key else None
    # A new key can never outlive the key that created it.
    expires_at = keys.cap_expiry(body.expires_at, caller.key_expires_at)
    default_scopes = sorted(set(DEFAULTS[KeyKind.PERSONAL]) & caller.scopes)
    issued = await keys.issue(
        session,
        rt.pepper,
        KeyKind.PERSONAL,
        agent_id=caller.agent_id,
        platform_id=caller.platform_id,
        label=body.label,
        scopes=scopes if scopes is not None else default_scopes,
        expires_at=expires_at,
        custom_secret=custom,
        created_by=caller.key_id,
    )
    return NewKey(key=issued.key, secret=issued.secret)


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
    if keys.cap_expiry(key.expires_at, caller.key_expires_at) != key.expires_at:
        raise Forbidden(f"A key cannot {action} a key that expires after it does.")


async def revoke_key(session: UnitOfWork, caller: Principal, key_id: str) -> ApiKey:
    """Revoke one of the caller's agent's keys (the caller's own included)."""
    key = await keys.get_owned(session, key_id, caller.agent_id or "")
    check_may_manage(caller, key, "revoke")
    return await keys.revoke(session, key)


async def regenerate_key(
    session: UnitOfWork, rt: Runtime, caller: Principal, key_id: str, grace_seconds: int
) -> RegeneratedSecret:
    """A new secret for one of the caller's agent's keys (the caller's own included)."""
    key = await keys.get_owned(session, key_id, caller.agent_id or "")
    check_may_manage(caller, key, "regenerate")
    secret, old_until = await keys.regenerate(session, rt.pepper, key, grace_seconds)
    return RegeneratedSecret(key=key, secret=secret, previous_valid_until=old_until)
