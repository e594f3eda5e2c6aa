#!/usr/bin/env node
// Compiles the dev-chain contracts in chain/contracts (TestUSDC.sol, TestUptoProxy.sol) with the
// pinned solc-js and writes <Name>.json beside each (abi, bytecode, deployedBytecode).
//
//   node compile.mjs          rewrite the artifact
//   node compile.mjs --check  exit 1 if a committed artifact is stale (for CI)
//
// The settings are fixed so the artifact is reproducible byte for byte.
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = dirname(fileURLToPath(import.meta.url));
const contractsDir = join(here, "..", "contracts");
const contractNames = ["TestUSDC", "TestUptoProxy"];
let stale = false;

for (const contractName of contractNames) {
  stale = compileOne(contractName) || stale;
}
if (stale) {
  process.exit(1);
}

function compileOne(contractName) {
  const sourceName = `${contractName}.sol`;
  const artifactPath = join(contractsDir, `${contractName}.json`);
  const input = {
    language: "Solidity",
    sources: { [sourceName]: { content: readFileSync(join(contractsDir, sourceName), "utf8") } },
    settings: {
      // Cancun is supported by Base and by every anvil hardfork we may run, so the bytecode
      // does not depend on the newest opcodes.
      evmVersion: "cancun",
      optimizer: { enabled: true, runs: 200 },
      outputSelection: {
        [sourceName]: { [contractName]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
      },
    },
  };

  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const problems = output.errors ?? [];
  for (const problem of problems) {
    console.error(problem.formattedMessage ?? problem.message);
  }
  if (problems.some((p) => p.severity === "error")) {
    process.exit(1);
  }

  const compiled = output.contracts[sourceName][contractName];
  const artifact = {
    contractName,
    compiler: `solc-js ${solc.version()}`,
    evmVersion: input.settings.evmVersion,
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
    deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
  };
  const text = `${JSON.stringify(artifact, null, 2)}\n`;

  if (process.argv.includes("--check")) {
    const current = existsSync(artifactPath) ? readFileSync(artifactPath, "utf8") : "";
    if (current !== text) {
      console.error(`${artifactPath} is stale: run \`make contracts\` and commit the result.`);
      return true;
    }
    console.log(`${artifactPath} is up to date.`);
  } else {
    writeFileSync(artifactPath, text);
    console.log(`wrote ${artifactPath}`);
  }
  return false;
}
