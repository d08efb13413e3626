#!/usr/bin/env node
// Runs functions/cors-preflight.js (the CloudFront Function) in node, rendered the way
// Terraform's templatefile() renders it, against sample viewer requests.
// Prints one "PASS: ..." or "FAIL: ..." line per case; exits 1 on a failure.
//
//   node cors_preflight.js FUNCTION.js
"use strict";

const fs = require("fs");
const vm = require("vm");

function load(file, origins) {
  const code = fs.readFileSync(file, "utf8").replace("${allowed_origins}", JSON.stringify(origins));
  const sandbox = {};
  vm.runInNewContext(code + "\nthis.handler = handler;", sandbox, { filename: file });
  return sandbox.handler;
}

function request(method, headers) {
  const h = {};
  for (const [k, v] of Object.entries(headers || {})) h[k] = { value: v };
  return { request: { method, uri: "/live/abc/720p/seg_00001.ts", headers: h } };
}

const cases = [
  ["a GET goes on to the origin unchanged", ["*"], request("GET", { origin: "https://a.example" }),
    (r) => r.method === "GET" && r.uri === "/live/abc/720p/seg_00001.ts" && r.statusCode === undefined],
  ["a preflight is answered 204 with Allow-Origin * when any origin is allowed", ["*"],
    request("OPTIONS", { origin: "https://a.example", "access-control-request-headers": "range" }),
    (r) => r.statusCode === 204 && r.headers["access-control-allow-origin"].value === "*" &&
      r.headers["access-control-allow-headers"].value === "range" &&
      /GET/.test(r.headers["access-control-allow-methods"].value)],
  ["a preflight from a listed origin gets that origin back", ["https://a.example", "https://b.example"],
    request("OPTIONS", { origin: "https://b.example" }),
    (r) => r.statusCode === 204 && r.headers["access-control-allow-origin"].value === "https://b.example"],
  ["a preflight from an unlisted origin gets no Allow-Origin", ["https://a.example"],
    request("OPTIONS", { origin: "https://evil.example" }),
    (r) => r.statusCode === 204 && r.headers["access-control-allow-origin"] === undefined],
];

const file = process.argv[2];
let failed = 0;
for (const [name, origins, event, ok] of cases) {
  const label = `cors-preflight function: ${name}`;
  try {
    const out = load(file, origins)(event);
    if (ok(out)) {
      console.log(`PASS: ${label}`);
    } else {
      failed += 1;
      console.log(`FAIL: ${label}: got ${JSON.stringify(out)}`);
    }
  } catch (err) {
    failed += 1;
    console.log(`FAIL: ${label}: ${String(err).replace(/\s+/g, " ")}`);
  }
}
process.exit(failed ? 1 : 0);
