"""Platforms on the wire: request bodies, views, and the conversions from rows to views."""

from __future__ import annotations

from datetime import datetime

import msgspec

from app.db.models.keys import ApiKey
from app.db.models.platforms import Platform
from app.db.types import rfc3339
from app.http.schemas import Label, Micros, Name, TimedBody


class PlatformView(msgspec.Struct, rename="camel"):
    id: str
    name: str
    daily_spending_limit_micros: int | None
    disabled: bool
    created_at: str


class SpendingLimitBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    daily_limit_micros: Micros | None


class SpendingLimitView(msgspec.Struct, rename="camel"):
    platform_id: str
    daily_limit_micros: int | None


class MasterKeyBody(TimedBody, forbid_unknown_fields=True, rename="camel"):
    label: Label | None = None
    expires_at: datetime | None = None


class CreatedMasterKey(msgspec.Struct, rename="camel"):
    id: str
    key: str
    label: str | None
    created_at: str
    expires_at: str | None = None
    warning: str = "Save this master key now. It will not be shown again."


class CreatePlatformBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name


class CreatedPlatform(msgspec.Struct, rename="camel"):
    platform: PlatformView
    master_key: str
    master_key_id: str
    warning: str = "Save this master key now. It will not be shown again."


class UpdatePlatformBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET
    daily_spending_limit_micros: Micros | msgspec.UnsetType | None = msgspec.UNSET

    def changes(self) -> dict[str, object]:
        fields = {
            "name": self.name,
            "disabled": self.disabled,
            "daily_spending_limit_micros": self.daily_spending_limit_micros,
        }
        return {k: v for k, v in fields.items() if v is not msgspec.UNSET}


def platform_view(platform: Platform) -> PlatformView:
    return PlatformView(
        id=platform.id,
        name=platform.name,
        daily_spending_limit_micros=platform.daily_spending_limit_micros,
        disabled=platform.disabled,
        created_at=rfc3339(platform.created_at) or "",
    )


def created_platform(platform: Platform, master: ApiKey, secret: str) -> CreatedPlatform:
    return CreatedPlatform(platform=platform_view(platform), master_key=secret,
                           master_key_id=master.id)


def created_master_key(key: ApiKey, secret: str) -> CreatedMasterKey:
    return CreatedMasterKey(id=key.id, key=secret, label=key.label,
                            created_at=rfc3339(key.created_at) or "",
                            expires_at=rfc3339(key.expires_at))


def spending_limit_view(platform: Platform) -> SpendingLimitView:
    return SpendingLimitView(platform_id=platform.id,
                             daily_limit_micros=platform.daily_spending_limit_micros)
