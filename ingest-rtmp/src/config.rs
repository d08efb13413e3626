use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use storage::StoreConfig;
use transcoder::LiveConfig;

/// ingest-rtmp settings. File: `--config FILE` or `CAUDAL_INGEST_CONFIG`; every field can be
/// overridden with `CAUDAL_INGEST_<FIELD>` (nested with `__`, e.g.
/// `CAUDAL_INGEST_TRANSCODE__SEGMENT_SECS=4`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// RTMP listen address (publishers connect here).
    pub rtmp_listen: SocketAddr,
    /// HTTP: `/healthz`, `/v1/streams` (live broadcasts) and, for low-latency broadcasts
    /// (`transcode.part_secs` > 0), the live origin the edge proxies (`/<media_prefix>/...`).
    pub http_listen: SocketAddr,
    /// Prometheus `/metrics`.
    pub metrics_listen: SocketAddr,
    /// RTMP application name: publishers use `rtmp://host/<app>/<key>`.
    pub app: String,
    /// user-svc base URL (stream-key checks).
    pub user_svc_url: String,
    /// metadata-svc base URL (the broadcast's video document).
    pub metadata_svc_url: String,
    /// Timeout of each call to user-svc or metadata-svc, ms.
    pub service_timeout_ms: u64,
    /// Where segments and playlists are stored.
    pub storage: StoreConfig,
    /// Key prefix of live broadcasts in storage: `<prefix>/<video id>/...`.
    pub media_prefix: String,
    /// The transcoding ladder and segmenting.
    pub transcode: LiveConfig,
    /// A connection must have its `publish` accepted within this time of connecting, s: one
    /// deadline for handshake, `connect` and `publish`, however slowly bytes trickle in.
    pub publish_deadline_secs: u64,
    /// A publisher that sends nothing for this long is closed (stalled publisher), s.
    pub idle_timeout_secs: u64,
    /// Bytes a connection may send after the handshake and before its `publish` is accepted.
    pub max_bytes_before_publish: usize,
    /// Largest RTMP video message (one FLV video tag); a publisher announcing a larger one is
    /// disconnected from the chunk header, before its payload is buffered. Audio messages are
    /// capped at 64 KiB, other messages at 256 KiB.
    pub max_video_tag_bytes: usize,
    /// Connections that have not published yet, in all; when full, the oldest is closed.
    pub max_pending_connections: usize,
    /// The same per client address.
    pub max_pending_per_ip: usize,
    /// Live publishers (authenticated); a publish beyond it is refused.
    pub max_publishers: usize,
    /// While live, the stream key is checked again this often, s: a revoked or rotated key
    /// ends its broadcast within this time plus one check.
    pub key_recheck_secs: u64,
    /// How often the media of deleted videos is looked for and deleted, s (0: never).
    pub cleanup_interval_secs: u64,
    /// A publisher that drops (no `deleteStream`) and publishes the same key again within
    /// this time continues the same video, s (0: every drop ends the broadcast).
    pub reconnect_window_secs: u64,
    /// A publish with a key that is live replaces the live publisher (the usual case is the
    /// same encoder reconnecting before its old connection timed out); false refuses it.
    pub takeover: bool,
    /// Redis URL for state shared by ingest instances (key leases, broadcast heartbeats);
    /// empty: this instance is alone.
    pub shared_state_url: String,
    /// This instance's name in the shared state; empty: a random one per start.
    pub instance_id: String,
    /// Where other instances reach this one's HTTP listener (its live origin), e.g.
    /// `http://10.0.1.5:8081`, recorded with each broadcast in the shared state. Empty:
    /// `http://<http_listen>`, or, when that is an unspecified address (0.0.0.0), this host's
    /// address towards the shared state.
    pub origin_url: String,
    /// A key's lease lapses this long after its instance stopped renewing it, s.
    pub lease_ttl_secs: u64,
    /// A broadcast whose instance sent no heartbeat for this long is finished by another
    /// instance from storage, s.
    pub reaper_timeout_secs: u64,
    /// The job queue (NATS JetStream) the transcode workers pull from: a recorded broadcast
    /// queues a job for its poster and storyboard. Empty `url`: none are made.
    pub jobs: jobs::JobsConfig,
    /// How often instances look for such broadcasts, s.
    pub reaper_interval_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rtmp_listen: "127.0.0.1:1935".parse().expect("valid address"),
            http_listen: "127.0.0.1:8081".parse().expect("valid address"),
            metrics_listen: "127.0.0.1:9081".parse().expect("valid address"),
            app: "live".into(),
            user_svc_url: "http://127.0.0.1:8082".into(),
            metadata_svc_url: "http://127.0.0.1:8083".into(),
            service_timeout_ms: 3000,
            storage: StoreConfig::default(),
            media_prefix: "live".into(),
            transcode: LiveConfig::default(),
            publish_deadline_secs: 10,
            idle_timeout_secs: 15,
            max_bytes_before_publish: 128 * 1024,
            max_video_tag_bytes: 8 << 20,
            max_pending_connections: 512,
            max_pending_per_ip: 16,
            max_publishers: 256,
            key_recheck_secs: 2,
            cleanup_interval_secs: 10,
            reconnect_window_secs: 10,
            takeover: true,
            shared_state_url: String::new(),
            instance_id: String::new(),
            origin_url: String::new(),
            lease_ttl_secs: 10,
            reaper_timeout_secs: 30,
            jobs: jobs::JobsConfig {
                url: String::new(),
                ..Default::default()
            },
            reaper_interval_secs: 5,
        }
    }
}
