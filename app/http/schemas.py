"""Shared wire shapes."""

from __future__ import annotations

from typing import Annotated

import msgspec

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
Micros = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
GraceSeconds = Annotated[int, msgspec.Meta(ge=0, le=86_400)]


class RateLimitView(msgspec.Struct, rename="camel"):
    requests_per_minute: int
    requests_per_day: int | None


class Deleted(msgspec.Struct, rename="camel"):
    id: str
    status: str
