"""Usage-priced gateway calls paid with x402 ``upto`` by the official Python SDK client (its
upto scheme and httpx transport), settled by the in-process worker's signer through Permit2 and
the upto proxy on a real anvil chain: exactly the usage moves, never more than authorized,
nothing for a failed call."""

from __future__ import annotations

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

    def __init__(self, api: AsyncTestClient) -> None:
        self._inner = api._transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = await self._inner.handle_async_request(request)
        return response


def _sdk(api: AsyncTestClient, payer: LocalAccount) -> httpx.AsyncClient:
    """The SDK's x402 httpx transport with only its upto scheme, over the test app."""
    client = x402Client()
    client.register("eip155:*", UptoEvmClientScheme(EthAccountSigner(payer)))
    client.set_spend_controls({"allowed_assets": True, "max_amount_per_payment": "$1"})
    return httpx.AsyncClient(transport=x402AsyncTransport(client, transport=_App(api)),
                             base_url=str(api.base_url), timeout=60)


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


async def test_a_call_is_charged_exactly_its_usage(api, devchain, chain_client, pay_to) -> None:
    payer = await _payer(devchain, chain_client)
    async with _sdk(api, payer) as sdk:
        response = await sdk.get("/v1/gateway/llm/usage?tokens=1234")

    assert response.status_code == 200, response.text
    charged = 1234 * PER_TOKEN
    settlement = _settlement(response)
    assert settlement["success"] is True
    assert settlement["amount"] == str(charged)
    assert settlement["transaction"].startswith("0x")
    assert response.headers["x-gateway-cost-micros"] == str(charged)
    assert await chain_client.balance_of(pay_to) == charged
    assert await chain_client.balance_of(payer.address) == FUNDS - charged
