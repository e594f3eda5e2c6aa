"""Every 402 passgate answers declares the x402 ``bazaar`` discovery extension, valid for the
SDK's own bazaar types, and what an SDK client echoes is what a facilitator would catalog."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from x402.extensions.bazaar import (
    BodyDiscoveryExtension,
    QueryDiscoveryExtension,
    extract_discovery_info,
    validate_discovery_extension,
    validate_discovery_extension_spec,
)
from x402.extensions.bazaar.types import parse_discovery_extension
from x402.http import decode_payment_required_header, decode_payment_signature_header
from x402.schemas import PaymentRequired

from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.bazaar.conftest import CONFIGURED


def _required(response: Any) -> PaymentRequired:
    assert response.status_code == 402, response.text
    decoded = decode_payment_required_header(response.headers["payment-required"])
    assert isinstance(decoded, PaymentRequired)
    return decoded


def _bazaar(required: PaymentRequired) -> Any:
    """The 402's bazaar extension, parsed and checked with the SDK."""
    assert required.extensions is not None
    assert "bazaar" in required.extensions
    raw = required.extensions["bazaar"]
    assert validate_discovery_extension_spec(raw).valid
    extension = parse_discovery_extension(raw)
    result = validate_discovery_extension(extension)
    assert result.valid, result.errors
    return extension


async def test_a_pass_402_declares_a_bodiless_post_answered_with_the_key(api):
    # when
    required = _required(await api.post("/v1/passes/1w"))

    # then
    extension = _bazaar(required)
    assert isinstance(extension, BodyDiscoveryExtension)
    assert extension.info.input.method == "POST"
    assert extension.info.input.body_type == "json"
    assert extension.info.output is not None
    example = extension.info.output.example
    assert example["data"]["period"] == "1w"
    assert {"apiKey", "expiresAt", "scopes", "rateLimit"} <= set(example["data"])
    assert required.resource.url.endswith("/v1/passes/1w")


async def test_what_the_sdk_client_echoes_is_what_a_facilitator_catalogs(api, bazaar_settings):
    # given a pass's 402, signed for by the official Python SDK client
    challenge = await api.post("/v1/passes/1d")
    client = build_payer_client(Account.create(), max_amount_micros=100_000_000)
    signed = await sign_payment_headers(client, headers=dict(challenge.headers),
                                        body=challenge.json())
    assert signed.payment_signature is not None
    payload = decode_payment_signature_header(signed.payment_signature)

    # when a facilitator extracts discovery info the SDK's way
    found = extract_discovery_info(payload, payload.accepted)

    # then it catalogs the pass at its URL as a POST
    assert found is not None
    assert found.resource_url == bazaar_settings.public_url.rstrip("/") + "/v1/passes/1d"
    assert found.method == "POST"
    assert found.x402_version == 2
    assert found.description == "1d passgate API key pass"


async def test_a_gateway_get_402_declares_a_query_call_without_echoing_the_query(api):
    # when
    required = _required(await api.get(f"/v1/gateway/{CONFIGURED['name']}/v1/models?secret=1"))

    # then
    extension = _bazaar(required)
    assert isinstance(extension, QueryDiscoveryExtension)
    assert extension.info.input.method == "GET"
    assert extension.info.input.query_params is None
    assert "secret" not in required.model_dump_json()


async def test_a_gateway_post_402_declares_the_body_kind_it_was_sent_with(api):
    path = f"/v1/gateway/{CONFIGURED['name']}/v1/chat"
    cases = {
        "application/json": "json",
        "application/x-www-form-urlencoded": "form-data",
        "text/plain; charset=utf-8": "text",
    }
    for content_type, body_type in cases.items():
        # when
        response = await api.post(path, content=b'{"model": "big", "secret": "s3"}',
                                   headers={"content-type": content_type})

        # then
        required = _required(response)
        extension = _bazaar(required)
        assert isinstance(extension, BodyDiscoveryExtension)
        assert extension.info.input.method == "POST"
        assert extension.info.input.body_type == body_type
        assert extension.info.input.body == {}
        assert "s3" not in required.model_dump_json()


async def test_an_options_call_still_gets_its_402_without_a_bazaar_declaration(api):
    # when
    response = await api.options(f"/v1/gateway/{CONFIGURED['name']}/v1/chat")

    # then
    required = _required(response)
    assert "bazaar" not in (required.extensions or {})
