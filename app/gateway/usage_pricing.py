"""What a usage-priced call costs: the units the upstream reports in its answer, times the price.

A provider with ``usagePricing`` (``app.config.providers.UsagePricing``) is paid for what its
upstream says the call used: the number at a dotted path of the JSON answer (for an LLM,
``usage.total_tokens``), or, for a streamed answer (Server-Sent Events), of the last event whose
JSON data carries it (the usage chunk OpenAI-style APIs send last). The amount is
``ceil(units * microsPerUnit)`` micros (USDC base units, 6 decimals: a fractional unit count is
rounded up to the next micro), never more than ``maxMicros``.

A 2xx answer without a readable, non-negative number at the path costs the **maximum** the
client authorized (and is logged): otherwise a caller could have any call for free by asking for
an answer that omits its usage (a stream without its usage chunk, another encoding). The
operator sees the warning; the client never pays more than it authorized.
"""

from __future__ import annotations

import json
import logging
import math
from decimal import Decimal, InvalidOperation

from app.config.providers import UsagePricing

log = logging.getLogger("passgate.gateway")

# The most of an answer read for its usage (a usage-priced answer is read whole before it is
# settled and sent).
MAX_USAGE_BODY = 8 * 1024 * 1024


def units_at(document: object, path: str) -> Decimal | None:
    """The non-negative number at ``path`` (dots between object keys or list indexes)."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    try:
        units = Decimal(str(node))
    except InvalidOperation:
        return None
    return units if units.is_finite() and units >= 0 else None


def _json(text: bytes | str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def units_in_answer(body: bytes, content_type: str, path: str) -> Decimal | None:
    """The usage an answer reports: its JSON at ``path``, or for an event stream the last
    event whose data has it. None when it reports none."""
    if "text/event-stream" not in content_type.lower():
        return units_at(_json(body), path)
    found: Decimal | None = None
    for line in body.decode("utf-8", "replace").splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if not data or data == "[DONE]":
            continue
        units = units_at(_json(data), path)
        if units is not None:
            found = units
    return found


def amount_for(pricing: UsagePricing, units: Decimal | None) -> int:
    """Micros to charge for ``units`` (the maximum when unknown), never more than the maximum."""
    if units is None:
        return pricing.max_micros
    return min(pricing.max_micros, math.ceil(units * pricing.micros_per_unit))


def charge_for_answer(pricing: UsagePricing, provider: str, body: bytes,
                      content_type: str) -> tuple[int, Decimal | None]:
    """What a 2xx answer costs and the units it reported (None: not reported, charged the
    maximum)."""
    units = units_in_answer(body, content_type, pricing.field)
    if units is None:
        log.warning("gateway provider %s answered without usage at %r: charged the maximum",
                    provider, pricing.field)
    return amount_for(pricing, units), units
