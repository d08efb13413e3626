//! Shared by the integration tests: a random database on the server at `CAUDAL_MONGO_URL`
//! (dropped when the guard drops, panics included) and the service started in-process.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use metadata_svc::Config;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use service_clients::metadata::MetadataClient;
use tokio_util::sync::CancellationToken;

pub fn mongo_url() -> String {
    std::env::var("CAUDAL_MONGO_URL").unwrap_or_else(|_| {
        panic!(
            "CAUDAL_MONGO_URL is not set: these tests need a MongoDB-compatible server, e.g. \
             CAUDAL_MONGO_URL='mongodb://127.0.0.1:27117/?directConnection=true' (scripts/test.sh exports it)"
        )
    })
}

/// A database of its own, dropped at the end of the test.
pub struct TestDb {
    pub url: String,
    pub name: String,
}

impl TestDb {
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            url: mongo_url(),
            name: format!("caudal_test_meta_{}", &id[..12]),
        }
    }

    pub fn config(&self) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            mongo_url: self.url.clone(),
            database: self.name.clone(),
            ..Config::default()
        }
    }

    pub async fn database(&self) -> mongodb::Database {
        mongodb::Client::with_uri_str(&self.url)
            .await
            .expect("mongo client")
            .database(&self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // drop may run inside a runtime: use a thread with its own
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(client) = mongodb::Client::with_uri_str(&url).await {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        client.database(&name).drop(),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

/// The service running in-process over real HTTP.
pub struct Svc {
    pub base: String,
    pub http: reqwest::Client,
    pub client: MetadataClient,
    shutdown: CancellationToken,
    // dropped last: the database goes after the service stops using it
    pub db: TestDb,
}

impl Svc {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            service_kit::init_tracing();
        }
        let db = TestDb::new();
        let mut config = db.config();
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let (addr, _task) = metadata_svc::start(config, shutdown.clone())
            .await
            .expect("metadata-svc starts");
        let base = format!("http://{addr}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let client = MetadataClient::new(&base, Duration::from_secs(20)).unwrap();
        Self {
            base,
            http,
            client,
            shutdown,
            db,
        }
    }

    /// Sends a request and returns the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body read");
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a video from a JSON body and returns it (asserting 201).
    pub async fn create(&self, body: Value) -> Value {
        let (s, v) = self.post("/internal/v1/videos", body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Asserts the shared error shape and returns `(code, field)`.
pub fn error_of(body: &Value) -> (String, Option<String>) {
    let e = body
        .get("error")
        .unwrap_or_else(|| panic!("not an error body: {body}"));
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error has a message: {body}"
    );
    (
        e["code"].as_str().unwrap().to_string(),
        e["field"].as_str().map(String::from),
    )
}

pub fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}
