"""Demo steps on the dev chain: a credited deposit, a pass bought with x402, gateway calls
paid with credits and per call, and a signed webhook."""

from __future__ import annotations

import atexit
import base64
import functools
import json
import time
from typing import Any

import httpx

from chain.devchain import DevChain
from workers.demo.output import (
    DEMO_DEPOSIT_ACCOUNT,
    DemoFailed,
    DemoState,
    expect,
    mask,
    say,
    show,
)
from workers.demo.server import free_port


@functools.cache
def demo_chain() -> DevChain:
    """The demo's dev chain (anvil from chain/node, TestUSDC at the Base Sepolia address, a
    block a second), started on first use and stopped when the demo process exits."""
    from chain.devchain import start_devchain

    chain = start_devchain(port=free_port(), block_time=1.0)
    atexit.register(chain.stop)
    return chain


def _rpc(chain: DevChain, method: str, *params: Any) -> Any:
    response = httpx.post(chain.rpc_url, timeout=10, json={
        "jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    body: dict[str, Any] = response.json()
    if "error" in body:
        raise DemoFailed(f"{method}: {body['error']}")
    return body.get("result")


def step_deposit(s: DemoState) -> None:
    show("Deposits: an agent links a wallet, sends USDC on the dev chain, its credits rise")
    from eth_abi.abi import encode as abi_encode
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from eth_utils.crypto import keccak

    chain = demo_chain()
    say(f"dev chain: anvil pid {chain.pid} at {chain.rpc_url}, USDC {chain.token_address}")
    # A fresh agent: the earlier steps used up most of the demo key's 5 requests a minute.
    agent = expect(s.http.post("/v1/agents/register", json={"name": "depositor"}), 201)
    headers = {"X-API-Key": agent["apiKey"]}
    wallet = Account.create()
    challenge = expect(s.http.post("/v1/wallets/challenge", json={"address": wallet.address},
                                   headers=headers), 201)
    signature = wallet.sign_message(encode_defunct(text=challenge["message"])).signature
    expect(s.http.post("/v1/wallets", headers=headers, json={
        "address": wallet.address, "message": challenge["message"],
        "signature": "0x" + bytes(signature).hex().removeprefix("0x")}), 201)
    say(f"linked wallet {wallet.address} (EIP-191 signed challenge)")
    before = expect(s.http.get("/v1/balance", headers=headers), 200)["creditsMicros"]

    # Fund the wallet (gas + 100 test USDC), then it pays 25 USDC to the deposit address.
    amount, minter = 25_000_000, chain.accounts[0].address
    deposit_address = chain.accounts[DEMO_DEPOSIT_ACCOUNT].address
    _rpc(chain, "anvil_setBalance", wallet.address, hex(10**18))
    _rpc(chain, "anvil_impersonateAccount", wallet.address)

    def call(signature: str, types: list[str], args: list[Any]) -> str:
        return "0x" + (keccak(text=signature)[:4] + abi_encode(types, args)).hex()

    _rpc(chain, "eth_sendTransaction", {"from": minter, "to": chain.token_address, "data": call(
        "mint(address,uint256)", ["address", "uint256"], [wallet.address, 100_000_000])})
    tx_hash = _rpc(chain, "eth_sendTransaction", {
        "from": wallet.address, "to": chain.token_address, "data": call(
            "transfer(address,uint256)", ["address", "uint256"], [deposit_address, amount])})
    say(f"sent 25 USDC to the deposit address {deposit_address}: tx {tx_hash[:18]}…")

    admin = {"Authorization": f"Bearer {s.admin_token}"}
    deadline, status = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        found = s.http.get("/admin/v1/transfers", params={"txHash": tx_hash}, headers=admin)
        rows = found.json()["data"] if found.status_code == 200 else []
        if rows and rows[0]["status"] != status:
            status = rows[0]["status"]
            say(f"watcher: transfer in block {rows[0]['blockNumber']} is {status}")
        if status == "confirmed":
            break
        time.sleep(0.5)  # the watcher polls the chain every second; nothing to wait on here
    else:
        raise DemoFailed("the deposit was not confirmed within 30 s")
    after = expect(s.http.get("/v1/balance", headers=headers), 200)["creditsMicros"]
    if after != before + amount:
        raise DemoFailed(f"balance went from {before} to {after}, expected +{amount}")
    say(f"balance {before / 1e6:.2f} -> {after / 1e6:.2f} USD: credited exactly once")
    watchers = s.http.get("/admin/v1/chain/watchers", headers=admin)
    watcher: dict[str, Any] = watchers.json()[0]
    say(f"watcher {watcher['network']}: head {watcher['head']}, cursor {watcher['cursor']}, "
        f"lag {watcher['lag']}, status {watcher['status']}")


def _mint_and_wait(address: str, micros: int) -> None:
    """Mint test USDC to ``address`` on the demo chain and wait until it is mined."""
    from eth_abi.abi import encode as abi_encode
    from eth_utils.crypto import keccak

    chain = demo_chain()
    data = "0x" + (keccak(text="mint(address,uint256)")[:4]
                   + abi_encode(["address", "uint256"], [address, micros])).hex()
    minted = _rpc(chain, "eth_sendTransaction",
                  {"from": chain.accounts[0].address, "to": chain.token_address, "data": data})
    deadline = time.monotonic() + 15
    while _rpc(chain, "eth_getTransactionReceipt", minted) is None:
        if time.monotonic() > deadline:
            raise DemoFailed("the dev chain did not mine the funding transaction")
        time.sleep(0.2)  # blocks come every second on the demo chain


def step_pass(s: DemoState) -> None:
    show("x402: an agent buys a 1-day key pass with the Python x402 client, paying USDC")
    import asyncio

    from eth_account import Account
    from x402.http.clients import x402HttpxClient

    from chain.x402.payer import build_payer_client

    buyer = Account.create()
    _mint_and_wait(buyer.address, 10_000_000)
    say(f"buyer wallet {buyer.address} holds 10 test USDC and no ETH (payments are gasless)")
    s.values["pass_buyer"] = buyer  # signs in with SIWX later (siwx_steps)
    offer = s.http.post("/v1/passes/1d")
    expect(offer, 402)
    accepts = offer.json()["accepts"][0]
    say(f"402 PAYMENT_REQUIRED: {int(accepts['maxAmountRequired']) / 1e6:.2f} USDC to "
        f"{accepts['payTo']} on {accepts['network']} (v2 offer in the PAYMENT-REQUIRED header)")

    async def buy() -> httpx.Response:
        payer = build_payer_client(buyer, max_amount_micros=10_000_000)
        async with x402HttpxClient(payer, base_url=str(s.http.base_url), timeout=60) as client:
            response: httpx.Response = await client.post("/v1/passes/1d")
            return response

    started = time.monotonic()
    response = asyncio.run(buy())
    body = expect(response, 201)
    settlement = json.loads(base64.b64decode(response.headers["PAYMENT-RESPONSE"]))
    say(f"settled on chain in {time.monotonic() - started:.1f} s: tx "
        f"{settlement['transaction'][:18]}…, the key is shown once")
    key = body["data"]["apiKey"]
    info = expect(s.http.get("/v1/api-keys/info", headers={"X-API-Key": key}), 200)
    say(f"pass key {mask(key)}: type {info['type']}, period {info['period']}, expires "
        f"{info['expiresAt']}, {info['rateLimit']['requestsPerMinute']} requests/minute")


def step_gateway_credits(s: DemoState) -> None:
    show("Gateway: an agent calls an upstream AI API through passgate, paid with credits")
    from workers.demo.upstream import OPERATOR_KEY, serve_upstream

    admin = {"Authorization": f"Bearer {s.admin_token}"}
    with serve_upstream(free_port()) as upstream:
        # The operator adds the provider with its own upstream key (never shown to agents).
        expect(s.http.post("/admin/v1/providers", headers=admin, json={
            "name": "demo-llm", "baseUrl": upstream, "priceMicros": 20_000,
            "routePrices": {"/v1/chat": 50_000},
            "headers": {"Authorization": f"Bearer {OPERATOR_KEY}"}}), 201)
        catalog = expect(s.http.get("/v1/providers"), 200)["data"]
        for provider in catalog:
            say(f"provider {provider['name']}: {provider['priceMicros']} micros a call, "
                f"by route {provider['routePrices']}")
        # A gateway key by e-mail comes with starter credits (10 USD by default).
        signup = expect(s.http.post("/v1/keys", json={"email": "demo-agent@example.com"}), 201)
        headers = {"X-API-Key": signup["api_key"]}
        say(f"gateway key {mask(signup['api_key'])} with {signup['credits_usd']:.2f} USD")
        for _ in range(2):
            response = s.http.post("/v1/gateway/demo-llm/v1/chat/completions", headers=headers,
                                   json={"model": "demo", "messages": [{"role": "user",
                                                                        "content": "Hi"}]})
            answer = expect(response, 200)
            say(f"upstream answered {answer['choices'][0]['message']['content']!r}; saw the "
                f"operator key: {answer['sawOperatorKey']}, the agent key: "
                f"{answer['sawAgentKey']}; cost {response.headers['X-Gateway-Cost-Micros']} "
                f"micros, balance {int(response.headers['X-Gateway-Balance-Micros']) / 1e6:.2f}")
    after = expect(s.http.get("/v1/balance", headers=headers), 200)
    if after["creditsMicros"] != signup["creditsMicros"] - 2 * 50_000:
        raise DemoFailed(f"unexpected balance {after}")
    say(f"balance {signup['credits_usd']:.2f} -> {after['credits_usd']:.2f} USD, "
        f"total spent {after['total_spent']:.2f} USD")
    usage = expect(s.http.get("/v1/usage", headers=headers), 200)["data"]
    for record in usage:
        say(f"{record['createdAt']} {record['method']} {record['provider']}{record['route']} "
            f"-> {record['upstreamStatus'] or '-'} {record['status']}, "
            f"{record['costMicros']} micros, {record['latencyMs']} ms")


def step_webhook(s: DemoState) -> None:
    """A local receiver gets a signed ``agent.registered`` and verifies it with
    ``webhooks.verify``."""
    import http.server
    import threading

    from webhooks import WebhookVerificationError, verify

    show("Webhooks: a signed event reaches a receiver on this machine and verifies")
    received: list[tuple[dict[str, str], bytes]] = []
    arrived = threading.Event()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            arrived.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, name="demo-receiver", daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/passgate"
    admin = {"Authorization": f"Bearer {s.admin_token}"}
    try:
        response = s.http.post("/admin/v1/webhooks", headers=admin, json={
            "url": url, "description": "demo receiver", "eventTypes": ["agent.registered"]})
        if response.status_code == 400:
            # The SSRF guard refuses loopback unless PASSGATE_WEBHOOK_ALLOWED_CIDRS lists it.
            say(f"{response.json()['error']} Run the demo with "
                "PASSGATE_WEBHOOK_ALLOWED_CIDRS='[\"127.0.0.0/8\"]' to see a local delivery.")
            return
        endpoint = expect(response, 201)
        say(f"operator endpoint {endpoint['id']} -> {url}, secret {mask(endpoint['secret'])} "
            "(shown once)")
        agent = expect(s.http.post("/v1/agents/register", json={"name": "webhook-demo"}), 201)
        if not arrived.wait(timeout=20):
            raise DemoFailed("no webhook arrived within 20 s")
        headers, body = received[0]
        event = verify(body, headers, endpoint["secret"])
        say(f"POST {url} webhook-id {headers['webhook-id']}")
        say(f"webhook-signature {headers['webhook-signature'][:24]}…, "
            f"X-Signature {headers['x-signature'][:16]}…")
        say(f"verified: {event['type']} for agent {event['data']['agentId']} "
            f"at {event['timestamp']}")
        if event["data"]["agentId"] != agent["agentId"]:
            raise DemoFailed(f"unexpected event {event}")
        try:
            verify(body.replace(b"webhook-demo", b"webhook-evil"), headers, endpoint["secret"])
            raise DemoFailed("a tampered body verified")
        except WebhookVerificationError as exc:
            say(f"a tampered copy is rejected: {exc}")
        path = f"/admin/v1/webhooks/{endpoint['id']}/deliveries"
        for _ in range(50):  # the attempt is recorded right after the receiver answers
            log = s.http.get(path, headers=admin).json()["data"]
            if log and log[0]["status"] == "delivered":
                break
            time.sleep(0.1)
        log = expect(s.http.get(path, headers=admin), 200)["data"]
        attempt = log[0]["attempts"][-1]
        say(f"deliveries log: {log[0]['id']} {log[0]['status']}, HTTP {attempt['statusCode']} "
            f"in {attempt['latencyMs']} ms")
    finally:
        server.shutdown()
        server.server_close()


def step_gateway_x402(s: DemoState) -> None:
    show("Gateway, pay per call: no key, the x402 client pays for one call; failures are free")
    import asyncio

    from eth_account import Account
    from x402.http.clients import x402HttpxClient

    from chain.x402.payer import build_payer_client
    from workers.demo.upstream import OPERATOR_KEY, serve_upstream

    buyer = Account.create()
    _mint_and_wait(buyer.address, 1_000_000)
    admin = {"Authorization": f"Bearer {s.admin_token}"}
    with serve_upstream(free_port()) as upstream:
        expect(s.http.post("/admin/v1/providers", headers=admin, json={
            "name": "demo-paid", "baseUrl": upstream, "priceMicros": 10_000,
            "headers": {"Authorization": f"Bearer {OPERATOR_KEY}"}}), 201)

        async def call() -> httpx.Response:
            payer = build_payer_client(buyer, max_amount_micros=10_000)
            async with x402HttpxClient(payer, base_url=str(s.http.base_url),
                                       timeout=60) as client:
                paid: httpx.Response = await client.post(
                    "/v1/gateway/demo-paid/v1/chat/completions",
                    json={"model": "demo", "messages": []})
                return paid

        response = asyncio.run(call())
        answer = expect(response, 200)
        settlement = json.loads(base64.b64decode(response.headers["PAYMENT-RESPONSE"]))
        say(f"paid 0.01 USDC for one call, settled after the upstream's 2xx: tx "
            f"{settlement['transaction'][:18]}…; "
            f"answer {answer['choices'][0]['message']['content']!r}")
