#!/usr/bin/env node
// Completes package-lock.json with the anvil binary packages of *other* platforms.
//
// @foundry-rs/anvil lists one optional binary package per platform. When the lock is written
// from a registry (or mirror) that only serves some of them, npm leaves the rest out of the
// lock, and `npm ci` then refuses the lock as out of sync with package.json. This adds an entry
// (version, os, cpu, optional) for each missing one, which is all `npm ci` needs to skip a
// package meant for another platform, or to fetch it on that platform.
//
//   npm run lock   (= npm install --package-lock-only && node lock-platforms.mjs)
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const lockPath = join(dirname(fileURLToPath(import.meta.url)), "package-lock.json");
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const wrapper = lock.packages["node_modules/@foundry-rs/anvil"];
if (!wrapper) {
  console.error("package-lock.json has no @foundry-rs/anvil entry");
  process.exit(1);
}

// Package names end in <os>-<arch> (npm's os names; Foundry's arch names).
const cpuOf = { amd64: "x64", arm64: "arm64" };
let added = 0;
for (const [name, version] of Object.entries(wrapper.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`;
  if (lock.packages[key]) continue;
  const match = /-(darwin|linux|win32)-(amd64|arm64)$/.exec(name);
  if (!match) {
    console.error(`cannot tell the platform of ${name}`);
    process.exit(1);
  }
  lock.packages[key] = {
    version,
    cpu: [cpuOf[match[2]]],
    license: wrapper.license,
    optional: true,
    os: [match[1]],
  };
  added += 1;
}

// npm writes the root ("") first and the rest sorted; keep that so diffs stay small.
const { "": root, ...rest } = lock.packages;
lock.packages = { "": root, ...Object.fromEntries(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b))) };
writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lock-platforms: added ${added} platform entr${added === 1 ? "y" : "ies"}`);
