//! The live origin for low-latency HLS: serves each broadcast's live edge
//! ([`transcoder::lowlatency::LlStream`]) from memory, at the object keys the edge proxies:
//!
//! - `/<prefix>/<id>/ll.m3u8`: the master playlist over the rungs' low-latency playlists;
//! - `/<prefix>/<id>/<rung>/ll.m3u8`: a media playlist, with blocking reloads (`_HLS_msn`,
//!   `_HLS_part`) and delta updates (`_HLS_skip=YES`);
//! - `/<prefix>/<id>/<rung>/ll_<msn>.m4s`, `ll_<msn>_<part>.m4s`, `ll_init_<hash>.mp4`:
//!   segments, parts (the hinted next part is held for until it exists) and init sections.
//!
//! A request for a broadcast another instance runs (cluster mode) is forwarded to that
//! instance's live origin, found in the shared state, so a balancer may send any request to any
//! instance. Forwarded requests carry `x-caudal-forwarded` and are never forwarded again.
//!
//! Finished segments also go to object storage as today: the recording and standard HLS
//! players never depend on this origin.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use transcoder::lowlatency::{LlError, LlStream, Reload};

use crate::cluster::Cluster;

/// Live edges by storage prefix (`live/<video id>`).
#[derive(Default)]
pub(crate) struct Origins {
    streams: Mutex<HashMap<String, Arc<LlStream>>>,
}

impl Origins {
    pub fn add(&self, prefix: &str, ll: Arc<LlStream>) {
        self.streams
            .lock()
            .expect("origins lock")
            .insert(prefix.to_string(), ll);
    }

    /// Forgets `prefix` after `linger` (players still polling see the ENDLIST meanwhile),
    /// unless another broadcast took the prefix since.
    pub fn remove_later(self: &Arc<Self>, prefix: String, ll: Arc<LlStream>, linger: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            let mut map = me.streams.lock().expect("origins lock");
            if map.get(&prefix).is_some_and(|cur| Arc::ptr_eq(cur, &ll)) {
                map.remove(&prefix);
            }
        });
    }

    fn get(&self, prefix: &str) -> Option<Arc<LlStream>> {
        self.streams
            .lock()
            .expect("origins lock")
            .get(prefix)
            .cloned()
    }
}

/// The routes under `/<media_prefix>/`. With `cluster`, requests for broadcasts of other
/// instances are forwarded to them (held at most `forward_timeout`).
pub(crate) fn router(
    media_prefix: &str,
    origins: Arc<Origins>,
    cluster: Option<Cluster>,
    forward_timeout: Duration,
) -> Router {
    let base = format!("/{}", media_prefix.trim_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(forward_timeout)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client");
    Router::new()
        .route(&format!("{base}/{{id}}/ll.m3u8"), get(master))
        .route(&format!("{base}/{{id}}/{{rung}}/{{file}}"), get(media))
        .with_state(Arc::new(Routes {
            prefix: media_prefix.trim_matches('/').to_string(),
            origins,
            cluster,
            client,
        }))
}

/// Where other instances reach this one's HTTP listener: `origin_url` when set, else the bound
/// address, or for an unspecified one (0.0.0.0) this host's address towards the shared state.
pub(crate) fn advertised(cfg: &crate::Config, bound: SocketAddr) -> String {
    if !cfg.origin_url.is_empty() {
        return cfg.origin_url.trim_end_matches('/').to_string();
    }
    let mut addr = bound;
    if addr.ip().is_unspecified() {
        // the interface this host uses towards the shared state is one the others can reach
        let towards = reqwest::Url::parse(&cfg.shared_state_url)
            .ok()
            .and_then(|u| Some((u.host_str()?.to_string(), u.port().unwrap_or(6379))));
        if let Some(ip) = towards.and_then(|(host, port)| {
            let target = (host.as_str(), port).to_socket_addrs().ok()?.next()?;
            let sock = UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).ok()?;
            sock.connect(target).ok()?;
            Some(sock.local_addr().ok()?.ip())
        }) {
            addr.set_ip(ip);
        }
    }
    format!("http://{addr}")
}

struct Routes {
    prefix: String,
    origins: Arc<Origins>,
    cluster: Option<Cluster>,
    client: reqwest::Client,
}

const FORWARDED: &str = "x-caudal-forwarded";

impl Routes {
    fn stream(&self, id: &str) -> Result<Arc<LlStream>, Fail> {
        self.origins
            .get(&format!("{}/{id}", self.prefix))
            .ok_or(Fail(LlError::NotFound))
    }

    /// The answer of the instance that runs broadcast `id`, when it is another one; None when
    /// no other instance runs it (or this request was forwarded already).
    async fn forward(
        &self,
        id: &str,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
    ) -> Option<Response> {
        let cluster = self.cluster.as_ref()?;
        if headers.contains_key(FORWARDED) {
            return None;
        }
        let origin = match cluster.origin_of(id).await {
            Ok(o) => o?,
            Err(e) => {
                tracing::warn!(video_id = id, error = %e, "cannot look up the broadcast's instance");
                return None;
            }
        };
        let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        metrics::counter!("caudal_ll_forwarded_total").increment(1);
        let answer = self
            .client
            .get(format!("{origin}{path}"))
            .header(FORWARDED, "1")
            .send()
            .await;
        let r = match answer {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(video_id = id, %origin, error = %e, "the broadcast's instance did not answer");
                return Some(failure(LlError::Timeout));
            }
        };
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let keep = |name: header::HeaderName| {
            r.headers()
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = keep(header::CONTENT_TYPE);
        let cache = keep(header::CACHE_CONTROL);
        let body = match r.bytes().await {
            Ok(b) => b,
            Err(_) => return Some(failure(LlError::Timeout)),
        };
        let mut resp = (status, body).into_response();
        for (name, value) in [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ] {
            if let Some(v) = value.and_then(|v| v.parse().ok()) {
                resp.headers_mut().insert(name, v);
            }
        }
        Some(resp)
    }
}

/// The blocking-reload query (RFC 8216bis 6.2.5.1): kept as text so that a malformed number
/// is a 400 of ours, not a rejection by the extractor.
#[derive(Debug, Default, Deserialize)]
struct ReloadQuery {
    #[serde(rename = "_HLS_msn")]
    msn: Option<String>,
    #[serde(rename = "_HLS_part")]
    part: Option<String>,
    #[serde(rename = "_HLS_skip")]
    skip: Option<String>,
}

impl ReloadQuery {
    fn parse(&self) -> Result<Reload, Fail> {
        let bad = |what: &'static str| Fail(LlError::BadRequest(what));
        Ok(Reload {
            msn: match &self.msn {
                Some(v) => Some(v.parse().map_err(|_| bad("_HLS_msn is not a number"))?),
                None => None,
            },
            part: match &self.part {
                Some(v) => Some(v.parse().map_err(|_| bad("_HLS_part is not a number"))?),
                None => None,
            },
            skip: matches!(self.skip.as_deref(), Some("YES" | "v2")),
        })
    }
}

const PLAYLIST: &str = "application/vnd.apple.mpegurl";

fn bad_request(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        format!("{why}\n"),
    )
        .into_response()
}

/// An error answer of the live origin.
struct Fail(LlError);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        failure(self.0)
    }
}

fn failure(e: LlError) -> Response {
    match e {
        LlError::BadRequest(why) => bad_request(why),
        LlError::NotFound => (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "max-age=1")],
            "not found\n",
        )
            .into_response(),
        LlError::Timeout => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CACHE_CONTROL, "no-store")],
            "not there within three target durations\n",
        )
            .into_response(),
    }
}

fn playlist(text: String, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, PLAYLIST),
            (header::CACHE_CONTROL, cache),
        ],
        text,
    )
        .into_response()
}

fn media_bytes(body: Bytes, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // a part, segment or init section never changes once it exists
            (header::CACHE_CONTROL, "public, max-age=300, immutable"),
        ],
        body,
    )
        .into_response()
}

async fn master(
    State(r): State<Arc<Routes>>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Fail> {
    let ll = match r.stream(&id) {
        Ok(ll) => ll,
        Err(e) => return r.forward(&id, &uri, &headers).await.ok_or(e),
    };
    let text = ll.master().ok_or(Fail(LlError::NotFound))?;
    Ok(playlist(text, "max-age=2"))
}

/// What a file name under a rung asks for.
#[derive(Debug, PartialEq)]
enum File<'a> {
    Playlist,
    Segment(u64),
    Part(u64, usize),
    Init(&'a str),
}

fn parse_file(file: &str) -> Option<File<'_>> {
    if file == "ll.m3u8" {
        return Some(File::Playlist);
    }
    let rest = file.strip_prefix("ll_")?;
    if let Some(init) = rest.strip_prefix("init_").filter(|r| r.ends_with(".mp4")) {
        let name = &file[3..];
        return init
            .trim_end_matches(".mp4")
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
            .then_some(File::Init(name));
    }
    let stem = rest.strip_suffix(".m4s")?;
    match stem.split_once('_') {
        Some((msn, part)) => Some(File::Part(msn.parse().ok()?, part.parse().ok()?)),
        None => Some(File::Segment(stem.parse().ok()?)),
    }
}

async fn media(
    State(r): State<Arc<Routes>>,
    Path((id, rung, file)): Path<(String, String, String)>,
    Query(query): Query<ReloadQuery>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Fail> {
    let file = parse_file(&file).ok_or(Fail(LlError::NotFound))?;
    let kind = match &file {
        File::Playlist if query.msn.is_some() => "blocking_playlist",
        File::Playlist => "playlist",
        File::Segment(_) => "segment",
        File::Part(..) => "part",
        File::Init(_) => "init",
    };
    let ll = match r.stream(&id) {
        Ok(ll) => ll,
        Err(e) => return r.forward(&id, &uri, &headers).await.ok_or(e),
    };
    // what the edge asks of this origin: with the edge collapsing, about one of each per part
    metrics::counter!("caudal_ll_origin_requests_total", "kind" => kind).increment(1);
    Ok(match file {
        File::Playlist => {
            let reload = query.parse()?;
            let blocking = reload.msn.is_some();
            let text = ll.blocking_playlist(&rung, reload).await.map_err(Fail)?;
            // an answer to a blocking request stays a valid answer to it: the edge may keep it
            // while players ask for the same msn/part
            playlist(text, if blocking { "max-age=6" } else { "max-age=1" })
        }
        File::Segment(msn) => {
            media_bytes(ll.segment(&rung, msn).map_err(Fail)?, "video/iso.segment")
        }
        File::Part(msn, part) => media_bytes(
            ll.part_bytes(&rung, msn, part).await.map_err(Fail)?,
            "video/iso.segment",
        ),
        File::Init(name) => media_bytes(ll.init(&rung, name).map_err(Fail)?, "video/mp4"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_read_strictly() {
        assert_eq!(parse_file("ll.m3u8"), Some(File::Playlist));
        assert_eq!(parse_file("ll_00012.m4s"), Some(File::Segment(12)));
        assert_eq!(parse_file("ll_00012_3.m4s"), Some(File::Part(12, 3)));
        assert_eq!(
            parse_file("ll_init_00ff00ff00ff00ff.mp4"),
            Some(File::Init("init_00ff00ff00ff00ff.mp4"))
        );
        for bad in [
            "index.m3u8",
            "seg_00001.m4s",
            "ll_x.m4s",
            "ll_1_x.m4s",
            "ll_1_2_3.m4s",
            "ll_init_../x.mp4",
            "ll_00012.ts",
        ] {
            assert_eq!(parse_file(bad), None, "{bad}");
        }
    }
}
