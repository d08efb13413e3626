// CloudFront Function (cloudfront-js-2.0), viewer request, on every media behaviour. The
// CloudFront side of the playback tokens (the same rule as crates/playback-token and the nginx
// edge):
//   OPTIONS                         -> CORS preflight answered here (the bucket has no CORS)
//   /p/{kid}.{exp}.{sig}/{key}      -> token checked, then uri = /{key}: the cache key and the
//                                      S3 request carry the object key only, never the token
//   /{seg1}/{seg2}/poster.jpg|png   -> served unsigned (posters on public cards)
//   anything else                   -> 403 "forbidden", no-store, no origin fetch
// sig = base64url, no padding, of HMAC-SHA256(secret[kid], "{kid}.{exp}.{seg1}/{seg2}/").
// The secrets come from the KeyValueStore associated with this function (kid -> secret), so
// two kids are valid at once while a key is rotated.
// Rendered by Terraform: allowed_origins is var.cors_allowed_origins as a JSON array, kvs_id
// the key value store's id.
import crypto from "crypto";
import cf from "cloudfront";

const ALLOWED_ORIGINS = ${allowed_origins};
const keys = cf.kvs("${kvs_id}");

const KID = /^[A-Za-z0-9_-]{1,16}$/;
const EXP = /^[0-9]{1,12}$/;
const SIG = /^[A-Za-z0-9_-]{43}$/;
// media prefix (two segments, with its slash), then the rest of the object key
const KEY = /^([a-z0-9]{1,16}\/[A-Za-z0-9_-]{1,64}\/)([A-Za-z0-9_.\/-]+)$/;
const MEDIA = /\.(m3u8|ts|m4s|mp4|aac|m4a|vtt|jpg|jpeg|png)$/;
const POSTER = /^\/[a-z0-9]{1,16}\/[A-Za-z0-9_-]{1,64}\/poster\.(jpg|png)$/;

function allowOrigin(request, headers) {
  const origin = request.headers.origin ? request.headers.origin.value : "";
  if (ALLOWED_ORIGINS.indexOf("*") >= 0) {
    headers["access-control-allow-origin"] = { value: "*" };
  } else {
    headers["vary"] = { value: "Origin" };
    if (ALLOWED_ORIGINS.indexOf(origin) >= 0) {
      headers["access-control-allow-origin"] = { value: origin };
    }
  }
  return headers;
}

function preflight(request) {
  const requested = request.headers["access-control-request-headers"];
  const headers = allowOrigin(request, {
    "access-control-allow-methods": { value: "GET, HEAD, OPTIONS" },
    "access-control-allow-headers": { value: requested ? requested.value : "Range" },
    "access-control-max-age": { value: "86400" },
    "vary": { value: "Origin" },
  });
  return { statusCode: 204, statusDescription: "No Content", headers: headers };
}

function forbidden(request) {
  const headers = allowOrigin(request, {
    "cache-control": { value: "no-store" },
    "content-type": { value: "text/plain; charset=utf-8" },
  });
  return {
    statusCode: 403,
    statusDescription: "Forbidden",
    headers: headers,
    body: { encoding: "text", data: "forbidden\n" },
  };
}

// Same time for every input of the same length (43 characters here).
function sameString(a, b) {
  if (a.length !== b.length) {
    return false;
  }
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  }
  return diff === 0;
}

// The object key a /p/{token}/{key} path opens at unix time now, or null.
async function verify(uri, now) {
  const rest = uri.slice(3);
  const slash = rest.indexOf("/");
  if (slash < 0) {
    return null;
  }
  const token = rest.slice(0, slash);
  const key = rest.slice(slash + 1);
  // the raw path must already be normalised: no %-escapes, dot segments or empty segments
  const m = KEY.exec(key);
  if (!m || !MEDIA.test(key)) {
    return null;
  }
  const segments = m[2].split("/");
  for (let i = 0; i < segments.length; i++) {
    if (segments[i] === "" || segments[i] === "." || segments[i] === "..") {
      return null;
    }
  }
  const parts = token.split(".");
  if (parts.length !== 3 || !KID.test(parts[0]) || !EXP.test(parts[1]) || !SIG.test(parts[2])) {
    return null;
  }
  if (now > Number(parts[1])) {
    return null;
  }
  let secret;
  try {
    secret = await keys.get(parts[0]);
  } catch (e) {
    return null; // unknown kid
  }
  if (typeof secret !== "string" || secret === "") {
    return null;
  }
  const expected = crypto
    .createHmac("sha256", secret)
    .update(parts[0] + "." + parts[1] + "." + m[1])
    .digest("base64url");
  return sameString(expected, parts[2]) ? key : null;
}

async function handler(event) {
  const request = event.request;
  if (request.method === "OPTIONS") {
    return preflight(request);
  }
  if (request.uri.startsWith("/p/")) {
    const key = await verify(request.uri, Math.floor(Date.now() / 1000));
    if (key === null) {
      return forbidden(request);
    }
    request.uri = "/" + key;
    return request;
  }
  return POSTER.test(request.uri) ? request : forbidden(request);
}
