from __future__ import annotations

from datetime import datetime

import msgspec

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
