from __future__ import annotations

from typing import Any

from app.db.models.platforms import Platform
from app.db.types import rfc3339
from app.platforms.schemas import PlatformView


def platform_view(platform: Platform) -> PlatformView:
    return PlatformView(
        id=platform.id,
        name=platform.name,
        daily_spending_limit_micros=platform.daily_spending_limit_micros,
        disabled=platform.disabled,
        created_at=rfc3339(platform.created_at) or "",
    )


def platform_snapshot(platform: Platform) -> dict[str, Any]:
    return {
        "name": platform.name,
        "disabled": platform.disabled,
        "dailySpendingLimitMicros": platform.daily_spending_limit_micros,
    }
