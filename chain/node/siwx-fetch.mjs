// Call a passgate URL with the reference x402 client and its sign-in-with-x extension
// (@x402/fetch + @x402/evm + @x402/extensions/sign-in-with-x + viem): on a 402 declaring
// sign-in-with-x the wallet signs the challenge and retries with SIGN-IN-WITH-X; only if that
// still answers 402 does it pay.
// Usage: node siwx-fetch.mjs <url> <0x private key> [GET|POST]
// Prints one JSON line: {"status", "body", "paymentResponse", "usageId"}.
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { ExactEvmScheme } from "@x402/evm";
import { createSIWxClientExtension } from "@x402/extensions/sign-in-with-x";
import { privateKeyToAccount } from "viem/accounts";

const [url, privateKey, method = "GET"] = process.argv.slice(2);
if (!url || !privateKey) {
  console.error("usage: node siwx-fetch.mjs <url> <private key> [method]");
  process.exit(2);
}

const account = privateKeyToAccount(privateKey);
const client = x402Client.fromConfig({
  schemes: [{ network: "eip155:*", client: new ExactEvmScheme(account) }],
  spendControls: { maxAmountPerPayment: "$1" },
});
client.registerExtension(createSIWxClientExtension({ signers: [account] }));
const fetchWithPayment = wrapFetchWithPayment(fetch, client);

const response = await fetchWithPayment(url, { method });
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
  usageId: response.headers.get("x-gateway-usage-id"),
}));
