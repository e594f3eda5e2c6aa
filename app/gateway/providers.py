"""Gateway providers as the proxy uses them, and where they come from.

Two sources, merged by name:

- **configured** (``PASSGATE_PROVIDERS`` / ``PASSGATE_PROVIDERS_FILE``): deployment config,
  reviewed with the code and holding secrets from the environment;
- **admin** (``/admin/v1/providers``, stored in the database): changed at run time.

A configured provider always wins: the admin API refuses to create one under a configured name,
and should a later deployment configure a name that already exists in the database, the stored
one is shadowed (listed with ``shadowed: true``, never used) until it is renamed or deleted.
Each process keeps the admin-managed providers for ``gateway_provider_cache_seconds``; an
admin change made through a process is seen there at once and everywhere else within that time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import unquote

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.config.providers import ProviderSettings
from app.crypto import SecretBox, SecretUnreadableError
from app.db.models.gateway import GatewayProvider
from app.db.uow import UnitOfWork
from app.gateway import repository
from app.gateway.schemas import ADMIN, CONFIG
from app.settings import Settings

log = logging.getLogger("passgate.gateway")


def header_context(provider_id: str, header: str) -> str:
    """What a sealed header value is bound to: its provider row and its (lower-case) name."""
    return f"gateway-provider:{provider_id}:{header.lower()}"


@dataclass(frozen=True, slots=True)
class Provider:
    """A resolved provider: prices, limits, and the headers injected into every upstream call."""

    name: str
    base_url: str
    price_micros: int
    description: str | None
    model_prices: Mapping[str, int]
    # Longest prefix first, so the first match is the most specific.
    route_prices: tuple[tuple[str, int], ...]
    timeout_seconds: float
    request_id_header: bytes
    source: str
    # Encoded, lower-case names. Kept out of repr so a logged provider never shows a secret.
    injected_headers: tuple[tuple[bytes, bytes], ...] = field(repr=False, default=())
    # When an admin-managed provider last changed (None: configured, as old as the process).
    updated_at: datetime | None = None

    @classmethod
    def build(cls, config: ProviderSettings, source: str, headers: Mapping[str, str]) -> Provider:
        # Prefixes in the form paths are matched in (see route_key), longest first.
        routes = sorted(
            ((route_key(prefix).rstrip("/") or "/", price)
             for prefix, price in config.route_prices.items()),
            key=lambda item: len(item[0]),
            reverse=True,
        )
        return cls(
            name=config.name,
            base_url=config.base_url,
            price_micros=config.price_micros,
            description=config.description,
            model_prices=dict(config.model_prices),
            route_prices=tuple(routes),
            timeout_seconds=config.timeout_seconds,
            request_id_header=config.request_id_header.lower().encode("latin-1"),
            source=source,
            injected_headers=tuple(
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in headers.items()
            ),
        )

    @classmethod
    def from_settings(cls, config: ProviderSettings) -> Provider:
        headers = {name: value.get_secret_value() for name, value in config.headers.items()}
        return cls.build(config, CONFIG, headers)

    @property
    def prices_by_model(self) -> bool:
        return bool(self.model_prices)

    def price_for(self, path: str, model: str | None) -> int:
        """The price of one call: by model, else by the longest route prefix, else the default.

        ``path`` is the decoded upstream path; a prefix matches whole segments only
        (``/v1/chat`` matches ``/v1/chat/completions``, not ``/v1/chatter``).
        """
        if model is not None and model in self.model_prices:
            return self.model_prices[model]
        key = route_key(path)
        for prefix, price in self.route_prices:
            if prefix == "/" or key == prefix or key.startswith(prefix + "/"):
                return price
        return self.price_micros

    def ceiling_price(self, path: str) -> int:
        """The most any model could cost on ``path``: for a body whose model cannot be read."""
        return max([self.price_for(path, None), *self.model_prices.values()])


def normalised_path(path: str) -> str:
    """``path`` with runs of ``/`` merged and ``;`` parameters cut from every segment.

    Many servers (nginx's ``merge_slashes``, Tomcat and Spring's path parameters) serve
    ``/a//b`` and ``/a;x/b`` as ``/a/b``; forwarding and pricing this one form means a
    per-route price cannot be dodged by spelling the route differently. A trailing ``/`` stays:
    for some APIs it names another resource. ``""`` (the provider's base URL) stays ``""``.
    """
    if not path:
        return path
    segments = [segment.split(";", 1)[0] for segment in path.split("/")[1:]]
    kept = [segment for segment in segments if segment]
    merged = "/" + "/".join(kept)
    return merged + "/" if kept and not segments[-1] else merged


def route_key(path: str) -> str:
    """The decoded path as route prices match it.

    Normalised again after decoding (``%2F%2F`` becomes ``//`` only then), and ``\\`` taken
    as ``/`` as some servers do: an upstream that reads the path loosely is charged for the
    route it may serve, never less.
    """
    return normalised_path(path.replace("\\", "/")) or "/"


def decoded_route(raw_path: str) -> str:
    """The upstream path as usage records see it (percent-decoded)."""
    return unquote(raw_path) or "/"


def settings_of_row(row: GatewayProvider, headers: Mapping[str, str]) -> ProviderSettings:
    """A stored provider as settings, with its opened header values."""
    return ProviderSettings(
        name=row.name,
        base_url=row.base_url,
        price_micros=row.price_micros,
        description=row.description,
        headers={name: SecretStr(value) for name, value in headers.items()},
        model_prices=dict(row.model_prices),
        route_prices=dict(row.route_prices),
        timeout_seconds=row.timeout_seconds,
        request_id_header=row.request_id_header,
    )


def open_headers(box: SecretBox, row: GatewayProvider) -> dict[str, str]:
    """A stored provider's header values, unsealed (SecretUnreadableError after a pepper
    change)."""
    return {
        name: box.open(sealed, context=header_context(row.id, name))
        for name, sealed in row.headers_sealed.items()
    }


class ProviderRegistry:
    """Configured providers, plus the admin-managed ones cached briefly per process."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[UnitOfWork], box: SecretBox
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._ttl = settings.gateway_provider_cache_seconds
        self.configured: dict[str, Provider] = {
            p.name: Provider.from_settings(p) for p in settings.providers
        }
        # When the configuration (configured providers, passes) was read: discovery's
        # ``lastUpdated`` for what only a restart can change.
        self.configured_at = datetime.now(UTC)
        self._admin: dict[str, Provider] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Forget the cached admin-managed providers (after an admin change commits)."""
        self._loaded_at = None

    async def get(self, name: str) -> Provider | None:
        """The usable provider of that name (configured first), or None."""
        provider = self.configured.get(name)
        if provider is not None:
            return provider
        return (await self._admin_providers()).get(name)

    async def all(self) -> list[Provider]:
        """Every usable provider, by name."""
        merged = dict(await self._admin_providers())
        merged.update(self.configured)
        return [merged[name] for name in sorted(merged)]

    def _fresh(self) -> bool:
        return self._loaded_at is not None and time.monotonic() - self._loaded_at < self._ttl

    async def _admin_providers(self) -> dict[str, Provider]:
        if self._fresh():
            return self._admin
        # One query per expiry however many calls are waiting for it.
        async with self._lock:
            if not self._fresh():
                started = time.monotonic()
                async with self._sessions() as session:
                    rows = await repository.enabled_providers(session)
                self._admin = self._resolve(rows)
                self._loaded_at = started
        return self._admin

    def _resolve(self, rows: list[GatewayProvider]) -> dict[str, Provider]:
        resolved: dict[str, Provider] = {}
        for row in rows:
            if row.name in self.configured:
                continue  # shadowed by configuration
            try:
                headers = open_headers(self._box, row)
                built = Provider.build(settings_of_row(row, headers), ADMIN, headers)
                resolved[row.name] = replace(built, updated_at=row.updated_at)
            except (SecretUnreadableError, ValueError):
                # A pepper change makes sealed headers unreadable; calling the upstream without
                # its credentials would only fail there, so the provider is left out.
                log.error("gateway provider %s is unusable: its headers cannot be opened", row.id)
        return resolved
