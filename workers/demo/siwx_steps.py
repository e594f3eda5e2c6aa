"""Demo step: the wallet that bought the pass signs in with x402's sign-in-with-x (SIWX)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from workers.demo.output import DemoFailed, DemoState, expect, say, show
from workers.demo.server import free_port


def step_siwx(s: DemoState) -> None:
    show("x402 sign-in-with-x: the pass buyer's wallet signs in, no API key, no second payment")
    from x402.extensions.sign_in_with_x import (
        CreateSIWxClientExtensionOptions,
        create_siwx_client_extension,
        create_siwx_payload,
        encode_siwx_header,
    )
    from x402.http.clients import x402HttpxClient

    from chain.x402.payer import build_payer_client
    from workers.demo.upstream import OPERATOR_KEY, serve_upstream

    buyer = s.values.get("pass_buyer")
    if buyer is None:
        raise DemoFailed("the pass step did not leave its buyer's wallet")
    base = str(s.http.base_url).rstrip("/")
    declared = expect(s.http.get("/v1/siwx/challenge",
                                 params={"resource": "/v1/api-keys/info"}), 200)
    info, chain = declared["info"], declared["supportedChains"][0]
    say(f"challenge for {info['domain']} on {chain['chainId']}: nonce {info['nonce'][:8]}…, "
        f"expires {info['expirationTime']}")
    payload = asyncio.run(create_siwx_payload(
        {**info, "chainId": chain["chainId"], "type": chain["type"]}, buyer,
        base + "/v1/api-keys/info"))
    header = {"SIGN-IN-WITH-X": encode_siwx_header(payload)}
    key = expect(s.http.get("/v1/api-keys/info", headers=header), 200)
    say(f"signed in as {buyer.address[:10]}…: acting as pass key {key['hint']}, period "
        f"{key['period']}, expires {key['expiresAt']}")
    replay = s.http.get("/v1/api-keys/info", headers=header)
    expect(replay, 401)
    say(f"the same proof again is refused: {replay.json()['details']['reason']}")

    admin = {"Authorization": f"Bearer {s.admin_token}"}
    with serve_upstream(free_port()) as upstream:
        expect(s.http.post("/admin/v1/providers", headers=admin, json={
            "name": "demo-siwx", "baseUrl": upstream, "priceMicros": 20_000,
            "headers": {"Authorization": f"Bearer {OPERATOR_KEY}"}}), 201)
        expect(s.http.post("/admin/v1/credits/adjustments", headers=admin, json={
            "agentId": key["agentId"], "amountMicros": 1_000_000,
            "reason": "demo: credits for the pass buyer"}), 201)
        say("the operator credits the pass buyer's agent with 1.00 USD")

        async def call() -> httpx.Response:
            client = build_payer_client(buyer, max_amount_micros=20_000)
            client.register_extension(create_siwx_client_extension(
                CreateSIWxClientExtensionOptions(signers=[buyer])))
            async with x402HttpxClient(client, base_url=base, timeout=60) as http:
                response: httpx.Response = await http.post(
                    "/v1/gateway/demo-siwx/v1/chat/completions",
                    json={"model": "demo", "messages": [{"role": "user", "content": "Hi"}]})
                return response

        response = asyncio.run(call())
        answer: dict[str, Any] = expect(response, 200)
        if "PAYMENT-RESPONSE" in response.headers:
            raise DemoFailed("the signed-in wallet paid on chain again")
        say(f"the Python x402 client met the 402, signed in instead of paying: upstream "
            f"answered {answer['choices'][0]['message']['content']!r}, billed "
            f"{response.headers['X-Gateway-Cost-Micros']} micros to credits, nothing on chain")
