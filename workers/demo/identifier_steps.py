"""Demo step: a pass purchase retried with an x402 payment identifier gets the same key and
is charged once."""

from __future__ import annotations

import asyncio
import time

import httpx

from workers.demo.chain_steps import _mint_and_wait, demo_chain
from workers.demo.output import DemoFailed, DemoState, expect, mask, say, show


def step_pass_identifier(s: DemoState) -> None:
    show("x402 payment-identifier: a purchase retried after a lost answer is not paid twice")
    from eth_account import Account
    from x402.extensions.payment_identifier import generate_payment_id
    from x402.http.clients import x402HttpxClient

    from chain.x402.payer import build_payer_client, with_payment_identifier

    buyer = Account.create()
    _mint_and_wait(buyer.address, 20_000_000)
    payment_id = generate_payment_id()
    say(f"buyer {buyer.address} holds 20 test USDC: enough for two passes")
    say(f"its x402 client sends payment identifier {payment_id} with every payment")

    async def buy_twice() -> tuple[httpx.Response, httpx.Response, int]:
        payer = with_payment_identifier(build_payer_client(buyer, max_amount_micros=10_000_000),
                                        payment_id)
        async with x402HttpxClient(payer, base_url=str(s.http.base_url), timeout=60) as client:
            first: httpx.Response = await client.post("/v1/passes/1d")
            # The answer is "lost": the client pays again, signing a fresh authorization.
            retry: httpx.Response = await client.post("/v1/passes/1d")
        async with demo_chain().client(timeout=10) as chain:
            balance = await chain.balance_of(buyer.address)
        return first, retry, balance

    started = time.monotonic()
    first, retry, balance = asyncio.run(buy_twice())
    key = expect(first, 201)["data"]["apiKey"]
    again = expect(retry, 201)["data"]["apiKey"]
    if again != key or retry.headers.get("PAYMENT-RESPONSE") != first.headers.get(
            "PAYMENT-RESPONSE"):
        raise DemoFailed("the retry did not get the first purchase's key and settlement")
    if balance != 10_000_000:
        raise DemoFailed(f"the buyer holds {balance / 1e6:.2f} USDC, expected 10.00")
    say(f"both answers carry pass key {mask(key)} and the same settlement "
        f"({time.monotonic() - started:.1f} s)")
    say("the retry's fresh authorization was verified as the same payer's, then never settled: "
        f"the buyer still holds {balance / 1e6:.2f} USDC (one charge)")
