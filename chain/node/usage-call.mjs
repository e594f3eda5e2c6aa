// Make one usage-priced passgate gateway call with the reference x402 client (@x402/fetch and
// @x402/evm's upto scheme, viem): the client authorizes at most the offered maximum with
// Permit2 and passgate settles the usage. The payer must have approved Permit2 once.
// Usage: node usage-call.mjs <url, e.g. http://127.0.0.1:8000/v1/gateway/llm/usage> <0x key>
// Prints one JSON line: {"status", "body", "paymentResponse", "cost"}.
import { wrapFetchWithPaymentFromConfig } from "@x402/fetch";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { privateKeyToAccount } from "viem/accounts";

const [url, privateKey] = process.argv.slice(2);
if (!url || !privateKey) {
  console.error("usage: node usage-call.mjs <url> <private key>");
  process.exit(2);
}

const account = privateKeyToAccount(privateKey);
const fetchWithPayment = wrapFetchWithPaymentFromConfig(fetch, {
  schemes: [{ network: "eip155:*", client: new UptoEvmScheme(account) }],
  spendControls: { maxAmountPerPayment: "$1" },
});

const response = await fetchWithPayment(url, { method: "GET" });
const text = await response.text();
let body;
try {
  body = JSON.parse(text);
} catch {
  body = text;
}
console.log(JSON.stringify({
  status: response.status,
  body,
  paymentResponse: response.headers.get("payment-response"),
  cost: response.headers.get("x-gateway-cost-micros"),
}));
