// Pay for a passgate POST (a key pass, or a gateway call) with the reference x402 client,
// sending an x402 payment-identifier
// (@x402/extensions' appendPaymentIdentifierToExtensions in a before-payment-creation hook).
// Usage: node buy-pass-id.mjs <url> <0x private key> <payment id> [attempts, default 1]
// Each attempt is a fresh request that answers the 402 with a freshly signed authorization
// (a client retrying after a lost response). Prints one JSON line:
// {"attempts": [{"status", "body", "paymentResponse", "nonce"}, ...]}.
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { ExactEvmScheme } from "@x402/evm";
import { appendPaymentIdentifierToExtensions } from "@x402/extensions/payment-identifier";
import { privateKeyToAccount } from "viem/accounts";

const [url, privateKey, paymentId, attemptsArg] = process.argv.slice(2);
if (!url || !privateKey || !paymentId) {
  console.error("usage: node buy-pass-id.mjs <url> <private key> <payment id> [attempts]");
  process.exit(2);
}

const account = privateKeyToAccount(privateKey);
let lastNonce = null;
const client = x402Client.fromConfig({
  schemes: [{ network: "eip155:*", client: new ExactEvmScheme(account) }],
  spendControls: { maxAmountPerPayment: "$100" },
});
client.onBeforePaymentCreation(async ({ paymentRequired }) => {
  if (paymentRequired.extensions) {
    appendPaymentIdentifierToExtensions(paymentRequired.extensions, paymentId);
  }
});
client.onAfterPaymentCreation(async ({ paymentPayload }) => {
  lastNonce = paymentPayload.payload?.authorization?.nonce ?? null;
});
const fetchWithPayment = wrapFetchWithPayment(fetch, client);

const attempts = [];
for (let i = 0; i < Number(attemptsArg ?? 1); i++) {
  lastNonce = null;
  const response = await fetchWithPayment(url, { method: "POST" });
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  attempts.push({
    status: response.status,
    body,
    paymentResponse: response.headers.get("payment-response"),
    nonce: lastNonce,
  });
}
console.log(JSON.stringify({ attempts }));
