"""One typed settings object, read from ``PASSGATE_*`` environment variables (and ``.env``).

Every value is checked when the settings load, ranges and shapes as well as types, and
``load_settings`` reports every bad one as a line of its own (``app.config.problems``). In the
environment, lists take JSON or comma-separated text; lists of objects and maps take JSON.
A field's ``examples`` (environment text) show a good value in those lines; without one its
default does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_account import Account
from eth_utils.address import is_address, to_checksum_address
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from app.config.conflicts import chain_conflicts, provider_conflicts
from app.config.fields import (
    DatabaseUrl,
    HttpUrl,
    IpNetwork,
    LogLevel,
    NetworkName,
    RedisUrl,
    RpcUrls,
    SignerKey,
    decode_env_text,
    shape_of,
)
from app.config.plans import DEFAULT_PASSES, MAX_MICROS, PassSettings, PlanLimits
from app.config.problems import Conflicts, Problem, SettingsError, problems_from
from app.config.providers import ProviderSettings
from app.credentials.scopes import ALL as KNOWN_SCOPES
from chain.networks import BASE_SEPOLIA_CHAIN_ID, BASE_SEPOLIA_USDC, Network, build_networks
from webhooks.retry_policy import DEFAULT_DELAYS

DEV_PEPPER = "passgate-dev-pepper-do-not-use-in-production"

PerDay = Annotated[int, Field(ge=1)] | None


class Settings(BaseSettings):
    """Everything passgate reads from its environment.

    Secrets are ``SecretStr`` so that printing or logging the settings never reveals them.
    """

    model_config = SettingsConfigDict(
        env_prefix="PASSGATE_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        # Lists and maps arrive as text and are decoded by ``_from_env_text``: lists also take
        # comma-separated values, and bad JSON is a problem line of its own.
        enable_decoding=False,
    )

    environment: Literal["development", "test", "production"] = "development"
    public_url: HttpUrl = Field("http://127.0.0.1:8000", examples=["https://pay.example.com"])
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8000, ge=1, le=65_535)

    database_url: DatabaseUrl = Field(
        "sqlite+aiosqlite:///./passgate.db",
        examples=["postgresql+asyncpg://passgate@db.internal:5432/passgate"],
    )
    database_echo: bool = False
    # Connections per process (PostgreSQL): every API and worker process opens up to
    # pool + overflow, and the server's max_connections is shared by all of them.
    database_pool_size: int = Field(default=10, ge=1, le=1000)
    database_max_overflow: int = Field(default=20, ge=0, le=1000)
    # Namespaces every Redis key (rate limits, queues, settlement wake-ups), so deployments
    # sharing a Redis server never see each other's counters or consume each other's jobs.
    redis_prefix: str = Field("passgate", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
                              examples=["passgate-staging"])
    # Empty means embedded mode: in-memory rate limits, Dramatiq StubBroker.
    redis_url: RedisUrl = Field("", examples=["redis://redis.internal:6379/0"])

    # Keys the hash of every stored key and the AES-GCM box for webhook secrets, provider
    # credentials and replayable results; production refuses the development default.
    key_pepper: SecretStr = Field(SecretStr(DEV_PEPPER), examples=["$(openssl rand -hex 32)"])
    admin_token: SecretStr | None = Field(None, examples=["$(openssl rand -hex 24)"])

    # Money is integer USDC base units (6 decimals).
    starter_credits_micros: int = Field(default=10_000_000, ge=0, le=MAX_MICROS)
    agent_starter_credits_micros: int = Field(default=0, ge=0, le=MAX_MICROS)

    plan_free_per_minute: int = Field(60, ge=1)
    plan_free_per_day: PerDay = Field(None, examples=[5000])
    plan_pro_per_minute: int = Field(600, ge=1)
    plan_pro_per_day: PerDay = Field(None, examples=[50_000])
    plan_enterprise_per_minute: int = Field(6000, ge=1)
    plan_enterprise_per_day: PerDay = Field(None, examples=[500_000])
    plan_pass_per_minute: int = Field(30, ge=1)
    plan_pass_per_day: PerDay = 10_000
    # Unauthenticated key creation (register, /v1/keys, unclaimed /v1/api-keys) per client IP.
    signup_per_minute: int = Field(10, ge=1)
    signup_per_day: int = Field(200, ge=1)
    # Sign-in-with-x proofs per client IP (each costs ~30 ms of CPU, a smart wallet's an RPC
    # call), counted before anything is parsed.
    siwx_per_minute: int = Field(60, ge=1)
    siwx_per_day: int = Field(5_000, ge=1)

    # How long a verified key stays cached in one process when changes are not broadcast (no
    # Redis, or the subscription lost); revocation takes effect within it. 0 disables the cache.
    key_cache_seconds: float = Field(default=1.0, ge=0, le=5)
    # With Redis, changes are broadcast to every process at once (app.auth.broadcast) and a key
    # may stay cached this long while the broadcast is confirmed live.
    key_cache_broadcast_seconds: float = Field(default=60.0, ge=0, le=3600)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=1024**3)

    passes: list[PassSettings] = Field(
        default_factory=lambda: list(DEFAULT_PASSES), min_length=1,
        examples=["'[{\"period\": \"1d\", \"seconds\": 86400, \"price_micros\": 10000000}]'"],
    )
    pass_scopes: list[str] = Field(default_factory=lambda: ["api:read", "gateway:call"],
                                   min_length=1)
    # Gateway upstreams: ``PASSGATE_PROVIDERS`` (a JSON list) wins, by name, over the entries
    # of ``PASSGATE_PROVIDERS_FILE`` (JSON or TOML: a list, or ``providers = [...]``).
    # Providers added with the admin API come after both (see ``app/gateway/providers.py``).
    providers: list[ProviderSettings] = Field(
        default_factory=list,
        examples=["'[{\"name\": \"openai\", \"base_url\": \"https://api.openai.com\", "
                  "\"price_micros\": 1000}]'"],
    )
    providers_file: Path | None = Field(None, examples=["/etc/passgate/providers.toml"])
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
    # Credit leases (``app.gateway.leases``): each API process takes credits from a balance
    # once and pays many calls from memory, recording them in batches off the request path.
    # Never an overdraw or a limit passed; a process that dies may leave calls it served
    # uncharged, at most one lease per agent (``gateway_lease_max_micros``). False: every call
    # reserves its own price (exact ledger per call, ``X-Balance`` on every answer).
    gateway_credit_leases: bool = False
    # A lease pays calls for at most this long; limit changes and agent changes reach a process
    # at once over Redis, else after this. Longer leases spread their cost over more calls.
    gateway_lease_seconds: float = Field(default=30.0, ge=0.5, le=300)
    # The most one lease may hold: the bound of what a crashed process can leave uncharged.
    gateway_lease_max_micros: int = Field(default=1_000_000, ge=1, le=MAX_MICROS)
    # An open lease this long past its expiry is closed by the sweeper: its process stopped
    # extending it (it does so every third of this while calls on it run), so it died.
    gateway_lease_grace_seconds: float = Field(default=60.0, ge=5, le=86_400)
    # ``credits.low`` fires when a charge takes a balance below this (0 disables it).
    credits_low_threshold_micros: int = Field(default=1_000_000, ge=0, le=MAX_MICROS)

    wallet_challenge_seconds: int = Field(default=600, ge=1, le=86_400)

    # -- x402 payments -----------------------------------------------------------------
    # How long a paid request waits for settlement before answering 202 (PASSGATE_SETTLE_WAIT).
    settle_wait: float = Field(default=20.0, ge=0, le=120)
    # A retry with the same payment identifier within this window gets the same result back.
    payment_replay_seconds: int = Field(default=3600, ge=0, le=7 * 86_400)
    x402_max_timeout_seconds: int = Field(default=300, ge=30, le=3600)

    # Private ranges webhook targets may resolve to (loopback for local receivers).
    webhook_allowed_cidrs: list[IpNetwork] = Field(default_factory=list,
                                                   examples=["127.0.0.0/8,10.0.0.0/8"])
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
    # A job failing this many times in a row for a reason a retry cannot fix is parked for an
    # operator (GET /admin/v1/attention) instead of being retried and re-driven forever.
    job_max_failures: int = Field(default=3, ge=1, le=100)
    # Proxies whose X-Forwarded-For is believed (the client IP behind them is rate limited).
    trusted_proxies: list[IpNetwork] = Field(default_factory=list,
                                             examples=["10.0.0.0/8,172.16.0.0/12"])
    log_level: LogLevel = "INFO"
    # One JSON object per line (timestamp, level, logger, message, request and other ids), or
    # plain text lines.
    log_format: Literal["text", "json"] = "text"
    # One ``passgate.access`` line per request (at INFO); off for very busy APIs or benchmarks.
    access_log: bool = True

    # -- metrics -----------------------------------------------------------------------
    # When set, GET /metrics (and a worker's metrics port) want ``Authorization: Bearer``.
    metrics_token: SecretStr | None = Field(default=None, examples=["<a random token>"])
    # ``passgate worker`` serves its own metrics on this port (unset: none).
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65_535, examples=[9100])
    # How long one API process reuses the states it read for /metrics (payments by status,
    # watchers, queues): scrapes every few seconds from several Prometheus servers cost one
    # set of queries.
    metrics_cache_seconds: float = Field(default=5.0, ge=0, le=60)

    # -- chain ---------------------------------------------------------------------------
    # A network is enabled by giving it RPC URLs: PASSGATE_CHAIN_RPC_URLS='{"base": "https://a,
    # https://b"}' (several URLs = failover). The other maps override the per-network defaults
    # of ``chain.networks`` (confirmations, poll interval, eth_getLogs range).
    chain_rpc_urls: dict[NetworkName, RpcUrls] = Field(
        default_factory=dict, examples=["'{\"base\": \"https://mainnet.base.org\"}'"]
    )
    chain_local_chain_id: int = Field(BASE_SEPOLIA_CHAIN_ID, ge=1, examples=[31337])
    chain_local_usdc_address: str = BASE_SEPOLIA_USDC
    chain_confirmations: dict[NetworkName, Annotated[int, Field(ge=1, le=10_000)]] = Field(
        default_factory=dict, examples=["'{\"base\": 5}'"]
    )
    chain_poll_interval_seconds: dict[NetworkName, Annotated[float, Field(gt=0, le=3600)]] = (
        Field(default_factory=dict, examples=["'{\"base\": 2.0}'"])
    )
    chain_max_log_range: dict[NetworkName, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, examples=["'{\"base\": 2000}'"]
    )
    # First block a watcher scans when it has no cursor yet. Unset: the chain head at the first
    # run for base / base-sepolia (no history scan), block 0 for local (a fresh dev chain).
    chain_start_blocks: dict[NetworkName, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, examples=["'{\"base\": 28000000}'"]
    )
    # Where USDC arrives: x402 payments (``payTo``) and deposits that become credits. Both are
    # watched; keeping them apart means a pushed payment is never mistaken for a deposit.
    chain_pay_to_address: str | None = Field(
        None, examples=["0x209693Bc6afc0C5328bA36FaF03C514EF312287C"]
    )
    chain_deposit_address: str | None = Field(
        None, examples=["0x8ba1f109551bD432803012645Ac136ddd64DBA72"]
    )
    # The settlement signer's key: it submits transferWithAuthorization and pays the gas.
    chain_signer_private_key: SignerKey | None = Field(
        None, examples=["0x<64 hex digits of the signer account's private key>"]
    )
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
    # /v1/health reports 503 once a periodic job (a sweeper, expiry) has not succeeded for this
    # long, or for three of its intervals if that is longer.
    health_stale_after_seconds: float = Field(default=60.0, gt=0)
    # A broadcast settlement not mined after this long is replaced (same nonce, higher fees).
    settlement_stuck_after_seconds: float = Field(default=30.0, gt=0)
    settlement_fee_bump_percent: int = Field(default=20, ge=11, le=500)
    settlement_poll_seconds: float = Field(default=1.0, gt=0)

    @field_validator("*", mode="before")
    @classmethod
    def _from_env_text(cls, value: Any, info: ValidationInfo) -> Any:
        """Environment text for lists and maps (JSON, or comma-separated for plain lists);
        an empty value unsets an optional setting."""
        if not isinstance(value, str) or info.field_name is None:
            return value
        shape, optional = shape_of(cls.model_fields[info.field_name].annotation)
        if optional and not value.strip():
            return None
        return value if shape == "plain" else decode_env_text(shape, value)

    @field_validator("chain_pay_to_address", "chain_deposit_address", "chain_local_usdc_address")
    @classmethod
    def _checksummed(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_address(value.strip()):
            raise ValueError("is not an Ethereum address (0x and 40 hex digits)")
        return str(to_checksum_address(value.strip()))

    @field_validator("key_pepper", "admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # A guessable admin token opens the admin API; an empty pepper keys nothing.
        least = 16 if info.field_name == "admin_token" else 1
        if value is not None and len(value.get_secret_value().strip()) < least:
            raise ValueError(f"must be at least {least} characters" if least > 1 else
                             "must not be empty")
        return value

    @field_validator("passes")
    @classmethod
    def _distinct_periods(cls, value: list[PassSettings]) -> list[PassSettings]:
        periods = [item.period for item in value]
        repeated = sorted({period for period in periods if periods.count(period) > 1})
        if repeated:
            raise ValueError(f"period {repeated[0]!r} is listed twice")
        return value

    @field_validator("pass_scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        unknown = [scope for scope in value if scope not in KNOWN_SCOPES]
        if unknown:
            raise ValueError(
                f"unknown scope {unknown[0][:40]!r} (known: {', '.join(sorted(KNOWN_SCOPES))})"
            )
        return value

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
    def _consistent(self) -> Settings:
        """Settings that are each fine but wrong together; every conflict is reported."""
        conflicts = provider_conflicts(self) + chain_conflicts(self)
        if conflicts:
            raise Conflicts(conflicts)
        return self

    @property
    def signer_address(self) -> str | None:
        """The settlement signer's address."""
        key = self.chain_signer_private_key
        return None if key is None else _address_of(key.get_secret_value())

    @property
    def takes_x402_payments(self) -> bool:
        """Paid routes answer 402: a network to be paid on and an address to be paid to."""
        return bool(self.chain_rpc_urls) and bool(self.chain_pay_to_address)

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


@lru_cache(maxsize=4)
def _address_of(private_key: str) -> str:
    # Deriving an address costs a couple of milliseconds; /v1/health shows it on every probe.
    return str(Account.from_key(private_key).address)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (``overrides`` win); ``SettingsError`` lists every problem.

    Use this rather than ``Settings()`` wherever a person reads the outcome: a bad setting
    becomes one line naming the variable, never a traceback.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(problems_from(exc, Settings.model_fields)) from None
    except (SourceError, OSError, UnicodeDecodeError) as exc:
        # The .env file (or the environment) could not be read at all.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SettingsError([Problem("", f"cannot be read: {reason}", label=".env")]) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (``SettingsError`` if any is bad); tests build their own."""
    return load_settings()
