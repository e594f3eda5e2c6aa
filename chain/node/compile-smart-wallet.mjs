#!/usr/bin/env node
// Compiles chain/contracts/TestSmartWallet.sol (an EIP-1271 test wallet for sign-in-with-x
// tests, and its CREATE2 factory for EIP-6492) with the pinned solc-js into
// chain/contracts/TestSmartWallet.json ({contracts: {name: {abi, bytecode}}}).
//
//   node compile-smart-wallet.mjs          rewrite the artifact
//   node compile-smart-wallet.mjs --check  exit 1 if the committed artifact is stale
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = dirname(fileURLToPath(import.meta.url));
const contractsDir = join(here, "..", "contracts");
const name = "TestSmartWallet";
const source = `${name}.sol`;
const artifactPath = join(contractsDir, `${name}.json`);

const input = {
  language: "Solidity",
  sources: { [source]: { content: readFileSync(join(contractsDir, source), "utf8") } },
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { [source]: { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
for (const problem of output.errors ?? []) {
  console.error(problem.formattedMessage ?? problem.message);
}
if ((output.errors ?? []).some((p) => p.severity === "error")) {
  process.exit(1);
}
const contracts = {};
for (const [contract, compiled] of Object.entries(output.contracts[source]).sort()) {
  contracts[contract] = { abi: compiled.abi, bytecode: `0x${compiled.evm.bytecode.object}` };
}
const text = `${JSON.stringify({
  source,
  compiler: `solc-js ${solc.version()}`,
  evmVersion: input.settings.evmVersion,
  contracts,
}, null, 2)}\n`;

if (process.argv.includes("--check")) {
  const current = existsSync(artifactPath) ? readFileSync(artifactPath, "utf8") : "";
  if (current !== text) {
    console.error(`${artifactPath} is stale: run node compile-smart-wallet.mjs and commit it.`);
    process.exit(1);
  }
  console.log(`${artifactPath} is up to date.`);
} else {
  writeFileSync(artifactPath, text);
  console.log(`wrote ${artifactPath}`);
}
