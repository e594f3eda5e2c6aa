// Buy a passgate key pass with the reference x402 client (@x402/fetch + @x402/evm + viem).
// Usage: node buy-pass.mjs <url, e.g. http://127.0.0.1:8000/v1/passes/1d> <0x private key>
// Prints one JSON line: {"status": <http status>, "body": <json>, "paymentResponse": <header>}.
import { wrapFetchWithPaymentFromConfig } from "@x402/fetch";
import { ExactEvmScheme } from "@x402/evm";
import { privateKeyToAccount } from "viem/accounts";

const [url, privateKey] = process.argv.slice(2);
if (!url || !privateKey) {
  console.error("usage: node buy-pass.mjs <url> <private key>");
  process.exit(2);
}

const account = privateKeyToAccount(privateKey);
// The client's default spend cap is 1 USD a payment; a 1d pass costs 10 (cap: 100 USD).
const fetchWithPayment = wrapFetchWithPaymentFromConfig(fetch, {
  schemes: [{ network: "eip155:*", client: new ExactEvmScheme(account) }],
  spendControls: { maxAmountPerPayment: "$100" },
});

const response = await fetchWithPayment(url, { method: "POST" });
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
}));
