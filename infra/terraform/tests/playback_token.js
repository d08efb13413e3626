#!/usr/bin/env node
// Runs functions/playback-token.js (the CloudFront Function on the media behaviours) in node,
// rendered the way Terraform's templatefile() renders it, against sample viewer requests.
// The runtime's modules are stood in for: `crypto` is node's (createHmac, digest("base64url")
// as documented for cloudfront-js-2.0), `cloudfront` is a KeyValueStore stub whose get()
// rejects an unknown key like the real one. Time is fixed through a stub Date.
// Prints one "PASS: ..." or "FAIL: ..." line per case; exits 1 on a failure.
//
//   node playback_token.js FUNCTION.js
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const vm = require("vm");

const SECRET = "caudal-test-secret-0123456789abcdef"; // the spec's test vector
const SECRET2 = "caudal-second-secret-abcdefghijklmnopqrstuvwxyz";
const VECTOR_PATH =
  "/p/k1.1900000000.umJh7zQyi3tWHiqGiJf7QANJpRB9y3wARxd978M-pGk/live/abc/master.m3u8";
const NOW = 1800000000;
const EXP = 1900000000;
const MAX_CODE_BYTES = 10240; // CloudFront Functions' code size limit

function render(file, origins) {
  const text = fs.readFileSync(file, "utf8");
  return text
    .replace("${allowed_origins}", JSON.stringify(origins))
    .replace("${kvs_id}", "00000000-0000-0000-0000-000000000000");
}

// The module imports become sandbox globals (node's vm runs scripts, not modules).
function load(file, { origins = ["*"], keys = { k1: SECRET }, now = NOW } = {}) {
  const imports = [];
  const code = render(file, origins).replace(/^import (\w+) from "(\w+)";$/gm, (_, name, mod) => {
    imports.push(`${name}:${mod}`);
    return "";
  });
  if (imports.join(",") !== "crypto:crypto,cf:cloudfront") {
    throw new Error(`unexpected imports: ${imports.join(", ")}`);
  }
  const kvs = {
    async get(key) {
      if (!Object.prototype.hasOwnProperty.call(keys, key)) {
        throw new Error(`key ${key} not found`);
      }
      return keys[key];
    },
  };
  const sandbox = {
    crypto: { createHmac: crypto.createHmac },
    cf: { kvs: () => kvs },
    Date: { now: () => now * 1000 },
  };
  vm.runInNewContext(`"use strict";\n${code}\nthis.handler = handler;`, sandbox, { filename: file });
  return sandbox.handler;
}

function sign(kid, secret, exp, prefix) {
  const sig = crypto.createHmac("sha256", secret).update(`${kid}.${exp}.${prefix}`).digest("base64url");
  return `${kid}.${exp}.${sig}`;
}

function event(uri, { method = "GET", headers = {}, querystring = {} } = {}) {
  const h = {};
  for (const [k, v] of Object.entries(headers)) h[k] = { value: v };
  return { version: "1.0", request: { method, uri, querystring, headers: h, cookies: {} } };
}

const TOKEN = sign("k1", SECRET, EXP, "live/abc/");
const TOKEN2 = sign("k2", SECRET2, EXP, "live/abc/");

const passes = (uri) => (r) => r.statusCode === undefined && r.uri === uri;
const refused = (r) =>
  r.statusCode === 403 &&
  r.body && r.body.data === "forbidden\n" &&
  r.headers["cache-control"].value === "no-store" &&
  r.headers["access-control-allow-origin"].value === "*" &&
  r.uri === undefined;

function tamper(token) {
  const last = token[token.length - 1];
  return token.slice(0, -1) + (last === "A" ? "B" : "A");
}

const cases = [
  ["the spec's test vector signs as in the spec", {}, null,
    () => `/p/${sign("k1", SECRET, EXP, "live/abc/")}/live/abc/master.m3u8` === VECTOR_PATH],
  ["the spec's test vector opens live/abc/master.m3u8 (uri rewritten to the object key)", {},
    event(VECTOR_PATH), passes("/live/abc/master.m3u8")],
  ["a valid token opens a segment of its video; the token leaves the uri", {},
    event(`/p/${TOKEN}/live/abc/720p/seg_00001.ts`), passes("/live/abc/720p/seg_00001.ts")],
  ["a valid token opens a child playlist and a CMAF segment", {},
    event(`/p/${TOKEN}/live/abc/720p/index.m3u8`), passes("/live/abc/720p/index.m3u8")],
  ["HEAD is checked like GET", {},
    event(`/p/${TOKEN}/live/abc/720p/init.m4s`, { method: "HEAD" }), passes("/live/abc/720p/init.m4s")],
  ["a signed poster path is rewritten too", {},
    event(`/p/${TOKEN}/live/abc/poster.jpg`), passes("/live/abc/poster.jpg")],
  ["the token is valid up to and including exp", { now: EXP },
    event(`/p/${TOKEN}/live/abc/master.m3u8`), passes("/live/abc/master.m3u8")],
  ["an expired token is refused", { now: EXP + 1 },
    event(`/p/${TOKEN}/live/abc/master.m3u8`), refused],
  ["a tampered signature is refused", {},
    event(`/p/${tamper(TOKEN)}/live/abc/master.m3u8`), refused],
  ["a changed expiry is refused", {},
    event(`/p/${TOKEN.replace(".1900000000.", ".1900000001.")}/live/abc/master.m3u8`), refused],
  ["a token of another video is refused", {},
    event(`/p/${TOKEN}/live/abd/master.m3u8`), refused],
  ["a token of live/abc/ does not open live/abcd/", {},
    event(`/p/${TOKEN}/live/abcd/master.m3u8`), refused],
  ["a token of live/abc/ does not open vod/abc/", {},
    event(`/p/${TOKEN}/vod/abc/master.m3u8`), refused],
  ["an unknown key id is refused", {},
    event(`/p/${sign("k9", SECRET, EXP, "live/abc/")}/live/abc/master.m3u8`), refused],
  ["a known key id with another key's secret is refused", {},
    event(`/p/${sign("k1", SECRET2, EXP, "live/abc/")}/live/abc/master.m3u8`), refused],
  ...[
    ["an empty token", ""],
    ["a kid only", "k1"],
    ["two parts", `k1.${EXP}`],
    ["four parts", `${TOKEN}.x`],
    ["a non-numeric exp", TOKEN.replace(`.${EXP}.`, ".19e8.")],
    ["a 13-digit exp", sign("k1", SECRET, "1900000000000", "live/abc/")],
    ["a short signature", TOKEN.slice(0, -1)],
    ["a padded signature", `${TOKEN}=`],
    ["a standard-base64 signature", TOKEN.slice(0, -1) + "+"],
    ["a kid with a space", sign("k 1", SECRET, EXP, "live/abc/")],
    ["a 17-character kid", sign("k".repeat(17), SECRET, EXP, "live/abc/")],
  ].map(([what, tok]) => [`a malformed token is refused: ${what}`, {},
    event(`/p/${tok}/live/abc/master.m3u8`), refused]),
  ...[
    ["a .. segment", `/p/${TOKEN}/live/abc/../abd/master.m3u8`],
    ["a .. segment after the prefix", `/p/${TOKEN}/live/abc/720p/../../abd/seg.ts`],
    ["a . segment", `/p/${TOKEN}/live/abc/./master.m3u8`],
    ["an escaped slash (%2F)", `/p/${TOKEN}/live/abc%2Fmaster.m3u8`],
    ["an escaped slash after the prefix (%2F)", `/p/${TOKEN}/live/abc/720p%2Fseg.ts`],
    ["an escaped dot (%2E%2E)", `/p/${TOKEN}/live/abc/%2E%2E/abd/master.m3u8`],
    ["a double slash", `/p/${TOKEN}/live/abc//master.m3u8`],
    ["a double slash before the key", `/p/${TOKEN}//live/abc/master.m3u8`],
    ["a double slash before the token", `//p/${TOKEN}/live/abc/master.m3u8`],
    ["a key that is not media", `/p/${TOKEN}/live/abc/master.txt`],
    ["a key with no rest after the prefix", `/p/${TOKEN}/live/abc/`],
    ["an upper-case first segment", `/p/${sign("k1", SECRET, EXP, "Live/abc/")}/Live/abc/master.m3u8`],
  ].map(([what, uri]) => [`a path that is not normalised or not media is refused: ${what}`, {}, event(uri), refused]),
  ["a missing token is refused (/p/{key})", {}, event("/p/live/abc/master.m3u8"), refused],
  ["a missing token is refused (/p/ only)", {}, event("/p/"), refused],
  ["unsigned media is refused (playlist)", {}, event("/live/abc/master.m3u8"), refused],
  ["unsigned media is refused (segment)", {}, event("/live/abc/720p/seg_00001.ts"), refused],
  ["a query string does not stand in for a token", {},
    event("/live/abc/master.m3u8", { querystring: { token: { value: TOKEN } } }), refused],
  ["an unsigned poster is served unchanged (jpg)", {}, event("/live/abc/poster.jpg"), passes("/live/abc/poster.jpg")],
  ["an unsigned poster is served unchanged (png)", {}, event("/vod/0190abc-DEF_1/poster.png"),
    passes("/vod/0190abc-DEF_1/poster.png")],
  ["a poster deeper than two segments is refused", {}, event("/live/abc/720p/poster.jpg"), refused],
  ["a poster with a dot segment is refused", {}, event("/live/../poster.jpg"), refused],
  ["a poster with an escape is refused", {}, event("/live/a%2Fb/poster.jpg"), refused],
  ["rotation: with two keys, tokens of both verify", { keys: { k1: SECRET, k2: SECRET2 } },
    event(`/p/${TOKEN}/live/abc/master.m3u8`), passes("/live/abc/master.m3u8")],
  ["rotation: with two keys, the new kid verifies", { keys: { k1: SECRET, k2: SECRET2 } },
    event(`/p/${TOKEN2}/live/abc/master.m3u8`), passes("/live/abc/master.m3u8")],
  ["rotation: once the old kid is removed, its tokens are refused", { keys: { k2: SECRET2 } },
    event(`/p/${TOKEN}/live/abc/master.m3u8`), refused],
  ["rotation: a new kid is refused before it is added", {},
    event(`/p/${TOKEN2}/live/abc/master.m3u8`), refused],
  ["a 403 names the allowed origin when origins are listed", { origins: ["https://a.example"] },
    event(`/p/${tamper(TOKEN)}/live/abc/master.m3u8`, { headers: { origin: "https://a.example" } }),
    (r) => r.statusCode === 403 && r.headers["access-control-allow-origin"].value === "https://a.example" &&
      r.headers.vary.value === "Origin"],
  ["a preflight is answered 204 with Allow-Origin * when any origin is allowed", {},
    event(`/p/${TOKEN}/live/abc/master.m3u8`,
      { method: "OPTIONS", headers: { origin: "https://a.example", "access-control-request-headers": "range" } }),
    (r) => r.statusCode === 204 && r.headers["access-control-allow-origin"].value === "*" &&
      r.headers["access-control-allow-headers"].value === "range" &&
      /GET/.test(r.headers["access-control-allow-methods"].value)],
  ["a preflight needs no token (browsers send none)", {},
    event("/p/x/live/abc/master.m3u8", { method: "OPTIONS", headers: { origin: "https://a.example" } }),
    (r) => r.statusCode === 204],
  ["a preflight from a listed origin gets that origin back", { origins: ["https://a.example", "https://b.example"] },
    event("/live/abc/poster.jpg", { method: "OPTIONS", headers: { origin: "https://b.example" } }),
    (r) => r.statusCode === 204 && r.headers["access-control-allow-origin"].value === "https://b.example"],
  ["a preflight from an unlisted origin gets no Allow-Origin", { origins: ["https://a.example"] },
    event("/live/abc/poster.jpg", { method: "OPTIONS", headers: { origin: "https://evil.example" } }),
    (r) => r.statusCode === 204 && r.headers["access-control-allow-origin"] === undefined],
];

async function main(file) {
  let failed = 0;
  const report = (ok, label, why) => {
    if (ok) {
      console.log(`PASS: ${label}`);
    } else {
      failed += 1;
      console.log(`FAIL: ${label}${why ? `: ${why}` : ""}`);
    }
  };

  const rendered = render(file, ["https://a.example", "https://b.example"]);
  report(!/\$\{|%\{/.test(rendered), "playback-token function: every template variable is rendered",
    "a ${...} or %{...} is left (JavaScript template literals clash with templatefile)");
  const size = Buffer.byteLength(rendered);
  report(size <= MAX_CODE_BYTES, `playback-token function: code fits CloudFront's 10 KB limit (${size} bytes)`);

  for (const [name, opts, ev, ok] of cases) {
    const label = `playback-token function: ${name}`;
    try {
      if (ev === null) {
        report(ok(), label);
        continue;
      }
      const out = await load(file, opts)(ev);
      report(ok(out), label, `got ${JSON.stringify(out)}`);
    } catch (err) {
      report(false, label, String(err).replace(/\s+/g, " "));
    }
  }
  process.exit(failed ? 1 : 0);
}

main(process.argv[2]);
