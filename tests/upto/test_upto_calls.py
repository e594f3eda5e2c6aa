"""Usage-priced gateway calls paid with x402 ``upto`` by the official Python SDK client (its
upto scheme and httpx transport), settled by the in-process worker's signer through Permit2 and
the upto proxy on a real anvil chain: exactly the usage moves, never more than authorized,
nothing for a failed call."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from litestar.testing import AsyncTestClient
from x402 import x402Client
from x402.http.clients.httpx import x402AsyncTransport
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.mechanisms.evm.upto import UptoEvmClientScheme

from app.main import create_app
from app.settings import Settings
from chain.permit2 import encode_approve_permit2
from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from tests.gateway.helpers import provider_config
from workers.runner import start_worker

SIGNER = 5  # anvil account that pays the gas (the facilitator); no other test uses it
PER_TOKEN = 20
MAX = 100_000
FIXED = 7_000  # the exact offer's price per call
FUNDS = 1_000_000


@pytest.fixture
def upto_settings(settings_factory, devchain, pay_to, upstream_url) -> Settings:
    usage = {"field": "usage.total_tokens", "microsPerUnit": PER_TOKEN, "maxMicros": MAX}
    return settings_factory(
        redis_url="",  # embedded: the in-process worker settles, the API is told in-process
        providers=[provider_config(upstream_url, name="llm", price_micros=FIXED,
                                   route_prices={}, model_prices={}, usage_pricing=usage)],
        **chain_settings(devchain, pay_to, settle_wait=20.0,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )


@pytest.fixture
def worker(upto_settings) -> Iterator[None]:
    started = start_worker(upto_settings, threads=2)
    try:
        yield
    finally:
        started.stop(timeout=10_000)


@pytest.fixture
async def api(upto_settings, worker) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(upto_settings)) as client:
        yield client


async def _payer(devchain, chain_client) -> LocalAccount:
    """A fresh wallet with USDC that approved Permit2 once (the scheme's one-time step)."""
    account: LocalAccount = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", account.address, FUNDS))
    await chain_client.rpc("anvil_setBalance", [account.address, hex(10**17)])
    await chain_client.rpc("anvil_impersonateAccount", [account.address])
    await transact(chain_client, account.address, encode_approve_permit2())
    return account


class _App(httpx.AsyncBaseTransport):
    """The test client's transport into the app (the SDK transport wraps and closes it)."""

    def __init__(self, api: AsyncTestClient, sent: list[httpx.Request] | None) -> None:
        self._inner = api._transport
        self._sent = sent

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._sent is not None:
            self._sent.append(request)
        response: httpx.Response = await self._inner.handle_async_request(request)
        return response


def _sdk(api: AsyncTestClient, payer: LocalAccount,
         sent: list[httpx.Request] | None = None) -> httpx.AsyncClient:
    """The SDK's x402 httpx transport with only its upto scheme, over the test app."""
    client = x402Client()
    client.register("eip155:*", UptoEvmClientScheme(EthAccountSigner(payer)))
    client.set_spend_controls({"allowed_assets": True, "max_amount_per_payment": "$1"})
    return httpx.AsyncClient(transport=x402AsyncTransport(client, transport=_App(api, sent)),
                             base_url=str(api.base_url), timeout=60)


async def _payment_of(api: AsyncTestClient, admin_headers: dict[str, str],
                      payer: LocalAccount) -> dict[str, Any]:
    """The payer's one payment as the operator sees it (the database's record)."""
    listed = await api.get("/admin/v1/payments", params={"payer": payer.address},
                           headers=admin_headers)
    assert listed.status_code == 200, listed.text
    (payment,) = listed.json()["data"]
    found: dict[str, Any] = payment
    return found


def _settlement(response: httpx.Response) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(response.headers["PAYMENT-RESPONSE"]))
    return decoded


async def test_the_402_offers_upto_at_the_maximum_and_exact_at_the_fixed_price(
    api, devchain
) -> None:
    response = await api.get("/v1/gateway/llm/usage?tokens=5")

    assert response.status_code == 402
    required = json.loads(base64.b64decode(response.headers["PAYMENT-REQUIRED"]))
    offers = {offer["scheme"]: offer for offer in required["accepts"]}
    assert offers["upto"]["amount"] == str(MAX)
    assert offers["upto"]["extra"]["assetTransferMethod"] == "permit2"
    assert offers["upto"]["extra"]["facilitatorAddress"] == devchain.accounts[SIGNER].address
    assert offers["exact"]["amount"] == str(FIXED)


@pytest.mark.parametrize("answer", ["tokens=1234", "tokens=1234&stream=1"])
async def test_a_call_is_charged_exactly_its_usage(
    api, admin_headers, devchain, chain_client, pay_to, answer
) -> None:
    payer = await _payer(devchain, chain_client)
    async with _sdk(api, payer) as sdk:
        response = await sdk.get(f"/v1/gateway/llm/usage?{answer}")

    assert response.status_code == 200, response.text
    charged = 1234 * PER_TOKEN
    settlement = _settlement(response)
    assert settlement["success"] is True
    assert settlement["amount"] == str(charged)
    assert settlement["transaction"].startswith("0x")
    assert response.headers["x-gateway-cost-micros"] == str(charged)
    assert await chain_client.balance_of(pay_to) == charged
    assert await chain_client.balance_of(payer.address) == FUNDS - charged
    payment = await _payment_of(api, admin_headers, payer)
    assert (payment["status"], payment["amountMicros"], payment["authorizedMicros"]) == (
        "settled", charged, MAX)
    assert payment["transaction"] == settlement["transaction"]


async def test_usage_beyond_the_maximum_is_charged_the_maximum(
    api, devchain, chain_client, pay_to
) -> None:
    payer = await _payer(devchain, chain_client)
    async with _sdk(api, payer) as sdk:
        response = await sdk.get("/v1/gateway/llm/usage?tokens=10000")

    assert response.status_code == 200, response.text
    assert _settlement(response)["amount"] == str(MAX)
    assert await chain_client.balance_of(pay_to) == MAX
    assert await chain_client.balance_of(payer.address) == FUNDS - MAX


async def test_a_failed_upstream_call_pays_nothing(
    api, admin_headers, devchain, chain_client, pay_to
) -> None:
    payer = await _payer(devchain, chain_client)
    async with _sdk(api, payer) as sdk:
        response = await sdk.get("/v1/gateway/llm/status/500")

    assert response.status_code == 502
    assert response.json()["code"] == "UPSTREAM_ERROR"
    assert await chain_client.balance_of(pay_to) == 0
    assert await chain_client.balance_of(payer.address) == FUNDS
    payment = await _payment_of(api, admin_headers, payer)
    assert (payment["status"], payment["transaction"]) == ("failed", None)


async def test_an_answer_without_usage_is_charged_the_maximum_authorized(
    api, devchain, chain_client, pay_to
) -> None:
    # An answer that omits its usage (a stream without its usage chunk, say) cannot be free.
    payer = await _payer(devchain, chain_client)
    async with _sdk(api, payer) as sdk:
        response = await sdk.get("/v1/gateway/llm/usage")

    assert response.status_code == 200, response.text
    settlement = _settlement(response)
    assert (settlement["success"], settlement["amount"]) == (True, str(MAX))
    assert response.headers["x-gateway-cost-micros"] == str(MAX)
    assert await chain_client.balance_of(pay_to) == MAX


async def test_a_caller_asking_for_gzip_is_still_charged_its_usage(
    api, devchain, chain_client, pay_to
) -> None:
    # given a caller that accepts gzip, from an upstream that compresses when asked
    payer = await _payer(devchain, chain_client)
    async with _sdk(api, payer) as sdk:
        response = await sdk.get("/v1/gateway/llm/usage?tokens=42",
                                 headers={"Accept-Encoding": "gzip"})

    # then passgate asked the upstream for an uncompressed answer and charged what it reports
    assert response.status_code == 200, response.text
    assert _settlement(response)["amount"] == str(42 * PER_TOKEN)
    assert await chain_client.balance_of(pay_to) == 42 * PER_TOKEN


async def test_the_same_authorization_pays_for_one_call_only(
    api, devchain, chain_client, pay_to
) -> None:
    payer = await _payer(devchain, chain_client)
    sent: list[httpx.Request] = []
    async with _sdk(api, payer, sent) as sdk:
        first = await sdk.get("/v1/gateway/llm/usage?tokens=100")
    assert first.status_code == 200, first.text
    signature = sent[-1].headers["PAYMENT-SIGNATURE"]

    again = await api.get("/v1/gateway/llm/usage?tokens=100",
                          headers={"PAYMENT-SIGNATURE": signature})
    other = await api.get("/v1/gateway/llm/usage?tokens=99",
                          headers={"PAYMENT-SIGNATURE": signature})

    assert again.json()["code"] == "PAYMENT_ALREADY_USED"
    assert other.json()["code"] == "PAYMENT_ALREADY_USED"
    assert await chain_client.balance_of(pay_to) == 100 * PER_TOKEN


async def test_an_answer_too_large_to_read_is_uncharged_and_its_authorization_pays_no_retry(
    api, devchain, chain_client, pay_to
) -> None:
    # given a 2xx too large to read for its usage: an uncharged 502
    payer = await _payer(devchain, chain_client)
    sent: list[httpx.Request] = []
    path = f"/v1/gateway/llm/large?bytes={9 * 1024 * 1024}"
    async with _sdk(api, payer, sent) as sdk:
        first = await sdk.get(path)
    assert first.status_code == 502, first.text
    signature = sent[-1].headers["PAYMENT-SIGNATURE"]

    # when the same authorization asks for it again
    again = await api.get(path, headers={"PAYMENT-SIGNATURE": signature})

    # then it pays for no second upstream call: the upstream did the work once
    assert again.status_code == 402, again.text
    assert again.json()["code"] == "PAYMENT_INVALID"
    assert await chain_client.balance_of(pay_to) == 0


async def test_a_payer_that_never_approved_permit2_is_refused(
    api, devchain, chain_client, pay_to
) -> None:
    payer: LocalAccount = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", payer.address, FUNDS))
    async with _sdk(api, payer) as sdk:
        response = await sdk.get("/v1/gateway/llm/usage?tokens=1")

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert response.json()["details"]["reason"] == "permit2_allowance_required"
    assert await chain_client.balance_of(pay_to) == 0


@pytest.mark.parametrize("payload", [
    {"x402Version": 2, "accepted": {"scheme": "upto"}, "payload": {}},
    {"x402Version": 2, "accepted": {"scheme": "upto", "network": "eip155:84532", "asset": "0x0",
                                    "amount": "1", "payTo": "0x0", "maxTimeoutSeconds": 5},
     "payload": {"permit2Authorization": {"nonce": "x"}, "signature": "0x"}},
])
async def test_a_malformed_upto_payment_is_a_clear_402(api, payload) -> None:
    header = base64.b64encode(json.dumps(payload).encode()).decode()

    response = await api.get("/v1/gateway/llm/usage?tokens=1",
                             headers={"PAYMENT-SIGNATURE": header})

    assert response.status_code == 402
    assert response.json()["code"] == "PAYMENT_INVALID"
    assert "PAYMENT-REQUIRED" in response.headers


async def test_concurrent_copies_of_one_authorization_make_one_call_and_one_charge(
    api, upto_settings, devchain, chain_client, pay_to
) -> None:
    payer = await _payer(devchain, chain_client)
    challenge = await api.get("/v1/gateway/llm/usage?tokens=77")
    client = x402Client()
    client.register("eip155:*", UptoEvmClientScheme(EthAccountSigner(payer)))
    client.set_spend_controls({"allowed_assets": True, "max_amount_per_payment": "$1"})
    headers = (await sign_payment_headers(client, headers=dict(challenge.headers))).v2()

    async with AsyncTestClient(app=create_app(upto_settings)) as second:
        responses = await asyncio.gather(*(
            c.get("/v1/gateway/llm/usage?tokens=77", headers=headers)
            for c in [api, second] * 3))

    served = [r for r in responses if r.status_code == 200]
    assert len(served) == 1, [r.text for r in responses]
    assert all(r.json()["code"] == "PAYMENT_ALREADY_USED" for r in responses
               if r.status_code != 200)
    assert await chain_client.balance_of(pay_to) == 77 * PER_TOKEN


async def test_an_exact_client_pays_the_fixed_price(api, devchain, chain_client, pay_to) -> None:
    payer = await _payer(devchain, chain_client)
    sdk = httpx.AsyncClient(
        transport=x402AsyncTransport(build_payer_client(payer, max_amount_micros=MAX),
                                     transport=_App(api, None)),
        base_url=str(api.base_url), timeout=60)
    async with sdk:
        response = await sdk.get("/v1/gateway/llm/usage?tokens=1234")

    assert response.status_code == 200, response.text
    assert await chain_client.balance_of(pay_to) == FIXED
