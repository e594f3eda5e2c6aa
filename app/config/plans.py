"""Rate-limit plans and the key-pass catalog, as the settings describe them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Larger than any sensible price or credit, and within what one ledger entry may carry.
MAX_MICROS = 10**15


class PlanLimits(BaseModel):
    """Requests per minute / per day for one plan; ``None`` means no daily cap."""

    per_minute: int
    per_day: int | None = None


class PassSettings(BaseModel):
    """One entry of the key-pass catalog; ``period`` is the last part of its URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: str = Field(pattern=r"^[A-Za-z0-9_-]{1,16}$")
    seconds: int = Field(ge=1, le=10 * 366 * 86_400)
    price_micros: int = Field(ge=1, le=MAX_MICROS)


DEFAULT_PASSES = [
    PassSettings(period="1d", seconds=86_400, price_micros=10_000_000),
    PassSettings(period="1w", seconds=7 * 86_400, price_micros=50_000_000),
    PassSettings(period="4w", seconds=28 * 86_400, price_micros=100_000_000),
]
