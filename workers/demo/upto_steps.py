"""Demo step: a usage-priced gateway call paid with x402 ``upto`` (Permit2), charged the tokens
the upstream reports, never more than the client authorized."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx

from workers.demo.chain_steps import _mint_and_wait, _rpc, demo_chain
from workers.demo.output import DemoFailed, DemoState, expect, say, show
from workers.demo.server import free_port

PER_TOKEN = 20
MAX = 100_000


def _approve_permit2(address: str) -> None:
    """The payer's one-time Permit2 approval (sent as the dev chain's unlocked account)."""
    from chain.permit2 import encode_approve_permit2

    chain = demo_chain()
    _rpc(chain, "anvil_setBalance", address, hex(10**17))
    _rpc(chain, "anvil_impersonateAccount", address)
    sent = _rpc(chain, "eth_sendTransaction", {"from": address, "to": chain.token_address,
                                               "data": encode_approve_permit2()})
    deadline = time.monotonic() + 15
    while _rpc(chain, "eth_getTransactionReceipt", sent) is None:
        if time.monotonic() > deadline:
            raise DemoFailed("the dev chain did not mine the Permit2 approval")
        time.sleep(0.2)  # blocks come every second on the demo chain


def step_usage_priced(s: DemoState) -> None:
    show("Gateway, priced by usage: the x402 upto client authorizes at most 0.10 USDC with "
         "Permit2; passgate charges the tokens used")
    from eth_account import Account
    from x402 import x402Client
    from x402.http.clients import x402HttpxClient
    from x402.mechanisms.evm.signers import EthAccountSigner
    from x402.mechanisms.evm.upto import UptoEvmClientScheme

    from workers.demo.upstream import OPERATOR_KEY, serve_upstream

    buyer = Account.create()
    _mint_and_wait(buyer.address, 1_000_000)
    _approve_permit2(buyer.address)
    admin = {"Authorization": f"Bearer {s.admin_token}"}
    with serve_upstream(free_port()) as upstream:
        expect(s.http.post("/admin/v1/providers", headers=admin, json={
            "name": "demo-metered", "baseUrl": upstream, "priceMicros": 50_000,
            "headers": {"Authorization": f"Bearer {OPERATOR_KEY}"},
            "usagePricing": {"field": "usage.total_tokens", "microsPerUnit": PER_TOKEN,
                             "maxMicros": MAX}}), 201)

        async def call() -> httpx.Response:
            client = x402Client()
            client.register("eip155:*", UptoEvmClientScheme(EthAccountSigner(buyer)))
            client.set_spend_controls({"allowed_assets": True, "max_amount_per_payment": "$1"})
            async with x402HttpxClient(client, base_url=str(s.http.base_url),
                                       timeout=60) as http:
                paid: httpx.Response = await http.post(
                    "/v1/gateway/demo-metered/v1/chat/completions",
                    json={"model": "demo", "messages": []})
                return paid

        response = asyncio.run(call())
        answer = expect(response, 200)
    settlement = json.loads(base64.b64decode(response.headers["PAYMENT-RESPONSE"]))
    tokens = answer["usage"]["total_tokens"]
    if settlement["amount"] != str(tokens * PER_TOKEN):
        raise DemoFailed(f"charged {settlement['amount']}, expected {tokens * PER_TOKEN}")
    say(f"authorized up to {MAX} micros; the answer used {tokens} tokens x {PER_TOKEN} = "
        f"{settlement['amount']} micros charged, tx {settlement['transaction'][:18]}…")
