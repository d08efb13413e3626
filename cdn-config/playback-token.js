// Playback tokens (njs): the edge serves /p/{kid}.{exp}.{sig}/{key} only with a valid token.
//
//   sig    = base64url, no padding, of HMAC-SHA256(secret[kid], "{kid}.{exp}.{prefix}")
//   prefix = the first two segments of key with a slash ("live/<id>/")
//   valid while now <= exp (unix seconds)
//
// The signed locations of nginx.conf capture $pb_kid, $pb_exp, $pb_sig and $pb_prefix from the
// path (their regex is the token's syntax, sig in its canonical 43 characters); $pb_secret is
// the kid's secret in hex, from the map in playback-keys.conf (written by render.sh), empty for
// an unknown kid. Each variable below is computed once per request, before the cache is looked
// up: this runs on every request, hits included, so it is kept short (about 5 us in njs 0.7.9).

const crypto = require('crypto');

// The request path as the client sent it (no query string).
function rawPath(r) {
    const u = r.variables.request_uri;
    const q = u.indexOf('?');
    return q < 0 ? u : u.substring(0, q);
}

// Compares two 32-byte digests in a time that does not depend on where they differ. (Bytes, not
// the base64url strings: charCodeAt per character costs njs four times as much.)
function same(a, b) {
    let d = 0;
    for (let i = 0; i < 32; i++) {
        d |= a[i] ^ b[i];
    }
    return d === 0;
}

// $pb_ok: "1" when the token opens this path, else "0". The raw path must equal nginx's
// normalised $uri: no %-escapes, dot segments or doubled slashes.
function verify(r) {
    const v = r.variables;
    if (rawPath(r) !== r.uri) {
        return '0';
    }
    const secret = v.pb_secret;
    if (!secret) {
        return '0';
    }
    if (Math.floor(Date.now() / 1000) > Number(v.pb_exp)) {
        return '0';
    }
    const want = crypto.createHmac('sha256', Buffer.from(secret, 'hex'))
        .update(v.pb_kid + '.' + v.pb_exp + '.' + v.pb_prefix)
        .digest();
    return same(want, Buffer.from(v.pb_sig, 'base64url')) ? '1' : '0';
}

// $pb_raw_ok: "1" when the raw path equals $uri (unsigned posters).
function rawPathOk(r) {
    return rawPath(r) === r.uri ? '1' : '0';
}

export default { verify, rawPathOk };
