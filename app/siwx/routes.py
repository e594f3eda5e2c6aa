"""A sign-in-with-x challenge on demand, for routes that answer no 402 (key-holder routes)."""

from __future__ import annotations

from typing import Any

from litestar import Router, get
from litestar.params import Parameter
from x402.extensions.sign_in_with_x import SIGN_IN_WITH_X

from app.errors import ValidationFailed
from app.settings import Settings
from app.siwx.challenge import siwx_extension


@get("/siwx/challenge", errors=(400,))
async def siwx_challenge(
    settings: Settings,
    resource: str = Parameter(default="/", max_length=2048),
) -> dict[str, Any]:
    """The ``sign-in-with-x`` extension a 402 would declare (``info`` with a fresh nonce valid
    five minutes, ``supportedChains``, ``schema``) for ``resource``, a path on this server:
    sign it with the x402 SDK's SIWX helpers and send the proof as ``SIGN-IN-WITH-X`` instead
    of an API key."""
    if not resource.startswith("/") or resource.startswith("//"):
        raise ValidationFailed("resource must be a path on this server, such as /v1/api-keys/info.")
    extension = siwx_extension(settings, resource)
    if not extension:
        raise ValidationFailed("This server takes no payments, so no wallet can sign in.")
    declared: dict[str, Any] = extension[SIGN_IN_WITH_X]
    return declared


router = Router(path="/v1", route_handlers=[siwx_challenge], tags=["sign-in-with-x"])
