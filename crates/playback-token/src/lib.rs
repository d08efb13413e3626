//! Signed playback tokens.
//!
//! bff hands a viewer who may watch a video the URL `{edge}/p/{token}/{key}`, where `key` is
//! the storage key of the master playlist (`live/<id>/master.m3u8`) and
//!
//! ```text
//! token  = {kid}.{exp}.{sig}
//! sig    = base64url-nopad(HMAC-SHA256(secret[kid], "{kid}.{exp}.{prefix}"))
//! prefix = the first two segments of key, with a slash: "live/<id>/"
//! ```
//!
//! Relative URIs in playlists resolve against the playlist's path, so the token travels to
//! every child playlist and segment of the video without rewriting a playlist, with every
//! HLS player. The edge (nginx `cdn-config/playback-token.js`, CloudFront
//! `infra/terraform/functions/playback-token.js`) checks the same rule before its cache and
//! keeps the token out of the cache key.
//!
//! Keys are configured as `kid=secret,kid2=secret2`: every listed key verifies, one signs, so
//! a key is rotated with no downtime (add, switch the signer, wait one token lifetime, remove).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted (bytes).
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no playback keys: set kid=secret[,kid2=secret2] (secrets of at least {MIN_SECRET_LEN} characters)")]
    Empty,
    #[error("playback key {0:?}: write each key as kid=secret")]
    Syntax(String),
    #[error("playback key id {0:?}: 1 to 16 of A-Z a-z 0-9 _ -")]
    BadKid(String),
    #[error("playback key {0:?}: the secret must be at least {MIN_SECRET_LEN} characters")]
    ShortSecret(String),
    #[error("playback key id {0:?} is listed twice")]
    Duplicate(String),
    #[error("the signing key id {0:?} is not among the playback keys")]
    UnknownSigner(String),
}

/// Why a token does not open a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown key id")]
    UnknownKey,
    #[error("expired")]
    Expired,
    #[error("bad signature")]
    BadSignature,
    #[error("not a media path")]
    BadPath,
}

/// The signing and verifying keys. `Debug` shows key ids only.
#[derive(Clone)]
pub struct Keys {
    keys: Vec<(String, Vec<u8>)>,
    signer: usize,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Keys")
            .field("kids", &kids)
            .field("signer", &self.signing_kid())
            .finish()
    }
}

fn valid_kid(kid: &str) -> bool {
    (1..=16).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Keys {
    /// Parses `kid=secret[,kid=secret...]`; signs with `signer`, or the first key when `None`.
    pub fn parse(spec: &str, signer: Option<&str>) -> Result<Self, KeyError> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kid, secret) = item
                .split_once('=')
                .ok_or_else(|| KeyError::Syntax(item.chars().take(16).collect()))?;
            let kid = kid.trim();
            if !valid_kid(kid) {
                return Err(KeyError::BadKid(kid.into()));
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(KeyError::ShortSecret(kid.into()));
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(KeyError::Duplicate(kid.into()));
            }
            keys.push((kid.to_string(), secret.as_bytes().to_vec()));
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let signer = match signer.map(str::trim).filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => keys
                .iter()
                .position(|(k, _)| k == s)
                .ok_or_else(|| KeyError::UnknownSigner(s.into()))?,
        };
        Ok(Self { keys, signer })
    }

    pub fn signing_kid(&self) -> &str {
        &self.keys[self.signer].0
    }

    /// The MAC over the token's own text of `exp` (the edge signs what it reads).
    fn mac(secret: &[u8], kid: &str, exp: &str, prefix: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(kid.as_bytes());
        mac.update(b".");
        mac.update(exp.as_bytes());
        mac.update(b".");
        mac.update(prefix.as_bytes());
        mac
    }

    /// The token for `prefix` (`live/<id>/`), valid until `exp` (unix seconds).
    pub fn sign(&self, prefix: &str, exp: u64) -> String {
        let (kid, secret) = &self.keys[self.signer];
        let sig = Self::mac(secret, kid, &exp.to_string(), prefix)
            .finalize()
            .into_bytes();
        format!(
            "{kid}.{exp}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// The path (no leading slash) that plays storage key `key` with a token valid until `exp`:
    /// `p/{token}/{key}`. `None` when `key` is not a media key of a video.
    pub fn signed_path(&self, key: &str, exp: u64) -> Option<String> {
        let prefix = media_prefix(key)?;
        Some(format!("p/{}/{key}", self.sign(prefix, exp)))
    }

    /// Checks `token` for `prefix` at time `now` (unix seconds), as the edge does.
    pub fn verify(&self, token: &str, prefix: &str, now: u64) -> Result<(), TokenError> {
        let mut parts = token.split('.');
        let (Some(kid), Some(exp), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        if !valid_kid(kid)
            || exp.is_empty()
            || exp.len() > 12
            || !exp.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(TokenError::Malformed);
        }
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        let (_, secret) = self
            .keys
            .iter()
            .find(|(k, _)| k == kid)
            .ok_or(TokenError::UnknownKey)?;
        // verify_slice compares in constant time
        Self::mac(secret, kid, exp, prefix)
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let exp: u64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        if now > exp {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    /// Checks a request path `/p/{token}/{key}` as the edge does; returns the object key.
    pub fn verify_path<'a>(&self, path: &'a str, now: u64) -> Result<&'a str, TokenError> {
        let rest = path.strip_prefix("/p/").ok_or(TokenError::BadPath)?;
        let (token, key) = rest.split_once('/').ok_or(TokenError::BadPath)?;
        if !media_key(key) {
            return Err(TokenError::BadPath);
        }
        let prefix = media_prefix(key).ok_or(TokenError::BadPath)?;
        self.verify(token, prefix, now)?;
        Ok(key)
    }
}

/// Extensions the edge serves.
pub const MEDIA_EXTENSIONS: &[&str] = &[
    "m3u8", "ts", "m4s", "mp4", "aac", "m4a", "vtt", "jpg", "jpeg", "png",
];

/// The video's media prefix of a storage key: its first two segments with a slash
/// (`live/<id>/`). The first is 1-16 of `a-z 0-9`, the second 1-64 of `A-Z a-z 0-9 _ -`.
pub fn media_prefix(key: &str) -> Option<&str> {
    let mut it = key.splitn(3, '/');
    let (ns, id, rest) = (it.next()?, it.next()?, it.next()?);
    let ns_ok = (1..=16).contains(&ns.len())
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let id_ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (ns_ok && id_ok && !rest.is_empty()).then(|| &key[..ns.len() + id.len() + 2])
}

/// A key the edge may serve under a token: a media prefix, then `[A-Za-z0-9_./-]`, no empty
/// or dot segment, ending in a media extension.
pub fn media_key(key: &str) -> bool {
    let Some(prefix) = media_prefix(key) else {
        return false;
    };
    let rest = &key[prefix.len()..];
    rest.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'))
        && rest
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && rest
            .rsplit_once('.')
            .is_some_and(|(_, ext)| MEDIA_EXTENSIONS.contains(&ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "caudal-test-secret-0123456789abcdef";

    fn keys() -> Keys {
        Keys::parse(&format!("k1={SECRET}"), None).unwrap()
    }

    #[test]
    fn the_shared_test_vector() {
        // the same vector is checked by the edge's and CloudFront's tests
        assert_eq!(
            keys().sign("live/abc/", 1_900_000_000),
            "k1.1900000000.umJh7zQyi3tWHiqGiJf7QANJpRB9y3wARxd978M-pGk"
        );
        assert_eq!(
            keys()
                .signed_path("live/abc/master.m3u8", 1_900_000_000)
                .unwrap(),
            "p/k1.1900000000.umJh7zQyi3tWHiqGiJf7QANJpRB9y3wARxd978M-pGk/live/abc/master.m3u8"
        );
    }

    #[test]
    fn a_token_opens_its_video_only_until_it_expires() {
        let k = keys();
        let t = k.sign("live/a/", 1000);
        assert_eq!(k.verify(&t, "live/a/", 999), Ok(()));
        assert_eq!(k.verify(&t, "live/a/", 1000), Ok(()));
        assert_eq!(k.verify(&t, "live/a/", 1001), Err(TokenError::Expired));
        assert_eq!(k.verify(&t, "live/b/", 999), Err(TokenError::BadSignature));
        assert_eq!(k.verify(&t, "live/ab/", 999), Err(TokenError::BadSignature));
        // a changed expiry breaks the signature
        let forged = t.replacen("1000", "9000", 1);
        assert_eq!(
            k.verify(&forged, "live/a/", 999),
            Err(TokenError::BadSignature)
        );
        let mut tampered = t.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            k.verify(&tampered, "live/a/", 999),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "k1",
            "k1.1000",
            "k1.x.sig",
            "k1.1000.sig.extra",
            "k 1.1.AA",
        ] {
            assert_eq!(
                k.verify(bad, "live/a/", 1),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
        let other = Keys::parse(&format!("k2={SECRET}"), None).unwrap();
        assert_eq!(
            other.verify(&t, "live/a/", 999),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn rotation_two_keys_verify_one_signs() {
        let old = Keys::parse(&format!("k1={SECRET}"), None).unwrap();
        let both = Keys::parse(&format!("k1={SECRET},k2={SECRET}-new"), Some("k2")).unwrap();
        assert_eq!(both.signing_kid(), "k2");
        let t_old = old.sign("live/a/", 1000);
        let t_new = both.sign("live/a/", 1000);
        assert!(t_new.starts_with("k2."));
        assert_eq!(both.verify(&t_old, "live/a/", 1), Ok(()));
        assert_eq!(both.verify(&t_new, "live/a/", 1), Ok(()));
        assert_eq!(
            old.verify(&t_new, "live/a/", 1),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn key_lists_are_checked() {
        assert_eq!(Keys::parse("", None).unwrap_err(), KeyError::Empty);
        assert!(matches!(Keys::parse("k1", None), Err(KeyError::Syntax(_))));
        assert!(matches!(
            Keys::parse("k1=short", None),
            Err(KeyError::ShortSecret(_))
        ));
        assert!(matches!(
            Keys::parse(&format!("bad kid={SECRET}"), None),
            Err(KeyError::BadKid(_))
        ));
        assert!(matches!(
            Keys::parse(&format!("k1={SECRET},k1={SECRET}"), None),
            Err(KeyError::Duplicate(_))
        ));
        assert!(matches!(
            Keys::parse(&format!("k1={SECRET}"), Some("k9")),
            Err(KeyError::UnknownSigner(_))
        ));
        let dbg = format!("{:?}", keys());
        assert!(!dbg.contains(SECRET), "{dbg}");
        assert!(dbg.contains("k1"));
    }

    #[test]
    fn paths_and_prefixes() {
        assert_eq!(media_prefix("live/abc/master.m3u8"), Some("live/abc/"));
        assert_eq!(
            media_prefix("live/abc/720p/seg_00001.ts"),
            Some("live/abc/")
        );
        assert_eq!(media_prefix("live/abc"), None);
        assert_eq!(media_prefix("live/abc/"), None);
        assert_eq!(media_prefix("Live/abc/x.ts"), None);
        assert_eq!(media_prefix("live/a.b/x.ts"), None);
        assert!(media_key("live/abc/720p/seg_00001.ts"));
        assert!(!media_key("live/abc/../def/master.m3u8"));
        assert!(!media_key("live/abc//master.m3u8"));
        assert!(!media_key("live/abc/master.txt"));
        assert!(!media_key("live/abc/a%2Fb.ts"));
        let k = keys();
        let path = format!(
            "/{}",
            k.signed_path("live/abc/720p/index.m3u8", 50).unwrap()
        );
        assert_eq!(k.verify_path(&path, 10), Ok("live/abc/720p/index.m3u8"));
        assert_eq!(k.verify_path(&path, 51), Err(TokenError::Expired));
        let sibling = path.replace("720p/index.m3u8", "480p/seg_00001.ts");
        assert_eq!(
            k.verify_path(&sibling, 10),
            Ok("live/abc/480p/seg_00001.ts")
        );
        let other = path.replace("/abc/", "/abd/");
        assert_eq!(k.verify_path(&other, 10), Err(TokenError::BadSignature));
        let escape = path.replace("720p/index.m3u8", "../abd/master.m3u8");
        assert_eq!(k.verify_path(&escape, 10), Err(TokenError::BadPath));
        assert_eq!(
            k.verify_path("/live/abc/master.m3u8", 10),
            Err(TokenError::BadPath)
        );
    }
}
