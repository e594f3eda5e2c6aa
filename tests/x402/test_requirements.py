"""402 requirements as SDK clients read them: the v2 header and the v1 JSON body."""

from __future__ import annotations

import base64
import json

import pytest
from eth_account import Account
from x402.http import decode_payment_required_header, x402HTTPClient
from x402.schemas import PaymentRequired, PaymentRequiredV1

from chain.networks import BASE_SEPOLIA_USDC, BASE_USDC, Network, build_networks
from chain.x402 import PaymentChallenge, build_payment_challenge, v1_network_name
from chain.x402.payer import build_payer_client

PAY_TO = "0x1111111111111111111111111111111111111111"
URL = "http://127.0.0.1/v1/passes/1d"


def networks(local_chain_id: int = 84532) -> dict[str, Network]:
    # Nothing is contacted: the URLs only have to be well formed.
    return build_networks(
        {"base": "http://127.0.0.1:1", "local": "http://127.0.0.1:2"},
        local_chain_id=local_chain_id,
    )


def sdk_http_client() -> x402HTTPClient:
    return x402HTTPClient(build_payer_client(Account.create()))


def base_and_local() -> PaymentChallenge:
    enabled = networks()
    return build_payment_challenge(
        price_micros=10_000_000,
        networks=[enabled["base"], enabled["local"]],
        pay_to=PAY_TO,
        max_timeout_seconds=120,
        resource_url=URL,
        description="1-day key pass",
    )


def test_the_v2_header_is_base64_json_with_the_spec_fields() -> None:
    raw = json.loads(base64.b64decode(base_and_local().header_value()))
    assert raw["x402Version"] == 2
    assert raw["error"] == "Payment required"
    assert raw["resource"] == {
        "url": URL,
        "description": "1-day key pass",
        "mimeType": "application/json",
    }
    assert raw["accepts"][0] == {
        "scheme": "exact",
        "network": "eip155:8453",
        "asset": BASE_USDC,
        "amount": "10000000",
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 120,
        "extra": {"name": "USD Coin", "version": "2"},
    }
    assert raw["accepts"][1]["network"] == "eip155:84532"
    assert raw["accepts"][1]["extra"] == {"name": "USDC", "version": "2"}


def test_the_sdk_client_parses_the_v2_header() -> None:
    challenge = base_and_local()
    headers = {"payment-required": challenge.header_value()}
    parsed = sdk_http_client().get_payment_required_response(lambda name: headers.get(name.lower()))
    assert isinstance(parsed, PaymentRequired)
    assert [accept.network for accept in parsed.accepts] == ["eip155:8453", "eip155:84532"]
    assert parsed.accepts[1].amount == "10000000"
    assert parsed.accepts[1].pay_to == PAY_TO
    assert parsed.resource is not None
    assert parsed.resource.url == URL
    assert decode_payment_required_header(challenge.header_value()) == parsed


def test_the_sdk_client_parses_the_v1_body_with_network_names() -> None:
    # The API merges the v1 form into its error body; unknown keys must not bother v1 clients.
    body = {**base_and_local().v1_body(), "code": "PAYMENT_REQUIRED", "requestId": "req_1"}
    parsed = sdk_http_client().get_payment_required_response(
        lambda _name: None, json.loads(json.dumps(body))
    )
    assert isinstance(parsed, PaymentRequiredV1)
    first, second = parsed.accepts
    assert (first.network, second.network) == ("base", "base-sepolia")
    assert first.max_amount_required == "10000000"
    assert first.resource == URL
    assert first.asset == BASE_USDC
    assert second.asset == BASE_SEPOLIA_USDC
    assert second.extra == {"name": "USDC", "version": "2"}
    assert body["x402Version"] == 1


def test_local_is_named_base_sepolia_for_v1_clients_only_on_chain_id_84532() -> None:
    assert v1_network_name(networks()["local"]) == "base-sepolia"
    assert v1_network_name(networks()["base"]) == "base"
    assert v1_network_name(networks(local_chain_id=31337)["local"]) == "local"


def test_an_offer_is_found_by_caip2_registry_or_v1_name() -> None:
    challenge = base_and_local()
    for ref in ("eip155:84532", "local", "base-sepolia"):
        offer = challenge.offer_for(ref)
        assert offer is not None
        assert offer.network.name == "local"
    assert challenge.offer_for("eip155:1") is None


@pytest.mark.parametrize(
    ("price", "pay_to", "nets", "complaint"),
    [
        (0, PAY_TO, ["local"], "price_micros"),
        (10, "0x1234", ["local"], "pay_to"),
        (10, PAY_TO, [], "at least one network"),
    ],
)
def test_bad_terms_are_refused(price: int, pay_to: str, nets: list[str], complaint: str) -> None:
    enabled = networks()
    with pytest.raises(ValueError, match=complaint):
        build_payment_challenge(
            price_micros=price,
            networks=[enabled[name] for name in nets],
            pay_to=pay_to,
            max_timeout_seconds=60,
            resource_url=URL,
            description="x",
        )
