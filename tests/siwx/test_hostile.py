"""Sign-in-with-x proofs that must not hold: replayed, expired, for another origin or chain,
signed by someone else, nonces passgate never issued, malformed headers. Each is a clear 4xx
(UNAUTHORIZED with the SDK's reason), never a 500, and the nonce race across connections lets
exactly one request through."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from eth_account import Account
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.siwx.challenge import challenge_info
from tests.conftest import delete_prefixed_keys
from tests.fixtures.live import serve
from tests.siwx.conftest import Served
from tests.siwx.helpers import PRICE_1D, buy_pass, challenge, complete, forged, funded, sign_in

INFO = "/v1/api-keys/info"


@pytest.fixture
def wallet_with_pass(served: Served, devchain, chain_client) -> Any:
    async def bought() -> Any:
        wallet = await funded(devchain, chain_client, PRICE_1D)
        await buy_pass(served.url, wallet)
        return wallet

    return bought


async def _get(served: Served, header: str, path: str = INFO) -> httpx.Response:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        return await http.get(path, headers={"SIGN-IN-WITH-X": header})


def _refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == "UNAUTHORIZED"
    assert body["details"]["reason"] == reason, body


async def test_a_nonce_is_single_use(served: Served, wallet_with_pass) -> None:
    wallet = await wallet_with_pass()
    header = await sign_in(served.url, wallet, INFO)

    first = await _get(served, header)
    second = await _get(served, header)

    assert first.status_code == 200, first.text
    _refused(second, "invalid_siwx_nonce")


async def test_the_same_proof_sent_eight_times_at_once_signs_in_once(
    served: Served, wallet_with_pass
) -> None:
    wallet = await wallet_with_pass()
    header = await sign_in(served.url, wallet, INFO)

    responses = await asyncio.gather(*(_get(served, header) for _ in range(8)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 7, [r.text for r in responses]


async def test_an_expired_challenge_is_refused(served: Served, wallet_with_pass) -> None:
    wallet = await wallet_with_pass()
    declared = await challenge(served.url, INFO)
    # A challenge this server minted (valid MAC) ten minutes ago: past its expiry.
    stale = challenge_info(served.settings, served.url + INFO,
                           now=datetime.now(UTC) - timedelta(minutes=10))
    info = {**complete(declared), **stale}

    response = await _get(served, await forged(info, wallet))

    _refused(response, "invalid_siwx_issued_at_too_old")


async def test_a_stretched_expiry_breaks_the_nonce(served: Served, wallet_with_pass) -> None:
    wallet = await wallet_with_pass()
    info = complete(await challenge(served.url, INFO))
    later = datetime.fromisoformat(info["expirationTime"].replace("Z", "+00:00"))
    info["expirationTime"] = (later + timedelta(hours=1)).isoformat().replace("+00:00", "Z")

    response = await _get(served, await forged(info, wallet))

    _refused(response, "invalid_siwx_nonce")


async def test_a_nonce_passgate_never_issued_is_refused(served: Served, wallet_with_pass) -> None:
    wallet = await wallet_with_pass()
    info = {**complete(await challenge(served.url, INFO)), "nonce": "ab" * 16}

    _refused(await _get(served, await forged(info, wallet)), "invalid_siwx_nonce")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("domain", "evil.example", "invalid_siwx_domain_mismatch"),
        ("uri", "https://evil.example/v1/api-keys/info", "invalid_siwx_uri_mismatch"),
        ("chainId", "eip155:1", "invalid_siwx_unsupported_chain"),
        ("chainId", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", "invalid_siwx_unsupported_chain"),
    ],
)
async def test_a_message_for_another_origin_or_chain_is_refused(
    served: Served, wallet_with_pass, field: str, value: str, reason: str
) -> None:
    wallet = await wallet_with_pass()
    info = {**complete(await challenge(served.url, INFO)), field: value}
    if field == "chainId" and value.startswith("solana:"):
        info["type"] = "ed25519"
        # A Solana proof cannot be made by an EVM wallet: any signature shape will do.
        header = base64.b64encode(json.dumps(
            {**info, "address": "BSmWDgE9ex6dZYbiTsJGcwMEgFp8q4aWh92hdErQPeVW",
             "signature": "3" * 88}).encode()).decode()
    else:
        header = await forged(info, wallet)

    _refused(await _get(served, header), reason)


async def test_another_addresses_signature_does_not_sign_in_the_pass_wallet(
    served: Served, wallet_with_pass
) -> None:
    owner = await wallet_with_pass()
    thief = Account.create()
    info = complete(await challenge(served.url, INFO))

    header = await forged(info, thief, address=owner.address)
    response = await _get(served, header)
    again = await _get(served, header)

    _refused(response, "invalid_siwx_signature")
    # The challenge was spent by the first attempt: resending costs no second verification.
    _refused(again, "invalid_siwx_nonce")


@pytest.mark.parametrize(
    "header",
    [
        "%%%not-base64%%%",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b"[1, 2, 3]").decode(),
        base64.b64encode(b'{"domain": "x"}').decode(),
        base64.b64encode(b"\xff\xfe\xfd").decode(),
        base64.b64encode(json.dumps({
            "domain": "127.0.0.1", "address": "0xnot-an-address", "uri": "http://[::1",
            "version": "1", "chainId": "eip155:x", "type": "eip191", "nonce": "n",
            "issuedAt": "yesterday", "signature": "0x00"}).encode()).decode(),
        "A" * 9000,
        "",
    ],
)
async def test_a_malformed_header_is_a_clear_4xx(served: Served, header: str) -> None:
    for path in (INFO, "/v1/gateway/echo/echo/x"):
        response = await _get(served, header, path)
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["code"] in ("UNAUTHORIZED", "PAYMENT_REQUIRED"), response.text


async def test_a_refused_proof_on_the_gateway_is_unauthorized_not_charged(
    served: Served, wallet_with_pass
) -> None:
    wallet = await wallet_with_pass()
    path = "/v1/gateway/echo/echo/x"
    header = await sign_in(served.url, wallet, path)
    await _get(served, header, path)  # spends the nonce (a 402: no credits)

    _refused(await _get(served, header, path), "invalid_siwx_nonce")


async def test_one_proof_sent_to_two_api_processes_at_once_signs_in_once(
    served: Served, wallet_with_pass
) -> None:
    """Two API apps (each its own engine and sign-in service) behind the same public URL: the
    nonce's row decides, not process memory."""
    wallet = await wallet_with_pass()
    header = await sign_in(served.url, wallet, INFO)
    async with serve(create_app(served.settings)) as second, httpx.AsyncClient(
        timeout=10
    ) as http:
        responses = await asyncio.gather(*(
            http.get(base + INFO, headers={"SIGN-IN-WITH-X": header})
            for base in [served.url, second] * 4
        ))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 7, [r.text for r in responses]


async def test_sign_in_attempts_are_limited_per_client_address(settings_factory, redis_url):
    # Given a server that takes two sign-in proofs a minute from one address
    prefix = f"siwx:{uuid.uuid4().hex[:8]}"
    settings = settings_factory(siwx_per_minute=2, redis_prefix=prefix)
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            key = (await client.post("/v1/keys", json={"email": "siwx@example.com"})).json()
            # When three proofs come from the same address (forged: each costs a verification)
            tried = [await client.get(INFO, headers={"SIGN-IN-WITH-X": "bm90IGEgcHJvb2Y="})
                     for _ in range(3)]
            # And the same address then uses its API key
            with_key = await client.get(INFO, headers={"X-API-Key": key["api_key"]})
    finally:
        delete_prefixed_keys(redis_url, prefix)

    # Then the first two were checked (and refused), the third not even looked at
    assert [r.status_code for r in tried] == [401, 401, 429], [r.text for r in tried]
    assert tried[2].json()["code"] == "RATE_LIMITED"
    assert int(tried[2].headers["Retry-After"]) > 0
    # And keys are not held to the sign-in limit
    assert with_key.status_code == 200, with_key.text
