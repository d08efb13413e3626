//! The one HTTP stack every service uses to call another: a base URL that ids cannot escape
//! (each path segment is percent-encoded), a pooled client, a timeout per call (two budgets),
//! the caller's request id passed on, optional metrics, and every failure as a
//! [`ClientError`] that keeps what the other service said.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::AUTHORIZATION;
use reqwest::{Client, Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::{error_from, ClientError};

tokio::task_local! {
    /// The id of the request being served, sent along as `x-request-id` by every call made
    /// within it (bff sets it for each request it serves).
    pub static REQUEST_ID: String;
}

/// Which timeout bounds a call.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// Reads and cheap writes.
    Read,
    /// Password hashing and payments.
    Write,
}

/// A base URL that is not one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service} URL {url:?}: {reason}")]
pub struct BadUrl {
    pub service: &'static str,
    pub url: String,
    pub reason: String,
}

/// One service as seen by its callers.
#[derive(Clone)]
pub struct Transport {
    service: &'static str,
    base: Url,
    http: Client,
    read_timeout: Duration,
    write_timeout: Duration,
    metrics: Option<Recorder>,
}

/// Records one call: the service, its outcome (`ok`, `client_error`, `server_error`,
/// `timeout`, `unreachable`) and how long it took, in seconds. The caller names its metrics.
pub type Recorder = fn(service: &'static str, outcome: &'static str, secs: f64);

impl Transport {
    /// `base` is the service's root URL (`http://127.0.0.1:8082`, a path prefix allowed).
    pub fn new(
        service: &'static str,
        base: &str,
        read_timeout: Duration,
        write_timeout: Duration,
    ) -> Result<Self, BadUrl> {
        let bad = |reason: String| BadUrl {
            service,
            url: base.to_string(),
            reason,
        };
        let url = Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
            return Err(bad("must be an http:// or https:// URL".into()));
        }
        let http = Client::builder()
            .connect_timeout(read_timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| bad(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            service,
            base: url,
            http,
            read_timeout,
            write_timeout,
            metrics: None,
        })
    }

    /// Counts and times every call with `record`.
    pub fn with_metrics(mut self, record: Recorder) -> Self {
        self.metrics = Some(record);
        self
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The base URL as configured.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The base URL with `segments` appended, each percent-encoded (ids cannot escape).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        u
    }

    pub fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http.request(method, self.url(segments))
    }

    pub fn get(&self, segments: &[&str]) -> RequestBuilder {
        self.request(Method::GET, segments)
    }

    pub fn post(&self, segments: &[&str]) -> RequestBuilder {
        self.request(Method::POST, segments)
    }

    /// Sends the request within the budget; a non-2xx answer becomes an error.
    pub async fn send(
        &self,
        req: RequestBuilder,
        budget: Budget,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let service = self.service;
        let timeout = match budget {
            Budget::Read => self.read_timeout,
            Budget::Write => self.write_timeout,
        };
        let req = match REQUEST_ID.try_with(Clone::clone) {
            Ok(id) => req.header("x-request-id", id),
            Err(_) => req,
        };
        let started = Instant::now();
        let res = tokio::time::timeout(timeout, async {
            let resp = req.send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        })
        .await;
        if let Some(record) = self.metrics {
            let outcome = match &res {
                Err(_) => "timeout",
                Ok(Err(_)) => "unreachable",
                Ok(Ok((s, _, _))) if s.is_success() => "ok",
                Ok(Ok((s, _, _))) if s.is_client_error() => "client_error",
                Ok(Ok(_)) => "server_error",
            };
            record(service, outcome, started.elapsed().as_secs_f64());
        }
        match res {
            Err(_) => Err(ClientError::Unavailable {
                service,
                detail: format!("no answer within {timeout:?}"),
            }),
            Ok(Err(e)) => Err(ClientError::Unavailable {
                service,
                detail: e.to_string(),
            }),
            Ok(Ok((status, _, body))) if status.is_success() => Ok((status, body)),
            Ok(Ok((status, headers, body))) => Err(error_from(service, status, &headers, &body)),
        }
    }

    /// Sends and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
        budget: Budget,
    ) -> Result<T, ClientError> {
        self.json_status(req, budget).await.map(|(_, t)| t)
    }

    /// Sends and decodes a JSON answer, with the status it came with (200 or 201, ...).
    pub async fn json_status<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
        budget: Budget,
    ) -> Result<(StatusCode, T), ClientError> {
        let (status, body) = self.send(req, budget).await?;
        let t = serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            service: self.service,
            detail: e.to_string(),
        })?;
        Ok((status, t))
    }

    /// Like [`Transport::json`], with a 404 as `None`.
    pub async fn json_or_none<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
        budget: Budget,
    ) -> Result<Option<T>, ClientError> {
        match self.json(req, budget).await {
            Ok(t) => Ok(Some(t)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends and ignores the body of a successful answer (204).
    pub async fn empty(&self, req: RequestBuilder, budget: Budget) -> Result<(), ClientError> {
        self.send(req, budget).await.map(|_| ())
    }
}

/// The request with the caller's own `Authorization` header (user-svc stays the one owner of
/// authentication).
pub fn bearer(req: RequestBuilder, authorization: &str) -> RequestBuilder {
    req.header(AUTHORIZATION, authorization)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(base: &str) -> Result<Transport, BadUrl> {
        Transport::new("x", base, Duration::from_secs(1), Duration::from_secs(1))
    }

    #[test]
    fn ids_are_encoded_into_one_segment() {
        let t = transport("http://127.0.0.1:1/").unwrap();
        assert_eq!(
            t.url(&["internal", "v1", "videos", "a/../b?c"]).as_str(),
            "http://127.0.0.1:1/internal/v1/videos/a%2F..%2Fb%3Fc"
        );
        let t = transport("http://h/prefix").unwrap();
        assert_eq!(t.url(&["v1", "me"]).as_str(), "http://h/prefix/v1/me");
        assert_eq!(t.base(), "http://h/prefix");
    }

    #[test]
    fn a_base_that_is_not_an_http_url_is_refused() {
        for bad in ["", "127.0.0.1:8082", "mailto:a@b", "ftp://h/"] {
            let e = transport(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(e.service, "x");
        }
    }

    #[tokio::test]
    async fn an_unreachable_service_is_unavailable_within_the_budget() {
        // a port nothing listens on
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = transport(&format!("http://127.0.0.1:{port}")).unwrap();
        let e = t
            .json::<serde_json::Value>(t.get(&["v1"]), Budget::Read)
            .await
            .unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        assert!(e.to_string().starts_with("x is unavailable"), "{e}");
    }
}
