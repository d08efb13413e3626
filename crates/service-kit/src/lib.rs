//! Start-up plumbing shared by every Caudal service.
//!
//! - [`load_config`]: one typed struct per service, read from an optional TOML file and then
//!   overridden by environment variables (`PREFIX_FIELD`, nested with `__`); any string field
//!   may instead be given as `PREFIX_FIELD_FILE` pointing at a file (for secrets).
//! - [`init_tracing`]: `RUST_LOG`-filtered tracing, JSON when `CAUDAL_LOG_JSON=1`.
//! - [`metrics`]: a process-wide Prometheus recorder and a router that serves it.
//! - [`shutdown_token`]: one cancellation token cancelled on SIGINT or SIGTERM.
//! - [`error`]: the one JSON error shape every HTTP API answers with.
//! - [`extract`]: JSON body, query and client-address extractors rejecting with it, and the
//!   fallbacks for unknown routes and methods.
//! - [`service_main`]: the whole `main` of a service binary.
//! - [`shared`]: state several instances agree on (rate-limit buckets, cache invalidation),
//!   in Redis.
//! - [`redact_url`]: a connection string fit for logs.

pub mod error;
pub mod extract;
pub mod shared;

use std::net::SocketAddr;
use std::path::Path;

use axum::{routing::get, Router};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::sync::CancellationToken;

/// The whole `main` of a service binary: tracing, the config (`--config PATH` or the
/// `config_env` variable, then `env_prefix` variables), then `run` until SIGINT/SIGTERM. Any
/// error, a bad config included (each service checks its config once, where it starts), is
/// one line on stderr prefixed with `name`, and exit code 1.
pub async fn service_main<C, F, Fut>(
    name: &str,
    config_env: &str,
    env_prefix: &str,
    run: F,
) -> std::process::ExitCode
where
    C: DeserializeOwned + Serialize + Default,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_tracing();
    let path = config_path_from_args(config_env);
    let outcome = match load_config::<C>(path.as_deref(), env_prefix) {
        Ok(config) => run(config, shutdown_token()).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Loads a service config: defaults, then the TOML file (when given and present), then
/// environment variables with `env_prefix` (e.g. `CAUDAL_INGEST_`). `*_FILE` variables
/// name a file whose trimmed contents become the value of the field without the suffix.
pub fn load_config<T>(file: Option<&Path>, env_prefix: &str) -> anyhow::Result<T>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            anyhow::bail!("config file {} does not exist", path.display());
        }
        fig = fig.merge(Toml::file(path));
    }
    // secrets: FOO_FILE=/path -> FOO=<contents>
    let mut file_values = Vec::new();
    for (key, value) in std::env::vars() {
        if let Some(stripped) = key.strip_prefix(env_prefix) {
            if let Some(field) = stripped.strip_suffix("_FILE") {
                let contents = std::fs::read_to_string(&value)
                    .map_err(|e| anyhow::anyhow!("reading {key}={value}: {e}"))?;
                file_values.push((
                    field.to_ascii_lowercase().replace("__", "."),
                    contents.trim().to_string(),
                ));
            }
        }
    }
    fig = fig.merge(
        Env::prefixed(env_prefix)
            .split("__")
            .filter(|k| !k.as_str().ends_with("_file")),
    );
    for (field, value) in file_values {
        fig = fig.merge((field.as_str(), value));
    }
    fig.extract()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

/// Reads the config path from `--config PATH` or the `env_var` environment variable.
pub fn config_path_from_args(env_var: &str) -> Option<std::path::PathBuf> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--config" {
            return args.next().map(Into::into);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(p.into());
        }
    }
    std::env::var_os(env_var).map(Into::into)
}

/// Installs the global tracing subscriber. Safe to call more than once (tests).
pub fn init_tracing() {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("CAUDAL_LOG_JSON").is_ok_and(|v| v == "1");
    let res = if json {
        fmt().with_env_filter(filter).json().try_init()
    } else {
        fmt().with_env_filter(filter).try_init()
    };
    let _ = res;
}

pub mod metrics {
    use super::*;
    use std::sync::OnceLock;

    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

    /// The process-wide Prometheus recorder, installed on first use.
    pub fn handle() -> &'static PrometheusHandle {
        HANDLE.get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
    }

    /// A router serving `/metrics` in the Prometheus text format.
    pub fn router() -> Router {
        let h = handle();
        Router::new().route("/metrics", get(move || async move { h.render() }))
    }
}

/// A router with `/healthz` answering `ok`.
pub fn health_router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

/// A token cancelled when the process receives SIGINT or SIGTERM.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutdown signal received");
        t.cancel();
    });
    token
}

/// Binds `addr` and serves `router` until `shutdown` is cancelled.
/// Returns the bound address (useful with port 0) and the serving task.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let res = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "http server stopped with an error");
        }
    });
    Ok((local, task))
}

/// Serves the metrics router on `addr` (a separate port from the public API).
pub async fn serve_metrics(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve(addr, metrics::router().merge(health_router()), shutdown).await
}

/// Middleware counting requests (`{prefix}_http_requests_total`, by method, route template
/// and status) and timing them (`{prefix}_http_request_duration_seconds`). Labels are the
/// route template, never the path, so they stay bounded. Use with
/// `axum::middleware::from_fn_with_state("bff", service_kit::track_http)`.
pub async fn track_http(
    axum::extract::State(prefix): axum::extract::State<&'static str>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    ::metrics::counter!(format!("{prefix}_http_requests_total"), "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    ::metrics::histogram!(format!("{prefix}_http_request_duration_seconds"), "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// What a service's `run` does: starts the service with `start` (its `start(config,
/// shutdown)`, which checks the config first), then serves `/metrics` on `metrics_listen`, and
/// returns once `shutdown` fired and both stopped. If the metrics port cannot be bound, the
/// service is stopped and the error returned.
pub async fn run_with_metrics<F>(
    name: &str,
    metrics_listen: SocketAddr,
    shutdown: CancellationToken,
    start: F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)>>,
{
    // the service first: a bad configuration is reported as such, never hidden behind a
    // metrics port that happens to be taken
    let (_, api_task) = start.await?;
    let (metrics_addr, metrics_task) = match serve_metrics(metrics_listen, shutdown.clone()).await {
        Ok(v) => v,
        Err(e) => {
            shutdown.cancel();
            let _ = api_task.await;
            return Err(e);
        }
    };
    tracing::info!(addr = %metrics_addr, "metrics listening");
    let _ = api_task.await;
    let _ = metrics_task.await;
    tracing::info!("{name} stopped");
    Ok(())
}

/// A connection string fit for logs: `mysql://user:secret@host/db` -> `mysql://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let user = rest[..at].split(':').next().unwrap_or("");
    format!("{}://{}:***@{}", &url[..scheme_end], user, &rest[at + 1..])
}

/// The client's address, for rate limits. With `forwarded_hops` = 0 it is the peer. Behind
/// `forwarded_hops` proxies that each append the address they saw to `X-Forwarded-For`, it
/// is the entry that many places from the right: what the outermost proxy saw. Entries
/// further left were sent by the client and are never trusted (they can say anything).
/// With fewer entries than hops, the left-most is used.
pub fn client_addr(
    headers: &axum::http::HeaderMap,
    ext: &axum::http::Extensions,
    forwarded_hops: usize,
) -> String {
    if forwarded_hops > 0 {
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if !entries.is_empty() {
            let at = entries.len().saturating_sub(forwarded_hops);
            return entries[at].to_string();
        }
    }
    ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod client_addr_tests {
    use super::client_addr;
    use axum::http::{Extensions, HeaderMap, HeaderValue};

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_what_the_proxies_appended_is_believed() {
        let mut ext = Extensions::new();
        ext.insert(axum::extract::ConnectInfo(
            "10.1.2.3:5555".parse::<std::net::SocketAddr>().unwrap(),
        ));
        // no proxy: the peer, whatever the header says
        assert_eq!(client_addr(&headers(&["1.1.1.1"]), &ext, 0), "10.1.2.3");
        // one proxy appended the client's address; the client forged the rest
        let forged = headers(&["6.6.6.6, 7.7.7.7", "203.0.113.9"]);
        assert_eq!(client_addr(&forged, &ext, 1), "203.0.113.9");
        // CloudFront then a load balancer: the viewer is second from the right
        let cf = headers(&["6.6.6.6, 198.51.100.4, 130.176.0.1"]);
        assert_eq!(client_addr(&cf, &ext, 2), "198.51.100.4");
        assert_eq!(
            client_addr(&headers(&["198.51.100.4"]), &ext, 2),
            "198.51.100.4"
        );
        // no header: the peer
        assert_eq!(client_addr(&HeaderMap::new(), &ext, 1), "10.1.2.3");
        assert_eq!(
            client_addr(&HeaderMap::new(), &Extensions::new(), 1),
            "unknown"
        );
    }
}
