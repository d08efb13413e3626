//! The real stack for end-to-end tests: metadata-svc against the MongoDB-compatible server,
//! user-svc against MariaDB (a fresh database per stack), ingest-rtmp with a chosen store,
//! all in-process on port 0. The servers themselves are started once per run by
//! `scripts/test.sh`, which exports their addresses; a test without them fails loudly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use service_clients::metadata::MetadataClient;
use service_clients::users::UserClient;
use sqlx::Connection;
use storage::{DynStore, S3Config, StoreConfig};
use tokio_util::sync::CancellationToken;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts MariaDB, the MongoDB-compatible server and s3s-fs")
    })
}

pub fn random_name(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A fresh MariaDB database for one test; its URL.
pub async fn fresh_mysql_database() -> String {
    let base = env("DATABASE_URL");
    let name = random_name("caudal_test_");
    let mut conn = sqlx::MySqlConnection::connect(&base)
        .await
        .expect("connect to MariaDB");
    sqlx::query(&format!("CREATE DATABASE `{name}`"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL ends with /database");
    format!("{server}/{name}")
}

/// An S3 store config on the test server, in a new bucket.
pub fn s3_store_config() -> StoreConfig {
    StoreConfig::S3(S3Config {
        endpoint: env("CAUDAL_TEST_S3_ENDPOINT"),
        region: std::env::var("CAUDAL_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
        bucket: random_name("media-"),
        path_style: true,
        access_key_id: std::env::var("CAUDAL_TEST_S3_ACCESS_KEY")
            .unwrap_or_else(|_| "caudal".into()),
        secret_access_key: std::env::var("CAUDAL_TEST_S3_SECRET_KEY")
            .unwrap_or_else(|_| "caudalsecret".into()),
        prefix: String::new(),
        create_bucket: true,
    })
}

pub struct Stack {
    pub dir: tempfile::TempDir,
    /// Stops metadata-svc and user-svc.
    pub shutdown: CancellationToken,
    /// Stops ingest only.
    pub ingest_shutdown: CancellationToken,
    pub metadata_addr: SocketAddr,
    pub users_addr: SocketAddr,
    /// user-svc's database (a fresh one per stack).
    pub users_db_url: String,
    pub ingest: ingest_rtmp::Running,
    pub rtmp_addr: SocketAddr,
    pub ingest_http: SocketAddr,
    pub store: DynStore,
    pub demo_key: String,
    pub demo_email: String,
    pub demo_password: String,
    pub metadata: MetadataClient,
    pub users: UserClient,
}

#[derive(Default)]
pub struct StackOptions {
    pub transcode: transcoder::LiveConfig,
    /// None: a local folder inside the stack's temp dir.
    pub storage: Option<StoreConfig>,
    /// Changes to ingest's test config (e.g. `takeover`), applied last.
    pub ingest: Option<fn(&mut ingest_rtmp::Config)>,
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("valid")
}

impl Stack {
    pub async fn start(opts: StackOptions) -> Stack {
        service_kit::init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let shutdown = CancellationToken::new();
        let meta_cfg = metadata_svc::Config {
            listen: any_port(),
            metrics_listen: any_port(),
            mongo_url: env("CAUDAL_MONGO_URL"),
            database: random_name("caudal_test_"),
            ..Default::default()
        };
        let (metadata_addr, _) = metadata_svc::start(meta_cfg, shutdown.clone())
            .await
            .expect("metadata-svc starts");
        let demo_key = random_name("live_demo_");
        let demo_email = format!("{}@example.com", random_name("demo"));
        let demo_password = "correct horse battery staple".to_string();
        let users_db_url = fresh_mysql_database().await;
        let mut user_cfg = user_svc::Config::for_tests(&users_db_url);
        user_cfg.demo = user_svc::config::DemoConfig {
            enabled: true,
            email: demo_email.clone(),
            password: demo_password.clone(),
            display_name: "Demo Creator".into(),
            stream_key: demo_key.clone(),
        };
        let (users_addr, _) = user_svc::start(user_cfg, shutdown.clone())
            .await
            .expect("user-svc starts");
        let storage = opts.storage.unwrap_or_else(|| StoreConfig::Local {
            root: dir.path().join("media"),
        });
        let store = storage.open().await.expect("open the store");
        let ingest_cfg = ingest_rtmp::Config {
            rtmp_listen: any_port(),
            http_listen: any_port(),
            metrics_listen: any_port(),
            user_svc_url: format!("http://{users_addr}"),
            metadata_svc_url: format!("http://{metadata_addr}"),
            storage,
            transcode: transcoder::LiveConfig {
                spool_dir: dir.path().join("spool"),
                ..opts.transcode
            },
            publish_deadline_secs: 5,
            idle_timeout_secs: 3,
            key_recheck_secs: 1,
            cleanup_interval_secs: 1,
            ..Default::default()
        };
        let mut ingest_cfg = ingest_cfg;
        if let Some(change) = opts.ingest {
            change(&mut ingest_cfg);
        }
        // ingest stops first (Stack::stop): its last metadata updates need metadata-svc up
        let ingest_shutdown = CancellationToken::new();
        let ingest = ingest_rtmp::start(ingest_cfg, ingest_shutdown.clone())
            .await
            .expect("ingest starts");
        Stack {
            rtmp_addr: ingest.rtmp_addr,
            ingest_http: ingest.http_addr,
            ingest,
            dir,
            shutdown,
            ingest_shutdown,
            metadata_addr,
            users_addr,
            users_db_url,
            store,
            demo_key,
            demo_email,
            demo_password,
            metadata: MetadataClient::new(
                &format!("http://{metadata_addr}"),
                Duration::from_secs(5),
            )
            .unwrap(),
            users: UserClient::new(&format!("http://{users_addr}"), Duration::from_secs(5))
                .unwrap(),
        }
    }

    /// Runs one statement on user-svc's database, as time passing would (e.g. a paid period
    /// ending); returns the rows it changed.
    pub async fn users_sql(&self, sql: &str) -> u64 {
        let mut conn = sqlx::MySqlConnection::connect(&self.users_db_url)
            .await
            .expect("connect to user-svc's database");
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .expect("statement runs")
            .rows_affected()
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp_addr)
    }

    /// Live broadcasts as ingest reports them.
    pub async fn live_streams(&self) -> Vec<serde_json::Value> {
        let body = reqwest_get(&format!("http://{}/v1/streams", self.ingest_http)).await;
        serde_json::from_str(&body).expect("json list")
    }

    /// Waits for an object to exist in the store.
    pub async fn wait_object(&self, key: &str, within: Duration) -> bytes::Bytes {
        let t = Instant::now();
        loop {
            if let Ok(b) = self.store.get(key).await {
                return b;
            }
            assert!(
                t.elapsed() < within,
                "{key} did not appear within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops ingest (which finishes its broadcasts and their metadata), then the services.
    pub async fn stop(self) {
        self.ingest_shutdown.cancel();
        if tokio::time::timeout(Duration::from_secs(30), self.ingest.wait())
            .await
            .is_err()
        {
            eprintln!("test-stack: ingest did not stop within 30 s");
        }
        self.shutdown.cancel();
    }
}

/// The real nginx edge (`cdn-config/render.sh`, local-folder origin) over a media folder,
/// checking playback tokens signed with `keys` (`kid=secret,...`). Stopped when dropped.
pub struct Edge {
    pub url: String,
    /// The edge's folder: `logs/access.log`, `logs/origin.log` (one line per origin fetch).
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Edge {
    pub async fn start(media: &Path, keys: &str) -> Edge {
        // the origin's unix socket path must stay short: a folder under /tmp
        let dir = tempfile::Builder::new()
            .prefix("caudal-edge-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let port = std::net::TcpListener::bind(any_port())
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let render = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cdn-config/render.sh");
        let out = Command::new("bash")
            .arg(&render)
            .arg(dir.path())
            .arg(port.to_string())
            .arg("local")
            .arg(media)
            .env("CAUDAL_PLAYBACK_KEYS", keys)
            .env("CAUDAL_EDGE_WORKERS", "1")
            .output()
            .expect("bash runs cdn-config/render.sh");
        assert!(
            out.status.success(),
            "cdn-config/render.sh failed (is nginx installed? scripts/test.sh installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = dir.path().join("nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx runs");
        let t = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the nginx edge did not listen on port {port} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Edge {
            url: format!("http://127.0.0.1:{port}"),
            dir,
            child,
        }
    }

    /// Lines of the origin's log (local mode: one per object the edge fetched).
    pub fn origin_fetches(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("logs/origin.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would leave them serving the port)
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn reqwest_get(url: &str) -> String {
    // tiny HTTP/1.0 GET over tokio, to keep this crate free of an HTTP client
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// A synthetic publisher: ffmpeg encoding test patterns and a tone, in real time, to RTMP.
pub struct Publisher {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub secs: u32,
    /// Keyframe interval in frames (OBS "auto" = 250).
    pub gop: u32,
    pub bframes: u32,
    pub sample_rate: u32,
    pub channels: u32,
    pub video_codec: &'static str,
}

impl Default for Publisher {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            secs: 15,
            gop: 60,
            bframes: 0,
            sample_rate: 48000,
            channels: 2,
            video_codec: "libx264",
        }
    }
}

impl Publisher {
    pub fn spawn(&self, url: &str) -> Child {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args([
                "-f",
                "lavfi",
                "-i",
                &format!(
                    "testsrc2=size={}x{}:rate={}",
                    self.width, self.height, self.fps
                ),
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                &format!("sine=frequency=440:sample_rate={}", self.sample_rate),
            ])
            .args(["-t", &self.secs.to_string(), "-c:v", self.video_codec]);
        if self.video_codec == "libx264" {
            cmd.args([
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-profile:v",
                "high",
                "-pix_fmt",
                "yuv420p",
            ])
            .args([
                "-g",
                &self.gop.to_string(),
                "-bf",
                &self.bframes.to_string(),
                "-b:v",
                "3000k",
            ]);
        }
        cmd.args([
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-ac",
            &self.channels.to_string(),
            "-f",
            "flv",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        cmd.spawn()
            .expect("ffmpeg must be installed (scripts/test.sh installs it)")
    }
}

/// Waits for a child process, killing it after `within`. Returns (success, stderr).
pub async fn wait_child(mut child: Child, within: Duration) -> (bool, String) {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.success(), err);
        }
        if t.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            return (false, "killed after timeout".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// ffprobe of a file: streams (type, width, height) and the format's start time/duration.
pub fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height,sample_rate,channels:format=start_time,duration", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// Writes bytes to a temp file under `dir` and probes it.
pub fn ffprobe_bytes(dir: &Path, name: &str, bytes: &[u8]) -> serde_json::Value {
    let p: PathBuf = dir.join(name.replace('/', "_"));
    std::fs::write(&p, bytes).expect("write probe file");
    let v = ffprobe(&p);
    let _ = std::fs::remove_file(&p);
    v
}
