"""How a key pass purchase describes itself to x402 discovery (the 402's ``bazaar`` extension).

``POST /v1/passes/{period}`` takes no body; a successful purchase answers 201 with the key,
shown once. The example is that answer's shape with placeholder values.
"""

from __future__ import annotations

from typing import Any

from app.config.plans import PassSettings
from app.settings import Settings
from chain.x402.bazaar import bazaar_extension

_STRING = {"type": "string"}
_OUTPUT_SCHEMA: dict[str, Any] = {
    "properties": {
        "status": {"type": "integer"},
        "data": {
            "type": "object",
            "properties": {
                "apiKey": _STRING, "expiresAt": _STRING, "period": _STRING, "type": _STRING,
                "scopes": {"type": "array", "items": _STRING},
                "rateLimit": {"type": "object"}, "warning": _STRING,
            },
            "required": ["apiKey", "expiresAt", "period"],
        },
    },
    "required": ["data"],
}


def pass_bazaar(settings: Settings, item: PassSettings) -> dict[str, Any]:
    """The ``bazaar`` extension of a pass's 402: a bodiless POST answered with the key."""
    limits = settings.plan_limits("pass")
    example = {
        "status": 201,
        "data": {
            "apiKey": "pass_...", "expiresAt": "2030-01-01T00:00:00Z", "period": item.period,
            "type": "x402", "scopes": list(settings.pass_scopes),
            "rateLimit": {"requestsPerMinute": limits.per_minute,
                          "requestsPerDay": limits.per_day},
            "warning": "Save this API key now. It will not be shown again.",
        },
    }
    return bazaar_extension("POST", body_example={}, output_example=example,
                            output_schema=_OUTPUT_SCHEMA)
