"""Shared wire shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from app.db.types import UnrepresentableTime, to_utc

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
Micros = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
GraceSeconds = Annotated[int, msgspec.Meta(ge=0, le=86_400)]


class TimedBody(msgspec.Struct):
    """Base of request bodies with time fields: aware times arrive converted to UTC.

    A valid RFC 3339 time such as ``9999-12-31T23:59:59-14:00`` has no UTC ``datetime``, and
    would overflow wherever it is first compared, stored or printed. Converting while the body
    is decoded turns it into a 400 that names the field, for every body built on this class.
    Naive times pass unchanged: each route decides whether it accepts them.
    """

    def __post_init__(self) -> None:
        for name, wire_name in zip(
            self.__struct_fields__, self.__struct_encode_fields__, strict=True
        ):
            value = getattr(self, name)
            if isinstance(value, datetime) and value.tzinfo is not None:
                try:
                    setattr(self, name, to_utc(value))
                except UnrepresentableTime as exc:
                    # msgspec reports a ValueError from here as a validation error (a 400).
                    raise ValueError(f"{wire_name}: {exc}") from None


class RateLimitView(msgspec.Struct, rename="camel"):
    requests_per_minute: int
    requests_per_day: int | None


class Deleted(msgspec.Struct, rename="camel"):
    id: str
    status: str
