"""One typed settings object, read from ``PASSGATE_*`` environment variables (and ``.env``)."""

from __future__ import annotations

import json
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from eth_utils.address import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chain.networks import BASE_SEPOLIA_CHAIN_ID, BASE_SEPOLIA_USDC, Network, build_networks
from webhooks.schedule import DEFAULT_DELAYS

DEV_PEPPER = "passgate-dev-pepper-do-not-use-in-production"


class PlanLimits(BaseSettings):
    """Requests per minute / per day for one plan; ``None`` means no daily cap."""

    per_minute: int
    per_day: int | None = None


PROVIDER_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")


class ProviderSettings(BaseModel):
    """One gateway upstream, from the environment, the providers file or the admin API.

    ``headers`` carry the operator's upstream credentials: they go to the upstream only and are
    never shown to agents, logged, or returned by the admin API. Price per request in micros;
    ``model_prices`` (by the JSON body's ``model``) wins over ``route_prices`` (longest path
    prefix), which wins over ``price_micros``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=PROVIDER_NAME)
    base_url: str = Field(max_length=2048)
    price_micros: int = Field(ge=0)
    description: str | None = Field(default=None, max_length=2000)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    model_prices: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    route_prices: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # Where the upstream puts its request id (recorded with the usage, shown to the caller).
    request_id_header: str = Field(default="x-request-id", pattern=_HEADER_NAME.pattern)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("base_url must be an absolute http(s) URL")
        if parsed.query or parsed.fragment or parsed.username or parsed.password:
            raise ValueError("base_url takes no query, fragment or credentials (use headers)")
        return value.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if len({name.lower() for name in value}) != len(value):
            raise ValueError("header names must differ in more than case")
        for name, secret in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if any(c in secret.get_secret_value() for c in "\r\n\0"):
                raise ValueError(f"the value of header {name!r} contains a line break")
        return value

    @field_validator("route_prices")
    @classmethod
    def _route_prefixes(cls, value: dict[str, int]) -> dict[str, int]:
        for prefix in value:
            if not prefix.startswith("/") or len(prefix) > 500:
                raise ValueError(f"route prefix {prefix!r} must start with '/'")
        return value

    @field_validator("model_prices")
    @classmethod
    def _models(cls, value: dict[str, int]) -> dict[str, int]:
        for model in value:
            if not 0 < len(model) <= 200:
                raise ValueError("model names are 1 to 200 characters")
        return value


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
    # Connections per process (PostgreSQL): every API and worker process opens up to
    # pool + overflow, and the server's max_connections is shared by all of them.
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=20, ge=0)
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

    passes: list[PassSettings] = Field(default_factory=lambda: list(DEFAULT_PASSES))
    pass_scopes: list[str] = Field(default_factory=lambda: ["api:read", "gateway:call"])
    # Gateway upstreams: ``PASSGATE_PROVIDERS`` (a JSON list) wins, by name, over the entries
    # of ``PASSGATE_PROVIDERS_FILE`` (JSON or TOML: a list, or ``providers = [...]``).
    # Providers added with the admin API come after both (see ``app/gateway/providers.py``).
    providers: list[ProviderSettings] = Field(default_factory=list)
    providers_file: Path | None = None
    gateway_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    gateway_max_connections: int = Field(default=512, ge=1)
    gateway_max_keepalive_connections: int = Field(default=128, ge=0)
    # How long one process trusts its copy of the admin-managed providers.
    gateway_provider_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    # A reservation still pending this long (its process died mid-call) is released by the
    # sweeper; longer than any provider timeout.
    gateway_reservation_ttl_seconds: float = Field(default=900.0, ge=60)
    # PostgreSQL: a reservation commits without waiting for its WAL flush; the flush comes
    # with the call's recorded outcome, which is committed durably in batches off the request
    # path. A database crash can then only forget calls still in flight, which become free,
    # exactly as when an API process dies mid-call (never a double charge, never an overdraw:
    # atomicity and row locks are unchanged). False: every reservation waits for its own disk
    # flush (about 1.3 ms per call on the reference machine).
    gateway_async_commit: bool = True
    # ``credits.low`` fires when a charge takes a balance below this (0 disables it).
    credits_low_threshold_micros: int = Field(default=1_000_000, ge=0)

    wallet_challenge_seconds: int = Field(default=600, ge=1, le=86_400)

    # -- x402 payments -----------------------------------------------------------------
    # How long a paid request waits for settlement before answering 202 (PASSGATE_SETTLE_WAIT).
    settle_wait: float = Field(default=20.0, ge=0, le=120)
    # An identical retry of a paid request within this window gets the same result back.
    payment_replay_seconds: int = Field(default=3600, ge=0, le=7 * 86_400)
    x402_max_timeout_seconds: int = Field(default=300, ge=30, le=3600)

    webhook_allowed_cidrs: list[str] = Field(default_factory=list)
    # Outbound webhooks. The retry delays (seconds after failed attempt 1, 2, ...) get +-jitter;
    # tests compress them. A receiver's Retry-After is honoured up to the cap.
    webhook_retry_delays: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: list(DEFAULT_DELAYS)
    )
    webhook_retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    webhook_max_retry_after_seconds: float = Field(default=86_400, ge=0)
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # An endpoint failing without a single success for this long is disabled.
    webhook_disable_after_seconds: float = Field(default=5 * 86_400, gt=0)
    # After a secret rotation the previous secret keeps signing (second signature) this long.
    webhook_secret_overlap_seconds: int = Field(default=86_400, ge=0)
    # Replays go out at most this fast per endpoint, at most this many per request.
    webhook_replay_per_second: float = Field(default=5.0, gt=0)
    webhook_replay_max_messages: int = Field(default=1000, ge=1, le=100_000)
    # A worker owns a claimed message this long; must exceed the attempt timeout. A killed
    # worker's message is retried once it expires.
    webhook_claim_seconds: float = Field(default=60.0, gt=0)
    # The sweeper re-drives events and due messages this late (the broker lost them).
    webhook_sweep_grace_seconds: float = Field(default=60.0, ge=0)
    webhook_sweep_batch: int = Field(default=500, ge=1)
    webhook_max_endpoints: int = Field(default=50, ge=1)
    # HTTP requests one worker process keeps in flight (httpx's pool slows down past a few
    # dozen connections; scale out with processes).
    webhook_send_concurrency: int = Field(default=16, ge=1)
    trusted_proxies: list[str] = Field(default_factory=list)
    log_level: str = "INFO"
    # One JSON object per line (timestamp, level, logger, message, request and other ids), or
    # plain text lines.
    log_format: Literal["text", "json"] = "text"
    # One ``passgate.access`` line per request (at INFO); off for very busy APIs or benchmarks.
    access_log: bool = True

    # -- metrics -----------------------------------------------------------------------
    # When set, GET /metrics (and a worker's metrics port) want ``Authorization: Bearer``.
    metrics_token: SecretStr | None = None
    # ``passgate worker`` serves its own metrics on this port (unset: none).
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    # How long one API process reuses the states it read for /metrics (payments by status,
    # watchers, queues): scrapes every few seconds from several Prometheus servers cost one
    # set of queries.
    metrics_cache_seconds: float = Field(default=5.0, ge=0, le=60)

    # -- chain ---------------------------------------------------------------------------
    # A network is enabled by giving it RPC URLs: PASSGATE_CHAIN_RPC_URLS='{"base": "https://a,
    # https://b"}' (several URLs = failover). The other maps override the per-network defaults
    # of ``chain.networks`` (confirmations, poll interval, eth_getLogs range).
    chain_rpc_urls: dict[str, str] = Field(default_factory=dict)
    chain_local_chain_id: int = BASE_SEPOLIA_CHAIN_ID
    chain_local_usdc_address: str = BASE_SEPOLIA_USDC
    chain_confirmations: dict[str, int] = Field(default_factory=dict)
    chain_poll_interval_seconds: dict[str, float] = Field(default_factory=dict)
    chain_max_log_range: dict[str, int] = Field(default_factory=dict)
    # First block a watcher scans when it has no cursor yet. Unset: the chain head at the first
    # run for base / base-sepolia (no history scan), block 0 for local (a fresh dev chain).
    chain_start_blocks: dict[str, int] = Field(default_factory=dict)
    # Where USDC arrives: x402 payments (``payTo``) and deposits that become credits. Both are
    # watched; keeping them apart means a pushed payment is never mistaken for a deposit.
    chain_pay_to_address: str | None = None
    chain_deposit_address: str | None = None
    # The settlement signer's key: it submits transferWithAuthorization and pays the gas.
    chain_signer_private_key: SecretStr | None = None
    chain_rpc_timeout_seconds: float = Field(default=10.0, gt=0)
    # Block hashes remembered per network for reorg detection (deeper reorgs are not undone).
    chain_reorg_window_blocks: int = Field(default=64, ge=2, le=10_000)
    # One watcher run stops after this long and continues in the next run (bounded actors).
    chain_scan_budget_seconds: float = Field(default=20.0, gt=0)
    # Logs one eth_getLogs range aims at: a denser stretch gets narrower ranges, so a backfill
    # stores one range while the next is fetched, and hosted providers' result caps
    # (typically 10,000 logs) are not hit. Each range also costs a transaction and a few
    # statements whatever its size: at 5,000 rather than 2,500 a local backfill, bound by
    # the CPU, took 10-15 % less time.
    chain_target_logs_per_range: int = Field(default=5_000, ge=1, le=100_000)
    chain_max_backoff_seconds: float = Field(default=60.0, gt=0)
    # /v1/health reports 503 once a watcher has failed (or not run) for this long.
    chain_unhealthy_after_seconds: float = Field(default=60.0, gt=0)
    # A broadcast settlement not mined after this long is replaced (same nonce, higher fees).
    settlement_stuck_after_seconds: float = Field(default=30.0, gt=0)
    settlement_fee_bump_percent: int = Field(default=20, ge=11, le=500)
    settlement_poll_seconds: float = Field(default=1.0, gt=0)

    @field_validator("chain_pay_to_address", "chain_deposit_address", "chain_local_usdc_address")
    @classmethod
    def _checksummed(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not is_address(value):
            raise ValueError("not an Ethereum address")
        return str(to_checksum_address(value))

    def networks(self) -> dict[str, Network]:
        """The enabled networks (those with RPC URLs), keyed by name."""
        return build_networks(
            self.chain_rpc_urls,
            local_chain_id=self.chain_local_chain_id,
            local_usdc_address=self.chain_local_usdc_address or BASE_SEPOLIA_USDC,
            confirmations=self.chain_confirmations,
            poll_interval_seconds=self.chain_poll_interval_seconds,
            max_log_range=self.chain_max_log_range,
        )

    def watched_addresses(self) -> list[str]:
        """The service's receiving addresses the watchers look for (checksummed, distinct)."""
        found = [self.chain_pay_to_address, self.chain_deposit_address]
        return sorted({address for address in found if address})

    @model_validator(mode="after")
    def _merge_providers_file(self) -> Settings:
        if self.providers_file is None:
            names = [p.name for p in self.providers]
        else:
            configured = {p.name: p for p in load_providers_file(self.providers_file)}
            configured.update({p.name: p for p in self.providers})
            self.providers = list(configured.values())
            names = list(configured)
        if len(set(names)) != len(names):
            raise ValueError("two gateway providers share a name")
        for provider in self.providers:
            check_outlives_call(self, provider.timeout_seconds, provider.name)
        return self

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


def load_providers_file(path: Path) -> list[ProviderSettings]:
    """Providers from a JSON or TOML file (by extension): a list, or ``{"providers": [...]}``."""
    text = path.read_text(encoding="utf-8")
    raw: Any = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    if isinstance(raw, dict):
        raw = raw.get("providers", [])
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of providers")
    return [ProviderSettings.model_validate(item) for item in raw]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own ``Settings`` instead."""
    return Settings()


def check_outlives_call(settings: Settings, timeout_seconds: float, provider: str) -> None:
    """A gateway reservation must outlive the longest wait for its upstream's answer.

    The sweeper gives back reservations older than ``gateway_reservation_ttl_seconds``; one
    still waiting for its upstream would be refunded, and the answer that then arrives could
    no longer be charged: a free call beyond any spending limit.
    """
    longest = timeout_seconds + settings.gateway_connect_timeout_seconds
    if settings.gateway_reservation_ttl_seconds <= longest:
        raise ValueError(
            f"gateway provider '{provider}': its timeout ({timeout_seconds:g}s, plus "
            f"{settings.gateway_connect_timeout_seconds:g}s to connect) must end before a "
            f"reservation expires (PASSGATE_GATEWAY_RESERVATION_TTL_SECONDS="
            f"{settings.gateway_reservation_ttl_seconds:g})"
        )
