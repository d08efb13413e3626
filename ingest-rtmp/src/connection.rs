//! One RTMP connection: handshake, session, publish, media.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::flv::{self, AudioTag, FlvError, Timeline, VideoTag};
use bytes::Bytes;
use chrono::Utc;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use transcoder::{LiveTake, MediaInput, TakeFailure};

use crate::admission::Slot;
use crate::broadcast::{Broadcast, Live, Registry, TakeEnd};
use crate::chunks::{ChunkGauge, Limits};
use crate::health::Meter;
use crate::metadata;
use crate::{LiveEntry, Shared};

/// An AAC frame is at most 6144 bits per channel: 64 KiB is far beyond any audio message.
const MAX_AUDIO_TAG_BYTES: usize = 64 << 10;
/// Commands, metadata and control messages take a few KiB.
const MAX_OTHER_MESSAGE_BYTES: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake: {0:?}")]
    Handshake(rml_rtmp::handshake::HandshakeError),
    #[error("rtmp protocol: {0:?}")]
    Session(rml_rtmp::sessions::ServerSessionError),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("refused: {0}")]
    Refused(String),
    #[error("unsupported media: {0}")]
    Unsupported(FlvError),
    #[error("the RTMP parser failed on this input")]
    ParserPanic,
}

/// Runs a call into rml_rtmp, turning a panic in its parser (hostile input can trigger
/// arithmetic overflow there) into an error that closes only this connection, counted in
/// `caudal_rtmp_rejected_total{reason="parser_panic"}`. The session is dropped afterwards,
/// so its possibly inconsistent state is never used again.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ConnError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| {
        metrics::counter!("caudal_rtmp_rejected_total", "reason" => "parser_panic").increment(1);
        ConnError::ParserPanic
    })
}

struct Publishing {
    key_id: String,
    /// Stops the task that checks the key again while live.
    key_watch: CancellationToken,
    video_id: String,
    take: LiveTake,
    broadcast: Broadcast,
    timeline: Timeline,
    audio_refused: bool,
    meter: Meter,
}

struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    session: ServerSession,
    out: Vec<u8>,
    publishing: Option<Publishing>,
    close_after_write: Option<String>,
    /// Cancelled when the live key was revoked or rotated: the connection ends.
    key_revoked: CancellationToken,
    /// This connection's admission: pending until `publish` is accepted.
    slot: Slot,
    /// Cancelled when a newer publisher of the same key takes over.
    kicked: CancellationToken,
    /// How the take ends if the connection ends now.
    end: TakeEnd,
    /// Bytes received before `publish` was accepted.
    bytes_before_publish: usize,
    /// Reads the chunk headers rml_rtmp reads, to refuse oversized messages early.
    gauge: ChunkGauge,
}

pub async fn handle(mut socket: TcpStream, peer: SocketAddr, shared: Arc<Shared>, slot: Slot) {
    let _ = socket.set_nodelay(true);
    let result = serve(&mut socket, peer, shared, slot).await;
    match result {
        Ok(()) => tracing::info!(%peer, "rtmp connection closed"),
        Err(ConnError::Refused(why)) => {
            tracing::warn!(%peer, reason = %why, "rtmp publisher refused")
        }
        Err(e) => tracing::warn!(%peer, error = %e, "rtmp connection closed on error"),
    }
}

/// Reads until `deadline`; a connection closed to make room for a newer one ends here too.
async fn read_some(
    socket: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    evicted: &CancellationToken,
    what: &'static str,
) -> Result<usize, ConnError> {
    tokio::select! {
        r = tokio::time::timeout_at(deadline, socket.read(buf)) => match r {
            Ok(r) => Ok(r?),
            Err(_) => Err(ConnError::Timeout(what)),
        },
        _ = evicted.cancelled() => Err(ConnError::Refused("closed to make room: no publish yet".into())),
    }
}

async fn serve(
    socket: &mut TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: Slot,
) -> Result<(), ConnError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut hs = Handshake::new(PeerType::Server);
    let deadline = Instant::now() + Duration::from_secs(shared.cfg.publish_deadline_secs.max(1));
    let evicted = slot.evicted.clone();
    let remaining = loop {
        let n = read_some(
            socket,
            &mut buf,
            deadline,
            &evicted,
            "before publishing (handshake)",
        )
        .await?;
        if n == 0 {
            return Ok(());
        }
        let step = guarded(|| hs.process_bytes(&buf[..n]))?;
        match step.map_err(ConnError::Handshake)? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let (session, initial) =
        ServerSession::new(ServerSessionConfig::new()).map_err(ConnError::Session)?;
    let mut conn = Conn {
        shared: shared.clone(),
        peer,
        session,
        out: Vec::new(),
        publishing: None,
        close_after_write: None,
        key_revoked: CancellationToken::new(),
        slot,
        kicked: CancellationToken::new(),
        end: TakeEnd::Dropped,
        bytes_before_publish: 0,
        gauge: ChunkGauge::new(Limits {
            video: shared.cfg.max_video_tag_bytes,
            audio: MAX_AUDIO_TAG_BYTES,
            other: MAX_OTHER_MESSAGE_BYTES,
        }),
    };
    let key_revoked = conn.key_revoked.clone();
    let kicked = conn.kicked.clone();
    let res = async {
        conn.results(initial).await?;
        conn.input(&remaining).await?;
        conn.flush(socket).await?;
        let idle = Duration::from_secs(shared.cfg.idle_timeout_secs.max(1));
        let never = CancellationToken::new();
        loop {
            // before `publish`: the connection's one deadline, and it may be closed for a newer
            // one; once publishing: the idle timeout per read
            let (until, evictable, what) = if conn.publishing.is_some() {
                (Instant::now() + idle, &never, "waiting for data (stalled publisher)")
            } else {
                (deadline, &evicted, "before publishing")
            };
            let n = tokio::select! {
                _ = shared.shutdown.cancelled() => {
                    conn.end = TakeEnd::Final;
                    return Ok(());
                }
                _ = key_revoked.cancelled() => {
                    conn.end = TakeEnd::Final;
                    metrics::counter!("caudal_rtmp_rejected_total", "reason" => "key_revoked").increment(1);
                    return Err(ConnError::Refused("the stream key was revoked while live".into()));
                }
                _ = kicked.cancelled() => {
                    metrics::counter!("caudal_rtmp_takeovers_total").increment(1);
                    return Err(ConnError::Refused("a newer publisher of the same key took over".into()));
                }
                n = read_some(socket, &mut buf, until, evictable, what) => n?,
            };
            if n == 0 {
                return Ok(());
            }
            conn.input(&buf[..n]).await?;
            conn.flush(socket).await?;
        }
    }
    .await;
    if matches!(res, Err(ConnError::Unsupported(_))) {
        conn.end = TakeEnd::Final;
    }
    // a closed or stalled connection holds the broadcast for a reconnect
    let end = conn.end;
    conn.end_publish(end).await;
    res
}

impl Conn {
    async fn flush(&mut self, socket: &mut TcpStream) -> Result<(), ConnError> {
        if !self.out.is_empty() {
            socket.write_all(&self.out).await?;
            self.out.clear();
        }
        if let Some(why) = self.close_after_write.take() {
            let _ = socket.shutdown().await;
            return Err(ConnError::Refused(why));
        }
        Ok(())
    }

    async fn input(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.publishing.is_none() {
            // `connect` and `publish` take a few hundred bytes: a client sending more before
            // publishing is not an encoder (what rml_rtmp buffers stays small)
            self.bytes_before_publish += bytes.len();
            if self.bytes_before_publish > self.shared.cfg.max_bytes_before_publish {
                metrics::counter!("caudal_rtmp_rejected_total", "reason" => "pre_publish_bytes")
                    .increment(1);
                return Err(ConnError::Refused(format!(
                    "more than {} bytes before publishing",
                    self.shared.cfg.max_bytes_before_publish
                )));
            }
        }
        // refused from the chunk header, before rml_rtmp buffers the payload
        if let Err(e) = self.gauge.feed(bytes) {
            metrics::counter!("caudal_rtmp_rejected_total", "reason" => e.reason()).increment(1);
            return Err(ConnError::Refused(e.to_string()));
        }
        let session = &mut self.session;
        let results = guarded(|| session.handle_input(bytes))?.map_err(ConnError::Session)?;
        self.results(results).await
    }

    async fn results(&mut self, results: Vec<ServerSessionResult>) -> Result<(), ConnError> {
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => self.out.extend_from_slice(&p.bytes),
                ServerSessionResult::RaisedEvent(e) => Box::pin(self.event(e)).await?,
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn accept(&mut self, request_id: u32) -> Vec<ServerSessionResult> {
        self.session.accept_request(request_id).unwrap_or_default()
    }

    fn reject(&mut self, request_id: u32, code: &str, why: &str, reason_label: &'static str) {
        metrics::counter!("caudal_rtmp_rejected_total", "reason" => reason_label).increment(1);
        if let Ok(results) = self.session.reject_request(request_id, code, why) {
            for r in results {
                if let ServerSessionResult::OutboundResponse(p) = r {
                    self.out.extend_from_slice(&p.bytes);
                }
            }
        }
        self.close_after_write = Some(why.to_string());
    }

    async fn event(&mut self, e: ServerSessionEvent) -> Result<(), ConnError> {
        match e {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name.trim_matches('/') != self.shared.cfg.app {
                    let why = format!("unknown application {app_name:?}");
                    self.reject(
                        request_id,
                        "NetConnection.Connect.Rejected",
                        &why,
                        "unknown_app",
                    );
                    return Ok(());
                }
                let r = self.accept(request_id);
                Box::pin(self.results(r)).await?;
            }
            ServerSessionEvent::ReleaseStreamRequested { request_id, .. } => {
                let r = self.accept(request_id);
                Box::pin(self.results(r)).await?;
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                self.reject(
                    request_id,
                    "NetStream.Play.Failed",
                    "playback over RTMP is not offered; watch over HLS",
                    "play",
                );
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                self.publish(request_id, stream_key).await?;
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.end_publish(TakeEnd::Stopped).await
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Some(p) = self.publishing.as_mut() {
                    let fps = metadata.video_frame_rate.map(|f| f as f64);
                    p.meter.declared_frame_rate = fps;
                    p.take.push(MediaInput::SourceInfo { frame_rate: fps });
                }
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => self.video(data, timestamp.value)?,
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => self.audio(data, timestamp.value),
            _ => {}
        }
        Ok(())
    }

    async fn publish(&mut self, request_id: u32, raw_key: String) -> Result<(), ConnError> {
        if self.publishing.is_some() {
            self.reject(
                request_id,
                "NetStream.Publish.BadName",
                "this connection is already publishing",
                "second_publish",
            );
            return Ok(());
        }
        let key = raw_key.split('?').next().unwrap_or("").to_string();
        let owner = match self.shared.users.validate_stream_key(&key).await {
            Ok(Some(o)) => o,
            Ok(None) => {
                tracing::warn!(peer = %self.peer, key_hint = %mask(&key), "invalid or revoked stream key");
                self.reject(
                    request_id,
                    "NetStream.Publish.BadName",
                    "invalid stream key",
                    "invalid_key",
                );
                return Ok(());
            }
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "cannot check the stream key");
                self.reject(
                    request_id,
                    "NetStream.Publish.Failed",
                    "stream keys cannot be checked right now",
                    "user_svc_unavailable",
                );
                return Ok(());
            }
        };
        if !self.slot.publish() {
            tracing::warn!(peer = %self.peer, max = self.shared.cfg.max_publishers, "at publisher capacity");
            self.reject(
                request_id,
                "NetStream.Publish.Failed",
                "the server is at its publisher capacity",
                "at_capacity",
            );
            return Ok(());
        }
        // one publisher per key across instances: this instance must hold the key's lease
        if let Some(cluster) = &self.shared.cluster {
            match cluster.acquire(&owner.key_id).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(peer = %self.peer, owner = %owner.user_id, "stream key is live on another ingest instance");
                    self.reject(
                        request_id,
                        "NetStream.Publish.BadName",
                        "this stream key is already live",
                        "already_live_elsewhere",
                    );
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(peer = %self.peer, error = %e, "cannot take the key's lease");
                    self.reject(
                        request_id,
                        "NetStream.Publish.Failed",
                        "stream keys cannot be checked right now",
                        "shared_state_unavailable",
                    );
                    return Ok(());
                }
            }
        }
        let new_video_id = uuid::Uuid::now_v7().simple().to_string();
        let cfg = &self.shared.cfg;
        // the live broadcast of this key, if any, gives way (the same encoder reconnecting
        // before its old connection timed out); a held one is continued
        let give_way_until = Instant::now() + Duration::from_secs(5);
        let (entry, resumed) = loop {
            {
                let mut reg = self.shared.registry.lock().expect("registry lock");
                match reg.live.get(&owner.key_id) {
                    Some(live) if cfg.takeover && Instant::now() < give_way_until => {
                        live.kick.cancel();
                    }
                    Some(_) => {
                        drop(reg);
                        tracing::warn!(peer = %self.peer, owner = %owner.user_id, "stream key is already live");
                        self.reject(
                            request_id,
                            "NetStream.Publish.BadName",
                            "this stream key is already live",
                            "already_live",
                        );
                        return Ok(());
                    }
                    None => {
                        let resumed = reg.resume(&owner.key_id);
                        let entry = match &resumed {
                            Some(b) => b.entry.clone(),
                            None => LiveEntry {
                                video_id: new_video_id.clone(),
                                owner_id: owner.user_id.clone(),
                                started_at: Utc::now(),
                                master_playlist: format!(
                                    "{}/{}/master.m3u8",
                                    cfg.media_prefix, new_video_id
                                ),
                                reconnecting: false,
                                health: None,
                            },
                        };
                        reg.live.insert(
                            owner.key_id.clone(),
                            Live {
                                entry: entry.clone(),
                                kick: self.kicked.clone(),
                            },
                        );
                        break (entry, resumed);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let video_id = entry.video_id.clone();
        let prefix = format!("{}/{}", cfg.media_prefix, video_id);
        let resuming = resumed.is_some();
        let broadcast = match resumed {
            Some(b) => Ok(b),
            None => {
                let video = metadata::new_live_video(
                    &video_id,
                    &owner,
                    entry.started_at,
                    entry.master_playlist.clone(),
                );
                Broadcast::start(&self.shared, owner.key_id.clone(), video, entry, prefix).await
            }
        };
        let mut broadcast = match broadcast {
            Ok(b) => b,
            Err(e) => {
                self.refuse_transcoder(request_id, &owner.key_id, &e);
                return Ok(());
            }
        };
        let take = match broadcast.inner.take().await {
            Ok(t) => t,
            Err(e) => {
                self.refuse_transcoder(request_id, &owner.key_id, &e);
                self.shared.tasks.spawn(broadcast.finish());
                return Ok(());
            }
        };
        let key_watch = CancellationToken::new();
        self.shared.tasks.spawn(watch_key(
            self.shared.clone(),
            key,
            owner.key_id.clone(),
            key_watch.clone(),
            self.key_revoked.clone(),
        ));
        metrics::gauge!("caudal_rtmp_live_streams").increment(1.0);
        if resuming {
            metrics::counter!("caudal_rtmp_resumed_total").increment(1);
        }
        tracing::info!(
            peer = %self.peer,
            video_id,
            owner = %owner.user_id,
            take = broadcast.inner.takes(),
            resuming,
            "publish started"
        );
        self.publishing = Some(Publishing {
            key_id: owner.key_id,
            key_watch,
            video_id,
            take,
            broadcast,
            timeline: Timeline::new(),
            audio_refused: false,
            meter: Meter::new(),
        });
        let r = self.accept(request_id);
        Box::pin(self.results(r)).await
    }

    fn video(&mut self, data: Bytes, ts: u32) -> Result<(), ConnError> {
        let Some(p) = self.publishing.as_mut() else {
            return Ok(());
        };
        match p.take.failure() {
            None => {}
            Some(TakeFailure::Refused(why)) => {
                metrics::counter!("caudal_rtmp_rejected_total", "reason" => "source_refused")
                    .increment(1);
                self.end = TakeEnd::Final;
                return Err(ConnError::Refused(why.clone()));
            }
            Some(TakeFailure::Failed(why)) => {
                metrics::counter!("caudal_rtmp_rejected_total", "reason" => "pipeline_failed")
                    .increment(1);
                self.end = TakeEnd::Final;
                return Err(ConnError::Refused(format!(
                    "the media pipeline failed: {why}"
                )));
            }
        }
        match flv::parse_video(&data) {
            Ok(VideoTag::SequenceHeader(avcc)) => {
                p.take.push(MediaInput::VideoConfig(avcc));
            }
            Ok(VideoTag::Frame {
                keyframe,
                cts_ms,
                data,
            }) => {
                let dts_ms = p.timeline.map(ts);
                p.meter.video(data.len(), dts_ms, keyframe);
                p.take.push(MediaInput::Video {
                    dts_ms,
                    cts_ms,
                    keyframe,
                    data,
                });
            }
            Ok(VideoTag::EndOfSequence | VideoTag::Command) => {}
            Err(e @ FlvError::UnsupportedVideoCodec(_)) => {
                metrics::counter!("caudal_rtmp_rejected_total", "reason" => "unsupported_codec")
                    .increment(1);
                return Err(ConnError::Unsupported(e));
            }
            Err(e) => {
                metrics::counter!("caudal_rtmp_bad_tags_total").increment(1);
                tracing::debug!(error = %e, "skipping a malformed video tag");
            }
        }
        self.report_health();
        Ok(())
    }

    fn audio(&mut self, data: Bytes, ts: u32) {
        let Some(p) = self.publishing.as_mut() else {
            return;
        };
        match flv::parse_audio(&data) {
            Ok(AudioTag::SequenceHeader(asc)) => {
                p.take.push(MediaInput::AudioConfig(asc));
            }
            Ok(AudioTag::Frame(frame)) => {
                let pts_ms = p.timeline.map(ts);
                p.meter.audio(frame.len(), pts_ms);
                p.take.push(MediaInput::Audio {
                    pts_ms,
                    data: frame,
                });
            }
            Err(e) => {
                if !p.audio_refused {
                    p.audio_refused = true;
                    tracing::warn!(video_id = %p.video_id, error = %e, "audio ignored");
                }
            }
        }
    }

    /// The transcoder could not start for an accepted key: the key is free again and the
    /// publisher is told.
    fn refuse_transcoder(&mut self, request_id: u32, key_id: &str, e: &transcoder::TranscodeError) {
        self.shared
            .registry
            .lock()
            .expect("registry lock")
            .live
            .remove(key_id);
        tracing::error!(error = %e, "cannot start the transcoder");
        self.reject(
            request_id,
            "NetStream.Publish.Failed",
            "the transcoder could not start",
            "transcoder",
        );
    }

    /// Every [`crate::health::WINDOW`]: the input's figures, for the studio.
    fn report_health(&mut self) {
        let Some(p) = self.publishing.as_mut() else {
            return;
        };
        let Some(h) = p
            .meter
            .snapshot(p.take.dropped(), self.shared.transcode.segment_secs)
        else {
            return;
        };
        if let Some(live) = self
            .shared
            .registry
            .lock()
            .expect("registry lock")
            .live
            .get_mut(&p.key_id)
        {
            live.entry.health = Some(h);
        }
    }

    /// Ends this connection's take. A stopped take, or a final one, finishes the broadcast
    /// in the background (playlists final once every segment is stored); a dropped one holds
    /// it for a reconnect.
    async fn end_publish(&mut self, end: TakeEnd) {
        let Some(p) = self.publishing.take() else {
            return;
        };
        p.key_watch.cancel();
        metrics::gauge!("caudal_rtmp_live_streams").decrement(1.0);
        tracing::info!(video_id = %p.video_id, dropped = p.take.dropped(), ?end, "take finished");
        // the take's last segments are cut in the background and stored in order
        let take = p.take;
        self.shared.tasks.spawn(async move {
            let _ = take.finish().await;
        });
        let window = Duration::from_secs(self.shared.cfg.reconnect_window_secs);
        if end == TakeEnd::Dropped && !window.is_zero() && !self.shared.shutdown.is_cancelled() {
            Registry::hold(&self.shared, p.broadcast, window);
        } else {
            self.shared
                .registry
                .lock()
                .expect("registry lock")
                .live
                .remove(&p.key_id);
            self.shared.tasks.spawn(p.broadcast.finish());
        }
    }
}

/// Checks the live key with user-svc every `key_recheck_secs` until `stop`; cancels
/// `revoked` once the key is no longer valid (revoked, rotated, the owner no longer a
/// creator). While user-svc cannot answer the broadcast goes on.
async fn watch_key(
    shared: Arc<Shared>,
    key: String,
    key_id: String,
    stop: CancellationToken,
    revoked: CancellationToken,
) {
    let every = Duration::from_secs(shared.cfg.key_recheck_secs.max(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match shared.users.validate_stream_key(&key).await {
            Ok(Some(o)) if o.key_id == key_id => {}
            Ok(_) => {
                tracing::warn!(
                    key_id,
                    "stream key revoked while live: ending the broadcast"
                );
                revoked.cancel();
                return;
            }
            Err(e) => tracing::warn!(key_id, error = %e, "cannot check the live stream key again"),
        }
    }
}

/// The last four characters only, for logs.
fn mask(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("****{tail}")
}
