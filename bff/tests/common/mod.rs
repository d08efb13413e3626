//! Helpers for bff's end-to-end tests: start bff against a real stack, check the playback
//! URLs it hands out, and a small JSON client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use service_clients::metadata::{
    AccessPolicy, NewVideo, PlaybackLocations, StatusChange, Video, VideoKind, VideoStatus,
    Visibility,
};
use test_stack::Stack;
use tokio_util::sync::CancellationToken;

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// An address nothing listens on.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind(any_port()).unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// A config for bff against the stack, the edge at `edge`.
pub fn config(stack: &Stack, edge: &str) -> bff::Config {
    let mut c = bff::Config::for_tests(
        &format!("http://{}", stack.users_addr),
        &format!("http://{}", stack.metadata_addr),
        edge,
    );
    // an instance that runs nothing, then the stack's
    c.ingest_urls = vec![
        "http://127.0.0.1:9".into(),
        format!("http://{}", stack.ingest_http),
    ];
    c
}

pub async fn start_bff(config: bff::Config, shutdown: &CancellationToken) -> Api {
    let (addr, _) = bff::start(config, shutdown.clone())
        .await
        .expect("bff starts");
    Api::new(addr)
}

/// The storage key a playback URL from bff opens at the edge `edge`: checks its token with
/// the test key of `bff::Config::for_tests`, as the edge does.
pub fn opens(url: &serde_json::Value, edge: &str) -> String {
    let url = url
        .as_str()
        .unwrap_or_else(|| panic!("no playback URL: {url}"));
    let path = url
        .strip_prefix(edge)
        .unwrap_or_else(|| panic!("{url} is not on the edge {edge}"));
    let keys =
        playback_token::Keys::parse(&format!("test={}", bff::config::TEST_PLAYBACK_SECRET), None)
            .unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    keys.verify_path(path, now)
        .unwrap_or_else(|e| panic!("{url}: the edge would refuse it: {e}"))
        .to_string()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub elapsed: Duration,
}

impl Answer {
    pub fn ok(self) -> Value {
        assert!(
            self.status.is_success(),
            "expected success, got {}: {}",
            self.status,
            self.body
        );
        self.body
    }

    /// Asserts the error shape and returns its code.
    pub fn error_code(&self) -> String {
        let code = self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.body));
        assert!(self.body["error"]["message"].is_string(), "{}", self.body);
        code.to_string()
    }
}

#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let t = Instant::now();
        let resp = req.send().await.expect("bff answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            status,
            headers,
            body,
            elapsed: t.elapsed(),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Method::GET, path, token, None, &[]).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.send(Method::POST, path, token, Some(body), &[]).await
    }

    /// Signs a new user up; returns (access token, user id).
    pub async fn signup(&self, name: &str) -> (String, String) {
        let email = format!("{}@example.com", test_stack::random_name(name));
        let a = self
            .post("/v1/auth/signup", None, json!({"email": email, "password": "correct horse battery staple", "display_name": name}))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        (
            a.body["access_token"].as_str().unwrap().to_string(),
            a.body["user"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// Signs a new creator up with a monthly plan; returns (token, id).
    pub async fn creator(&self, name: &str, plan: Option<(i64, &str)>) -> (String, String) {
        let (token, id) = self.signup(name).await;
        let me = self
            .post("/v1/me/become-creator", Some(&token), json!({}))
            .await
            .ok();
        assert_eq!(me["role"], "creator");
        if let Some((price, currency)) = plan {
            self.send(
                Method::PUT,
                "/v1/studio/plan",
                Some(&token),
                Some(json!({"price_minor": price, "currency": currency})),
                &[],
            )
            .await
            .ok();
        }
        (token, id)
    }
}

/// A video straight in the catalog, moved to `status` along the lifecycle.
pub async fn catalog_video(
    stack: &Stack,
    owner: &str,
    title: &str,
    access: AccessPolicy,
    status: VideoStatus,
) -> Video {
    let live = matches!(
        status,
        VideoStatus::Live | VideoStatus::Ended | VideoStatus::Recorded
    );
    let id = test_stack::random_name("v");
    let new = NewVideo {
        id: Some(id.clone()),
        owner_id: owner.into(),
        kind: if live {
            VideoKind::Live
        } else {
            VideoKind::Upload
        },
        title: title.into(),
        description: "a test video".into(),
        tags: vec!["test".into()],
        visibility: Visibility::Public,
        access,
        status: Some(if live {
            VideoStatus::Live
        } else {
            VideoStatus::Created
        }),
        started_at: live.then(chrono::Utc::now),
        // as ingest records them once the stream is playable
        renditions: vec![service_clients::metadata::Rendition {
            name: "720p".into(),
            width: 1280,
            height: 720,
            bandwidth: 3_000_000,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            frame_rate: 30.0,
            playlist: format!("live/{id}/720p/index.m3u8"),
        }],
        playback: PlaybackLocations {
            master: Some(format!("live/{id}/master.m3u8")),
            vod_master: None,
            low_latency: None,
        },
    };
    let mut v = stack
        .metadata
        .create_video(&new)
        .await
        .expect("video created");
    let path: &[VideoStatus] = match status {
        VideoStatus::Live | VideoStatus::Created => &[],
        VideoStatus::Ended => &[VideoStatus::Ended],
        VideoStatus::Recorded => &[VideoStatus::Ended, VideoStatus::Recorded],
        VideoStatus::Ready => &[
            VideoStatus::Uploading,
            VideoStatus::Processing,
            VideoStatus::Ready,
        ],
        other => panic!("not needed: {other:?}"),
    };
    for s in path {
        let mut change = StatusChange {
            status: Some(*s),
            ..Default::default()
        };
        if *s == VideoStatus::Recorded {
            change.playback = Some(PlaybackLocations {
                master: None,
                vod_master: Some(format!("live/{id}/vod.m3u8")),
                low_latency: None,
            });
            change.duration_secs = Some(12.0);
        }
        v = stack
            .metadata
            .change_status(&id, &change)
            .await
            .expect("status changed");
    }
    v
}
