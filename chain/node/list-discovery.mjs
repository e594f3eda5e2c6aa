// List a passgate's paid resources with the reference x402 discovery client
// (@x402/extensions' withBazaar over @x402/core's HTTPFacilitatorClient).
// Usage: node list-discovery.mjs <base url, e.g. http://127.0.0.1:8000/v1> [params as JSON]
// Prints one JSON line: the listing as the client returns it, or {"error": <message>}.
import { HTTPFacilitatorClient } from "@x402/core/server";
import { withBazaar } from "@x402/extensions/bazaar";

const [url, params] = process.argv.slice(2);
if (!url) {
  console.error("usage: node list-discovery.mjs <base url> [params as JSON]");
  process.exit(2);
}

const client = withBazaar(new HTTPFacilitatorClient({ url }));
try {
  const listing = await client.extensions.bazaar.listResources(params ? JSON.parse(params) : {});
  console.log(JSON.stringify(listing));
} catch (error) {
  console.log(JSON.stringify({ error: String(error.message ?? error) }));
}
