"""One gateway upstream as configured (environment, providers file or admin API)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

PROVIDER_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")


# A dotted path into the answer's JSON: object keys (and list indexes), e.g. usage.total_tokens.
USAGE_FIELD = r"^[A-Za-z0-9_-]{1,100}(\.[A-Za-z0-9_-]{1,100}){0,9}$"


class UsagePricing(BaseModel):
    """A price by usage: ``micros_per_unit`` for each unit of the number the upstream reports at
    ``field`` of its JSON answer, at most ``max_micros`` a call (what an x402 ``upto`` client
    authorizes and a call with credits reserves). Micros are USDC base units."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel,
                              populate_by_name=True)

    field: str = Field(pattern=USAGE_FIELD)
    micros_per_unit: int = Field(ge=1, le=10**12)
    max_micros: int = Field(ge=1, le=10**12)


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
    # Priced by usage (``usagePricing`` in the admin API and in provider files) instead of per
    # call: see UsagePricing.
    usage_pricing: UsagePricing | None = Field(
        default=None, validation_alias=AliasChoices("usage_pricing", "usagePricing"))

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


def load_providers_file(path: Path) -> list[ProviderSettings]:
    """Providers from a JSON or TOML file (by extension): a list, or ``{"providers": [...]}``.

    Raises ``ValueError`` with a one-line message that quotes no value from the file (its
    headers hold upstream credentials).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ValueError(f"cannot read {path}: {reason}") from None
    is_toml = path.suffix.lower() == ".toml"
    try:
        raw: Any = tomllib.loads(text) if is_toml else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if is_toml else "JSON"
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ValueError(f"{path} is not valid {kind}{where}") from None
    if isinstance(raw, dict):
        raw = raw.get("providers", [])
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of providers")
    providers = []
    for position, item in enumerate(raw, start=1):
        try:
            providers.append(ProviderSettings.model_validate(item))
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "entry"
            raise ValueError(f"{path}: provider {position}, {where}: {first['msg']}") from None
    return providers


def check_outlives_call(
    provider: ProviderSettings, connect_timeout_seconds: float, reservation_ttl_seconds: float
) -> None:
    """A gateway reservation must outlive the longest wait for its upstream's answer.

    The sweeper gives back reservations older than ``gateway_reservation_ttl_seconds``; one
    still waiting for its upstream would be refunded, and the answer that then arrives could
    no longer be charged: a free call beyond any spending limit.
    """
    timeout = provider.timeout_seconds
    if reservation_ttl_seconds <= timeout + connect_timeout_seconds:
        raise ValueError(
            f"gateway provider '{provider.name}': its timeout ({timeout:g}s, plus "
            f"{connect_timeout_seconds:g}s to connect) must end before a reservation expires "
            f"(PASSGATE_GATEWAY_RESERVATION_TTL_SECONDS={reservation_ttl_seconds:g})"
        )
