"""Turn a presented secret into a ``Principal``, or say precisely why not.

Several transactions: a key is read (and its ``lastUsedAt`` touched) in a session of the
authenticator's own, committed before the request's unit of work begins, so a cached principal
never depends on a request that may roll back.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.auth import repository
from app.auth.cache import KeyCache
from app.auth.principal import Principal
from app.background import BackgroundTasks
from app.credentials import format as key_format
from app.credentials.format import KeyKind
from app.credentials.hashing import MemoDigest, PepperedHash
from app.db.models.keys import ApiKey
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Unauthorized
from app.settings import Settings

log = logging.getLogger("passgate.auth")

# lastUsedAt is refreshed at most this often per key, so hot keys do not write on every call.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class Authenticator:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[UnitOfWork], cache: KeyCache
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.cache = cache
        self._pepper = settings.key_pepper.get_secret_value()
        self.digest = PepperedHash(self._pepper)
        # The cache is keyed by a cheap in-memory digest; the database by the stored hash.
        self._memo = MemoDigest(self._pepper)
        self._loading: dict[bytes, asyncio.Future[Principal | None]] = {}
        self._refreshing = BackgroundTasks(log, "background key refresh")
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        self._env_admin_digest = self.digest(token) if token else None

    def is_env_admin_token(self, secret: str) -> bool:
        if self._env_admin_digest is None:
            return False
        return hmac.compare_digest(self.digest(secret), self._env_admin_digest)

    async def authenticate(self, secret: str) -> Principal:
        """Cache first; on a miss the checksum (no I/O) and only then the database.

        A cache hit means this exact secret was verified moments ago, so the checksum is
        only computed for secrets the process has not seen; a mistyped key never reaches
        the database either way.
        """
        if len(secret) > key_format.MAX_KEY_CHARS:
            raise Unauthorized("API key is too long.")
        memo = self._memo(secret)
        cached = self.cache.get(memo)
        if cached is None:
            try:
                key_format.parse(secret)
            except key_format.KeyFormatError as exc:
                raise Unauthorized(str(exc)) from None
            principal = await asyncio.shield(self._load_once(memo, secret))
        else:
            principal, refresh = cached
            if refresh and memo not in self._loading:
                # A failed refresh leaves the entry valid until its TTL; the next foreground
                # read then reports the error.
                self._refreshing.track(self._load_once(memo, secret))
        if principal is None:
            raise Unauthorized("Unknown API key.")
        self._check_live(principal)
        return principal

    async def close(self) -> None:
        await self._refreshing.close()

    @staticmethod
    def _check_live(principal: Principal) -> None:
        if time.time() < principal.live_until:
            return
        now = utcnow()
        if principal.status == "revoked":
            raise Unauthorized("API key has been revoked.")
        if principal.status == "expired" or (
            principal.key_expires_at is not None and principal.key_expires_at <= now
        ):
            raise Unauthorized("API key has expired.")
        if principal.secret_expires_at is not None and principal.secret_expires_at <= now:
            raise Unauthorized("API key was regenerated; this secret is no longer valid.")

    def _load_once(self, memo: bytes, secret: str) -> asyncio.Future[Principal | None]:
        """Single flight: when a hot key's cache entry lapses, one read reloads it and the
        concurrent requests wait for that result instead of stampeding the database. The read
        is registered before this returns, so a burst cannot start a second one."""
        pending = self._loading.get(memo)
        if pending is None:
            pending = asyncio.ensure_future(self._load_into_cache(memo, secret))
            self._loading[memo] = pending
            pending.add_done_callback(lambda _: self._loading.pop(memo, None))
        return pending

    async def _load_into_cache(self, memo: bytes, secret: str) -> Principal | None:
        read_at, generation = time.monotonic(), self.cache.generation
        principal = await self._load(self.digest(secret))
        self.cache.put(memo, principal, read_at, generation)
        return principal

    async def _load(self, digest: str) -> Principal | None:
        async with self.sessions() as session:
            found = await repository.key_by_secret_hash(session, digest)
            if found is None:
                return None
            key, secret = found
            # Touch first, so that /v1/api-keys/info (served from the principal) already
            # reports the use that loaded it.
            await self._touch(session, key)
            return await self._principal(session, key, secret.expires_at)

    async def principal_for_key(self, session: UnitOfWork, key_id: str) -> Principal | None:
        """The principal of key ``key_id`` for a caller who proved a claim to it other than by
        its secret (sign-in-with-x): no secret, so no secret expiry; liveness is checked."""
        key = await repository.key(session, key_id)
        if key is None:
            return None
        principal = await self._principal(session, key, None)
        self._check_live(principal)
        return principal

    async def _principal(
        self, session: UnitOfWork, key: ApiKey, secret_expires_at: datetime | None
    ) -> Principal:
        agent = await repository.agent(session, key.agent_id)
        platform_id = key.platform_id or (agent.platform_id if agent else None)
        platform = await repository.platform(session, platform_id)
        plan = key.plan if key.kind == KeyKind.PASS.value else (agent.plan if agent else key.plan)
        limits = self.settings.plan_limits(plan)
        return Principal(
            key_id=key.id,
            kind=KeyKind(key.kind),
            agent_id=key.agent_id,
            platform_id=platform_id,
            scopes=frozenset(key.scopes),
            plan=plan,
            per_minute=key.rate_limit_per_minute or limits.per_minute,
            per_day=key.rate_limit_per_day or limits.per_day,
            status=key.status,
            key_expires_at=key.expires_at,
            secret_expires_at=secret_expires_at,
            agent_disabled=bool(agent and agent.disabled),
            platform_disabled=bool(platform and platform.disabled),
            label=key.label,
            hint=key.hint,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            period=key.period,
        )

    @staticmethod
    async def _touch(session: UnitOfWork, key: ApiKey) -> None:
        now = utcnow()
        if key.status != "active":
            return
        if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
            return
        await repository.touch(session, key.id, now)
        await session.commit()
        key.last_used_at = now
