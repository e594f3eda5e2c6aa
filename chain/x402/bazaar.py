"""The x402 v2 ``bazaar`` discovery extension a 402 declares: method, input, output.

Built with the SDK's own helpers (``declare_discovery_extension``, then the resource-server
extension's ``enrich_declaration`` for the HTTP method), so a facilitator running the SDK's
``extract_discovery_info`` on a client's echoed payload catalogs the resource as declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from x402.extensions.bazaar import (
    BAZAAR,
    OutputConfig,
    bazaar_resource_server_extension,
    declare_discovery_extension,
)

__all__ = ["BAZAAR_KEY", "BODY_METHODS", "QUERY_METHODS", "BodyType", "bazaar_extension"]

BAZAAR_KEY = BAZAAR.key
QUERY_METHODS = frozenset({"GET", "HEAD", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
BodyType = Literal["json", "form-data", "text"]


@dataclass(frozen=True, slots=True)
class _Request:
    """The transport context the SDK's enrichment reads: the request's method."""

    method: str


def bazaar_extension(
    method: str,
    *,
    body_type: BodyType = "json",
    body_example: dict[str, Any] | None = None,
    output_example: Any = None,
    output_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"bazaar": {"info": ..., "schema": ...}}`` for a call with ``method``.

    GET/HEAD/DELETE declare query input, POST/PUT/PATCH a body of ``body_type``; any other
    method (OPTIONS) has no discovery form and gets ``{}``. ``output_example`` (with an
    optional JSON schema for it) describes a successful answer.
    """
    verb = method.upper()
    output = OutputConfig(example=output_example, schema=output_schema)
    if verb in QUERY_METHODS:
        declared = declare_discovery_extension(output=output)
    elif verb in BODY_METHODS:
        declared = declare_discovery_extension(
            input=body_example, body_type=body_type, output=output
        )
    else:
        return {}
    enriched = bazaar_resource_server_extension.enrich_declaration(
        declared[BAZAAR_KEY], _Request(verb)
    )
    return {BAZAAR_KEY: enriched}
