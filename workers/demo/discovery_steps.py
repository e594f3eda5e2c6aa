"""Demo step: x402 discovery. A 402 declares the bazaar extension; the official SDK's
discovery client lists what passgate sells."""

from __future__ import annotations

from x402.extensions.bazaar import ListDiscoveryResourcesParams, with_bazaar
from x402.extensions.bazaar.types import parse_discovery_extension
from x402.http import FacilitatorConfig, decode_payment_required_header
from x402.http.facilitator_client import HTTPFacilitatorClientSync
from x402.schemas import PaymentRequired

from workers.demo.output import DemoFailed, DemoState, say, show


def step_discovery(s: DemoState) -> None:
    show("Discovery: a 402 describes its resource (bazaar); the SDK's client lists them all")
    challenge = s.http.post("/v1/passes/1d")
    required = decode_payment_required_header(challenge.headers["PAYMENT-REQUIRED"])
    if not isinstance(required, PaymentRequired):
        raise DemoFailed("the 402 has no x402 v2 requirements")
    extensions = required.extensions or {}
    if "bazaar" not in extensions or required.resource is None:
        raise DemoFailed("the 402 declares no bazaar extension")
    info = parse_discovery_extension(extensions["bazaar"]).info.model_dump(
        by_alias=True, exclude_none=True)
    say(f"402 for {required.resource.url}: bazaar says {info['input'].get('method')}, answers "
        f"{sorted(info.get('output', {}).get('example', {}).get('data', {}))}")
    # The SDK's bazaar client reads with a sync client (its annotation names the async one).
    facilitator = HTTPFacilitatorClientSync(FacilitatorConfig(
        url=str(s.http.base_url).rstrip("/") + "/v1", http_client=s.http))
    listing = with_bazaar(facilitator).extensions.bazaar.list_resources(  # type: ignore[arg-type]
        ListDiscoveryResourcesParams(limit=100))
    for item in listing.items:
        offers = ", ".join(f"{int(o['amount']) / 1e6:.2f} USDC on {o['network']}"
                           for o in item.accepts or [])
        say(f"{item.resource}: {offers}")
    if listing.pagination.total < 4:  # three passes and at least one paid provider
        raise DemoFailed(f"unexpected listing {listing}")
