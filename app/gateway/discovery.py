"""How a paid gateway call describes itself to x402 discovery (the 402's ``bazaar`` extension).

The gateway forwards whatever the caller sends, so the declaration says how this call is made
(its method; for a body method, the body's kind from ``Content-Type``) and that the answer is
the upstream's own; it never echoes the caller's query or body back.
"""

from __future__ import annotations

from typing import Any

from app.gateway.incoming import IncomingCall
from app.gateway.providers import Provider
from app.payments.identifiers import payment_identifier_extension
from app.payments.service import PaidRequest
from app.settings import Settings
from chain.x402.bazaar import BodyType, bazaar_extension


def _body_type(content_type: bytes) -> BodyType:
    media = content_type.split(b";", 1)[0].strip().lower()
    if media in (b"multipart/form-data", b"application/x-www-form-urlencoded"):
        return "form-data"
    if media.startswith(b"text/"):
        return "text"
    return "json"


def call_bazaar(call: IncomingCall) -> dict[str, Any]:
    """The ``bazaar`` extension of a gateway call's 402 (``{}`` for OPTIONS)."""
    content_type = next((value for name, value in call.headers if name.lower() == b"content-type"),
                        b"")
    return bazaar_extension(call.method, body_type=_body_type(content_type), body_example={})


def provider_paid_request(settings: Settings, provider: Provider) -> PaidRequest:
    """What the discovery listing shows for a provider: a call at its default price (the
    listing's metadata adds its per-model and per-route prices and its usage pricing).

    Its ``bazaar`` declaration is a JSON POST, the common call; the gateway forwards any
    method, and each call's own 402 declares that call's.
    """
    path = f"/v1/gateway/{provider.name}"
    return PaidRequest(
        purpose="gateway",
        terms="",
        resource=f"POST {path}",
        resource_url=settings.public_url.rstrip("/") + path,
        price_micros=provider.price_micros,
        description=f"one call to the {provider.name} API",
        # As a call's own 402 declares them (its sign-in challenge aside: one 402's own).
        extensions={**bazaar_extension("POST", body_example={}),
                    **payment_identifier_extension()},
        # Priced by usage: the listing offers ``upto`` at the maximum, as the call's 402 does.
        upto_max_micros=(provider.usage_pricing.max_micros
                         if provider.usage_pricing is not None else None),
    )
