// What every browser test file shares (not a test itself: browser.sh runs the *.test.mjs
// files): the platform's addresses from scripts/tests.d/browser.sh, Chromium as this
// machine runs it, and a JSON client for the /v1 API.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const url = (name) => (process.env[name] || '').replace(/\/$/, '');

export const BFF = url('CAUDAL_BFF_URL');
export const EDGE = url('CAUDAL_EDGE_URL');
export const RTMP = url('CAUDAL_RTMP_URL');
export const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
export const CHROMIUM = process.env.CAUDAL_CHROMIUM || '/usr/bin/chromium';
// as root, without a sandbox; no background networking (this machine's network is closed)
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `name` made unique to this run (emails, titles). */
export const unique = (name) => `${name.toLowerCase()}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

/**
 * Headless Chromium with a fresh profile (playwright-core never downloads a browser). `need`
 * names the addresses the file uses, so a run outside browser.sh fails loudly.
 */
export async function launch(need) {
  for (const name of need) {
    assert.ok(url(name), `${name} is not set: run these tests with \`bash scripts/tests.d/browser.sh\``);
  }
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * A /v1 call as a mobile app makes it: a bearer token, JSON (or raw bytes for a Uint8Array
 * body). Answers { status, headers, body } with the body parsed when it is JSON.
 */
export async function api(method, path, token, body, headers = {}) {
  const raw = body instanceof Uint8Array;
  const r = await fetch(BFF + path, {
    method,
    headers: {
      ...(token ? { Authorization: 'Bearer ' + token } : {}),
      ...(body && !raw ? { 'Content-Type': 'application/json' } : {}),
      ...headers,
    },
    body: raw ? body : body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = text;
  }
  return { status: r.status, headers: r.headers, body: json };
}
