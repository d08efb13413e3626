//! Layers every answer goes through: the request id and its span, metrics per route, body
//! size, rate limits, and the deprecation headers of endpoints on their way out.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::error::Error;
use crate::extract::client_addr;
use service_clients::REQUEST_ID;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn acceptable_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Takes the caller's `x-request-id` (when it is a sane token) or makes one, runs the request
/// inside a span carrying it, passes it on to the services, and returns it in the answer.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let value =
        HeaderValue::from_str(&id).expect("checked or generated id is a valid header value");
    req.headers_mut()
        .insert(X_REQUEST_ID.clone(), value.clone());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let started = Instant::now();
    let mut resp = REQUEST_ID
        .scope(id, next.run(req))
        .instrument(span.clone())
        .await;
    let status = resp.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "request finished"
        );
    });
    resp.headers_mut().insert(X_REQUEST_ID.clone(), value);
    resp
}

/// Refuses a declared body over the limit before reading it (413); bodies without a length
/// are cut by `DefaultBodyLimit` in the JSON extractor, with the same answer.
pub async fn body_limit(State(max): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Error::PayloadTooLarge.into_response();
    }
    next.run(req).await
}

// ---------------------------------------------------------------------------------------------
// rate limits

/// A rate limit keyed by client address: a [`service_kit::shared::RateLimiter`] (shared
/// by every bff instance once `shared_state_url` is set) and how many proxies to look behind.
pub struct RateLimiter {
    pub buckets: service_kit::shared::RateLimiter,
    forwarded_hops: usize,
}

impl RateLimiter {
    pub fn new(name: &'static str, burst: u32, per_minute: u32, forwarded_hops: usize) -> Self {
        Self {
            buckets: service_kit::shared::RateLimiter::new(name, burst, per_minute),
            forwarded_hops,
        }
    }
}

/// 429 `rate_limited` with `Retry-After` once the caller's bucket is empty.
pub async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    let addr = client_addr(req.headers(), req.extensions(), limiter.forwarded_hops);
    if let Err(retry_after_secs) = limiter.buckets.check(&addr).await {
        let name = limiter.buckets.name();
        metrics::counter!("bff_rate_limited_total", "limit" => name).increment(1);
        tracing::info!(limit = name, client = %addr, retry_after_secs, "rate limited");
        return Error::RateLimited { retry_after_secs }.into_response();
    }
    next.run(req).await
}

// ---------------------------------------------------------------------------------------------
// deprecation

/// Marks an endpoint as on its way out: `Deprecation` (RFC 9745, the date it was deprecated),
/// `Sunset` (RFC 8594, the date it stops answering) and `Link: <successor>;
/// rel="successor-version"`. `successor` is a path template whose `{name}` parameters are
/// filled from the request's own path parameters.
#[derive(Debug, Clone)]
pub struct Deprecation {
    pub since: DateTime<Utc>,
    pub sunset: DateTime<Utc>,
    pub successor: &'static str,
}

impl Deprecation {
    pub fn headers(&self, params: &[(&str, &str)]) -> [(HeaderName, String); 3] {
        let mut successor = self.successor.to_string();
        for (name, value) in params {
            successor = successor.replace(&format!("{{{name}}}"), value);
        }
        [
            (
                HeaderName::from_static("deprecation"),
                format!("@{}", self.since.timestamp()),
            ),
            (
                HeaderName::from_static("sunset"),
                self.sunset.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            ),
            (
                header::LINK,
                format!("<{successor}>; rel=\"successor-version\""),
            ),
        ]
    }
}

/// Applied with `MethodRouter::layer`, so the route's path parameters are known.
pub async fn deprecated(
    State(d): State<Arc<Deprecation>>,
    params: RawPathParams,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    metrics::counter!("bff_deprecated_requests_total", "route" => route.clone()).increment(1);
    tracing::debug!(route, "deprecated endpoint called");
    let params: Vec<(&str, &str)> = params.iter().collect();
    // percent-encode what goes back into a URL
    let encoded: Vec<(&str, String)> = params
        .iter()
        .map(|(k, v)| (*k, encode_segment(v)))
        .collect();
    let refs: Vec<(&str, &str)> = encoded.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut resp = next.run(req).await;
    for (name, value) in d.headers(&refs) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn deprecation_headers() {
        let d = Deprecation {
            since: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            sunset: Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap(),
            successor: "/v1/videos/{id}",
        };
        let h = d.headers(&[("id", "abc")]);
        assert_eq!(h[0].1, "@1767225600");
        assert_eq!(h[1].1, "Thu, 31 Dec 2026 00:00:00 GMT");
        assert_eq!(h[2].1, "</v1/videos/abc>; rel=\"successor-version\"");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn request_ids() {
        assert!(acceptable_id("abc-123_x.y:z"));
        assert!(!acceptable_id(""));
        assert!(!acceptable_id("a b"));
        assert!(!acceptable_id(&"x".repeat(129)));
    }
}
