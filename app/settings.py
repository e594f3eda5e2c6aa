"""One typed settings object, read from ``PASSGATE_*`` environment variables (and ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PEPPER = "passgate-dev-pepper-do-not-use-in-production"


class PlanLimits(BaseSettings):
    """Requests per minute / per day for one plan; ``None`` means no daily cap."""

    per_minute: int
    per_day: int | None = None


class ProviderSettings(BaseSettings):
    """One gateway upstream (filled out by the gateway)."""

    name: str
    base_url: str
    price_micros: int = Field(ge=0)
    description: str | None = None


class PassSettings(BaseSettings):
    """One entry of the key-pass catalog."""

    period: str
    seconds: int
    price_micros: int = Field(ge=0)


DEFAULT_PASSES = [
    PassSettings(period="1d", seconds=86_400, price_micros=10_000_000),
    PassSettings(period="1w", seconds=7 * 86_400, price_micros=50_000_000),
    PassSettings(period="4w", seconds=28 * 86_400, price_micros=100_000_000),
]


class Settings(BaseSettings):
    """Everything passgate reads from its environment.

    Secrets are ``SecretStr`` so that printing or logging the settings never reveals them.
    """

    model_config = SettingsConfigDict(
        env_prefix="PASSGATE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000

    database_url: str = "sqlite+aiosqlite:///./passgate.db"
    database_echo: bool = False
    # Namespaces shared Redis keys (rate limits), so several deployments can share a server.
    redis_prefix: str = "passgate"
    # Empty means embedded mode: in-memory rate limits, Dramatiq StubBroker.
    redis_url: str = ""

    key_pepper: SecretStr = SecretStr(DEV_PEPPER)
    admin_token: SecretStr | None = None

    # Money is integer USDC base units (6 decimals).
    starter_credits_micros: int = Field(default=10_000_000, ge=0)
    agent_starter_credits_micros: int = Field(default=0, ge=0)

    plan_free_per_minute: int = 60
    plan_free_per_day: int | None = None
    plan_pro_per_minute: int = 600
    plan_pro_per_day: int | None = None
    plan_enterprise_per_minute: int = 6000
    plan_enterprise_per_day: int | None = None
    plan_pass_per_minute: int = 30
    plan_pass_per_day: int | None = 10_000
    # Unauthenticated key creation (register, /v1/keys, unclaimed /v1/api-keys) per client IP.
    signup_per_minute: int = 10
    signup_per_day: int = 200

    # How long a verified key stays cached in one process; revocation takes effect within it.
    key_cache_seconds: float = Field(default=1.0, ge=0, le=5)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_regenerate_grace_seconds: int = 86_400

    passes: list[PassSettings] = Field(default_factory=lambda: list(DEFAULT_PASSES))
    pass_scopes: list[str] = Field(default_factory=lambda: ["api:read", "gateway:call"])
    providers: list[ProviderSettings] = Field(default_factory=list)

    wallet_challenge_seconds: int = Field(default=600, ge=1, le=86_400)

    webhook_allowed_cidrs: list[str] = Field(default_factory=list)
    trusted_proxies: list[str] = Field(default_factory=list)
    log_level: str = "INFO"

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: single process, in-memory stores."""
        return not self.redis_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def plan_limits(self, plan: str) -> PlanLimits:
        table = {
            "free": (self.plan_free_per_minute, self.plan_free_per_day),
            "pro": (self.plan_pro_per_minute, self.plan_pro_per_day),
            "enterprise": (self.plan_enterprise_per_minute, self.plan_enterprise_per_day),
            "pass": (self.plan_pass_per_minute, self.plan_pass_per_day),
        }
        per_minute, per_day = table.get(plan, table["free"])
        return PlanLimits(per_minute=per_minute, per_day=per_day)

    def sync_database_url(self) -> str:
        """The same database for synchronous tools (Alembic)."""
        url = self.database_url
        for async_driver, sync_driver in (
            ("sqlite+aiosqlite", "sqlite"),
            ("postgresql+asyncpg", "postgresql+psycopg"),
        ):
            if url.startswith(async_driver):
                return sync_driver + url[len(async_driver) :]
        return url

    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        tail = self.database_url.split(":///", 1)[-1]
        return None if tail in ("", ":memory:") else Path(tail)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own ``Settings`` instead."""
    return Settings()
