#!/usr/bin/env node
// Parses HCL files exactly as Terraform does (@cdktf/hcl2json wraps HashiCorp's HCL parser,
// built to WebAssembly) and writes {"<file name>": <parsed JSON>, ...} to OUT.
// Prints one "PASS: ..." or "FAIL: ..." line per file; exits 1 when any file fails to parse.
//
//   node hcl2json.js OUT.json FILE...
"use strict";

const fs = require("fs");
const path = require("path");
const { parse } = require("@cdktf/hcl2json");

async function main() {
  const [out, ...files] = process.argv.slice(2);
  if (!out || files.length === 0) {
    console.error("usage: node hcl2json.js OUT.json FILE...");
    process.exit(2);
  }
  const parsed = {};
  let failures = 0;
  for (const file of files) {
    const name = path.basename(file);
    try {
      parsed[name] = await parse(name, fs.readFileSync(file, "utf8"));
      console.log(`PASS: hcl2json parses ${name}`);
    } catch (err) {
      failures += 1;
      const msg = String(err && err.message ? err.message : err).replace(/\s+/g, " ");
      console.log(`FAIL: hcl2json parses ${name}: ${msg}`);
    }
  }
  fs.writeFileSync(out, JSON.stringify(parsed, null, 1));
  process.exit(failures ? 1 : 0);
}

main().catch((err) => {
  console.log(`FAIL: hcl2json runs: ${err}`);
  process.exit(1);
});
