"""What a gateway call costs: its provider, route and model, and so its price.

A provider's price is by the JSON body's ``model`` when it prices by model, else by the longest
route prefix, else its default (``Provider.price_for``). The same quote is what a call with
credits reserves and what an x402 challenge asks for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import msgspec

from app.errors import NotFound
from app.gateway.incoming import IncomingCall
from app.gateway.providers import Provider, ProviderRegistry, decoded_route
from app.http.json_depth import nesting_exceeds


@dataclass(frozen=True, slots=True)
class Quote:
    """Which provider serves a call, at which route, and its price."""

    provider: Provider
    route: str
    model: str | None
    price_micros: int


async def quote_call(registry: ProviderRegistry, call: IncomingCall) -> Quote:
    """The provider and price of a call; NOT_FOUND for a provider nobody configured."""
    provider = await registry.get(call.provider)
    if provider is None:
        raise NotFound(f"Unknown gateway provider '{call.provider}'.")
    route = decoded_route(call.path)
    if not provider.prices_by_model:
        return Quote(provider, route, None, provider.price_for(route, None))
    try:
        model = requested_model(call)
    except UnreadableBody:
        # The upstream may still read a model where passgate cannot (form data, a
        # compressed body, JSON only a lenient parser takes), so such a call costs the most
        # any model could: never less than what may be served. Charged rather than refused,
        # so non-JSON endpoints of a model-priced provider keep working.
        return Quote(provider, route, None, provider.ceiling_price(route))
    return Quote(provider, route, model, provider.price_for(route, model))


class _ModelField(msgspec.Struct):
    model: str | None = None


_model_decoder = msgspec.json.Decoder(_ModelField)


class UnreadableBody(Exception):
    """A non-empty body that is not a JSON object with a string (or null) ``model``."""


def requested_model(call: IncomingCall) -> str | None:
    """The JSON body's top-level ``model`` (for per-model prices); None without a body or model.

    Read the way upstream JSON parsers read it: Python's ``json.loads`` (and others) accept a
    UTF-8 BOM and UTF-16/32, so those are decoded first. Raises :class:`UnreadableBody` when a
    body cannot be read as a JSON object at all (form data, compressed, NaN, a non-string
    model...): the upstream may still find a model in it.
    """
    body = call.body
    if not body:
        return None
    try:
        encoding = json.detect_encoding(body)
        if encoding != "utf-8":
            # As json.loads decodes bytes; a lone surrogate then fails in msgspec (UnicodeError).
            body = body.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
        if nesting_exceeds(body):
            # Too deep to decode safely; the upstream may still take it.
            raise UnreadableBody
        return _model_decoder.decode(body).model
    except (msgspec.DecodeError, UnicodeError):
        raise UnreadableBody from None
