//! Benchmarks 2 and 3 of the live spine, beside nginx-rtmp. Prints figures; asserts nothing.
//!
//! ```text
//! bench_live latency --flv FILE --nginx-rtmp HOST:PORT --nginx-hls DIR [--s3]
//! bench_live cpu     --flv FILE --nginx-rtmp HOST:PORT --nginx-pid PID [--streams 10] [--secs 30]
//! ```
//! Normally started by `bash bench/run.sh latency|cpu`, which starts MariaDB, the
//! MongoDB-compatible server and nginx-rtmp and makes the input file once. Caudal runs
//! in-process (metadata-svc, user-svc and ingest-rtmp through `test-stack`).
//!
//! Latency: a paced RTMP publisher (rml_rtmp's client, below) sends a pre-encoded FLV in real
//! time and records when each keyframe was written to the socket; a watcher reads the media
//! playlist every 2 ms (a file) or sends a GET every 5 ms (S3) and records when each segment
//! first appears. A segment's latency is (first seen) - (sent time of the keyframe that ends
//! it); the keyframe is found from the segment's end time (sum of the EXTINF durations since
//! the first segment).
//!
//! Options of `latency`: `--s3` (also run on the S3-compatible server named by
//! CAUDAL_TEST_S3_ENDPOINT), `--runs nginx,passthrough,ladder,s3` (a subset),
//! `--frame-queue N` (LiveConfig::frame_queue in the Caudal runs, an experiment knob).
//!
//! CPU: N ffmpeg processes publish the same file with `-re -stream_loop -1 -c copy`; the CPU
//! time (utime + stime from /proc/PID/stat) of Caudal's process, or of nginx's children (the
//! worker and an idle cache manager), over a window is divided by N.
#![allow(clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use test_stack::{Stack, StackOptions};
use transcoder::LiveConfig;

// ---------------------------------------------------------------- FLV file

struct Tag {
    /// 8 audio, 9 video, 18 script data.
    kind: u8,
    ts: u32,
    body: Bytes,
}

impl Tag {
    /// An AVC keyframe carrying a picture (not the sequence header).
    fn is_key_picture(&self) -> bool {
        self.kind == 9 && self.body.len() > 1 && self.body[0] >> 4 == 1 && self.body[1] == 1
    }
}

fn read_flv(path: &Path) -> Vec<Tag> {
    let data = Bytes::from(
        std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
    );
    assert!(
        data.len() > 13 && &data[..3] == b"FLV",
        "{} is not an FLV file",
        path.display()
    );
    let header = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let mut pos = header + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let kind = data[pos] & 0x1f;
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        let end = pos + 11 + size;
        if end > data.len() {
            break;
        }
        tags.push(Tag {
            kind,
            ts,
            body: data.slice(pos + 11..end),
        });
        pos = end + 4;
    }
    tags
}

// ---------------------------------------------------------------- paced RTMP publisher

/// When the keyframe with RTMP timestamp `ts_ms` was handed to the kernel.
#[derive(Clone, Copy)]
struct KeySent {
    ts_ms: i64,
    at: Instant,
}

fn write_results(
    sock: &mut TcpStream,
    results: Vec<ClientSessionResult>,
    events: &mut Vec<ClientSessionEvent>,
) {
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => {
                sock.write_all(&p.bytes).expect("rtmp write")
            }
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
}

/// Reads from the server until `done` says yes about one of the events raised.
fn wait_event(
    sock: &mut TcpStream,
    session: &mut ClientSession,
    what: &str,
    done: impl Fn(&ClientSessionEvent) -> bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < until, "no answer to {what} within 10 s");
        let n = sock.read(&mut buf).expect("rtmp read");
        assert!(n > 0, "the server closed the connection during {what}");
        let mut events = Vec::new();
        let results = session
            .handle_input(&buf[..n])
            .unwrap_or_else(|e| panic!("rtmp session error during {what}: {e:?}"));
        write_results(sock, results, &mut events);
        for e in &events {
            if let ClientSessionEvent::ConnectionRequestRejected { description } = e {
                panic!("{what}: connection rejected: {description}");
            }
            if done(e) {
                return;
            }
        }
    }
}

/// Publishes `tags` to `rtmp://addr/app/key` in real time (tag timestamps against the wall
/// clock from the first tag) and returns when each keyframe was sent.
fn publish_paced(addr: SocketAddr, app: &str, key: &str, tags: &[Tag]) -> Vec<KeySent> {
    let mut sock = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut hs = Handshake::new(PeerType::Client);
    sock.write_all(&hs.generate_outbound_p0_and_p1().expect("handshake p0/p1"))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let remaining = loop {
        let n = sock.read(&mut buf).expect("handshake read");
        assert!(
            n > 0,
            "the server closed the connection during the handshake"
        );
        match hs.process_bytes(&buf[..n]).expect("handshake") {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).unwrap()
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).unwrap();
                break remaining_bytes;
            }
        }
    };
    let mut cfg = ClientSessionConfig::new();
    cfg.tc_url = Some(format!("rtmp://{addr}/{app}"));
    let (mut session, initial) = ClientSession::new(cfg).expect("client session");
    let mut events = Vec::new();
    write_results(&mut sock, initial, &mut events);
    if !remaining.is_empty() {
        let r = session.handle_input(&remaining).expect("rtmp input");
        write_results(&mut sock, r, &mut events);
    }
    let r = session
        .request_connection(app.to_string())
        .expect("connect request");
    write_results(&mut sock, vec![r], &mut events);
    wait_event(&mut sock, &mut session, "connect", |e| {
        matches!(e, ClientSessionEvent::ConnectionRequestAccepted)
    });
    let r = session
        .request_publishing(key.to_string(), PublishRequestType::Live)
        .expect("publish request");
    write_results(&mut sock, vec![r], &mut events);
    wait_event(&mut sock, &mut session, "publish", |e| {
        matches!(e, ClientSessionEvent::PublishRequestAccepted)
    });
    let mut meta = StreamMetadata::new();
    meta.video_width = Some(1280);
    meta.video_height = Some(720);
    meta.video_codec_id = Some(7);
    meta.video_frame_rate = Some(30.0);
    meta.audio_codec_id = Some(10);
    meta.audio_sample_rate = Some(48000);
    meta.audio_channels = Some(2);
    let r = session.publish_metadata(&meta).expect("metadata");
    write_results(&mut sock, vec![r], &mut events);

    // the server keeps sending acknowledgements and pings: drain them on another thread
    let mut reader = sock.try_clone().unwrap();
    reader.set_read_timeout(None).unwrap();
    let drain = std::thread::spawn(move || {
        let mut b = vec![0u8; 16 * 1024];
        while matches!(reader.read(&mut b), Ok(n) if n > 0) {}
    });

    let mut sent = Vec::new();
    let t0 = Instant::now();
    let first_ts = tags
        .iter()
        .find(|t| t.kind == 8 || t.kind == 9)
        .map(|t| t.ts)
        .unwrap_or(0);
    for tag in tags.iter().filter(|t| t.kind == 8 || t.kind == 9) {
        let rel = tag.ts.saturating_sub(first_ts);
        let due = t0 + Duration::from_millis(rel as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let ts = RtmpTimestamp::new(rel);
        let r = if tag.kind == 9 {
            session.publish_video_data(tag.body.clone(), ts, false)
        } else {
            session.publish_audio_data(tag.body.clone(), ts, false)
        }
        .expect("serialising media");
        if let ClientSessionResult::OutboundResponse(p) = r {
            sock.write_all(&p.bytes).expect("rtmp media write");
        }
        if tag.is_key_picture() {
            sent.push(KeySent {
                ts_ms: rel as i64,
                at: Instant::now(),
            });
        }
    }
    if let Ok(results) = session.stop_publishing() {
        for r in results {
            if let ClientSessionResult::OutboundResponse(p) = r {
                let _ = sock.write_all(&p.bytes);
            }
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let _ = sock.shutdown(std::net::Shutdown::Both);
    let _ = drain.join();
    sent
}

// ---------------------------------------------------------------- playlist watcher

#[derive(Clone, Debug)]
struct Seen {
    sequence: u64,
    duration: f64,
    at: Instant,
}

/// Each segment's first sighting in successive reads of one media playlist.
#[derive(Default)]
struct Sightings {
    seen: Vec<Seen>,
    last: Vec<u8>,
}

impl Sightings {
    fn observe(&mut self, bytes: &[u8], at: Instant) {
        if bytes == self.last.as_slice() {
            return;
        }
        if let Ok(pl) = m3u8_rs::parse_media_playlist_res(bytes) {
            for (i, s) in pl.segments.iter().enumerate() {
                let sequence = pl.media_sequence + i as u64;
                if self.seen.iter().all(|x| x.sequence != sequence) {
                    self.seen.push(Seen {
                        sequence,
                        duration: s.duration as f64,
                        at,
                    });
                }
            }
        }
        self.last = bytes.to_vec();
    }

    fn finish(mut self) -> Vec<Seen> {
        self.seen.sort_by_key(|s| s.sequence);
        self.seen
    }
}

/// Reads the playlist every `every`, until `stop` is set (then once more). `fetch` returns
/// None while there is no playlist. A sighting's time is taken after the read returned.
fn watch(
    mut fetch: impl FnMut() -> Option<Vec<u8>>,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<Seen> {
    let mut sightings = Sightings::default();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if let Some(bytes) = fetch() {
            sightings.observe(&bytes, Instant::now());
        }
        if stopping {
            break;
        }
        std::thread::sleep(every);
    }
    sightings.finish()
}

/// The same through the object store: a GET every `every`, each sent without waiting for the
/// previous one (s3s-fs answers a GET in ~40 ms: its small responses meet delayed ACKs). A
/// sighting's time is when the first GET that returned it was sent: the server read the object
/// right after, and the GET sent before it did not see it yet.
async fn watch_store(
    store: storage::DynStore,
    key: impl Fn() -> Option<String>,
    every: Duration,
    stop: Arc<AtomicBool>,
    get_ms: Arc<Mutex<Vec<f64>>>,
) -> Vec<Seen> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut replies: Vec<(Instant, Bytes)> = Vec::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let stopping = stop.load(Ordering::Relaxed);
        if let Some(k) = key() {
            let (store, get_ms) = (store.clone(), get_ms.clone());
            tasks.spawn(async move {
                let sent = Instant::now();
                let r = store.get(&k).await.ok();
                get_ms
                    .lock()
                    .unwrap()
                    .push(sent.elapsed().as_secs_f64() * 1000.0);
                r.map(|b| (sent, b))
            });
        }
        while let Some(r) = tasks.try_join_next() {
            replies.extend(r.expect("GET task"));
        }
        if stopping {
            break;
        }
    }
    while let Some(r) = tasks.join_next().await {
        replies.extend(r.expect("GET task"));
    }
    replies.sort_by_key(|(sent, _)| *sent);
    let mut sightings = Sightings::default();
    for (sent, body) in replies {
        sightings.observe(&body, sent);
    }
    sightings.finish()
}

enum Watcher {
    Thread(std::thread::JoinHandle<Vec<Seen>>),
    Task(tokio::task::JoinHandle<Vec<Seen>>),
}

impl Watcher {
    async fn join(self) -> Vec<Seen> {
        match self {
            Watcher::Thread(h) => tokio::task::spawn_blocking(move || h.join().expect("watcher"))
                .await
                .expect("join"),
            Watcher::Task(h) => h.await.expect("watcher"),
        }
    }
}

/// Latency of each segment closed by a keyframe the publisher sent, in ms.
fn latencies(seen: &[Seen], sent: &[KeySent], label: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let mut end = 0.0f64;
    let mut expect = seen.first().map(|s| s.sequence);
    for s in seen {
        if Some(s.sequence) != expect {
            eprintln!(
                "{label}: segment {} missing from the watch (started late?)",
                expect.unwrap_or(0)
            );
        }
        expect = Some(s.sequence + 1);
        end += s.duration * 1000.0;
        // the keyframe that closed this segment: the one sent at its end time
        let Some(k) = sent
            .iter()
            .min_by(|a, b| ((a.ts_ms as f64 - end).abs()).total_cmp(&(b.ts_ms as f64 - end).abs()))
        else {
            continue;
        };
        if (k.ts_ms as f64 - end).abs() > 150.0 {
            // the last segment, closed by the end of the stream rather than a keyframe
            continue;
        }
        let ms = if s.at >= k.at {
            s.at.duration_since(k.at).as_secs_f64() * 1000.0
        } else {
            -(k.at.duration_since(s.at).as_secs_f64() * 1000.0)
        };
        out.push(ms);
    }
    out
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    // nearest rank
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

struct Row {
    name: String,
    lat: Vec<f64>,
}

fn print_rows(title: &str, rows: &[Row]) {
    println!();
    println!("{title}");
    println!(
        "{:<44} {:>4} {:>9} {:>9} {:>9} {:>9}",
        "", "n", "median ms", "p95 ms", "min ms", "max ms"
    );
    for r in rows {
        println!(
            "{:<44} {:>4} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            r.name,
            r.lat.len(),
            percentile(&r.lat, 50.0),
            percentile(&r.lat, 95.0),
            percentile(&r.lat, 0.0),
            percentile(&r.lat, 100.0)
        );
    }
}

// ---------------------------------------------------------------- helpers

fn arg(args: &[String], name: &str) -> Option<String> {
    let flag = format!("--{name}");
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    out.and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (ppid, utime + stime in ticks) of a process.
fn proc_stat(pid: &str) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    Some((
        f.get(1)?.parse().ok()?,
        f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    ))
}

fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| proc_stat(&p.to_string()))
        .map(|(_, t)| t)
        .sum()
}

fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Ok(pid) = name.parse::<u32>() {
            if proc_stat(&name).is_some_and(|(pp, _)| pp == parent) {
                out.push(pid);
            }
        }
    }
    out
}

fn spawn_looping_publisher(flv: &Path, url: &str) -> Child {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
        ])
        .arg(flv)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg runs")
}

fn stop_children(children: &mut [Child]) {
    for c in children.iter_mut() {
        let _ = c.kill();
    }
    for c in children.iter_mut() {
        let _ = c.wait();
    }
}

fn live_config(passthrough: bool, rungs: Option<Vec<transcoder::RungSpec>>) -> LiveConfig {
    let d = LiveConfig::default();
    LiveConfig {
        passthrough,
        rungs: rungs.unwrap_or(d.rungs.clone()),
        ..d
    }
}

// ---------------------------------------------------------------- latency

/// One Caudal run: publishes to a fresh stack, watches the given rungs' playlists in its
/// store (a local folder, or the S3-compatible server).
async fn caudal_latency(
    tags: Arc<Vec<Tag>>,
    cfg: LiveConfig,
    rungs: &[&str],
    label: &str,
    s3: bool,
) -> Vec<Row> {
    let storage = s3.then(test_stack::s3_store_config);
    let stack = Stack::start(StackOptions {
        transcode: cfg,
        storage,
        ..Default::default()
    })
    .await;
    let media_root = stack.dir.path().join("media");
    // `live/<video id>`, known once ingest accepted the publisher
    let prefix: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let every = Duration::from_millis(if s3 { 5 } else { 2 });
    let mut watchers = Vec::new();
    let get_times: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    for rung in rungs {
        let (stop, prefix, name) = (stop.clone(), prefix.clone(), rung.to_string());
        let key = move || {
            prefix
                .lock()
                .unwrap()
                .clone()
                .map(|p| format!("{p}/{name}/index.m3u8"))
        };
        let watcher = if s3 {
            let (store, gets) = (stack.store.clone(), get_times.clone());
            Watcher::Task(tokio::spawn(watch_store(store, key, every, stop, gets)))
        } else {
            let root = media_root.clone();
            let fetch = move || std::fs::read(root.join(key()?)).ok();
            Watcher::Thread(std::thread::spawn(move || watch(fetch, every, stop)))
        };
        watchers.push((rung.to_string(), watcher));
    }
    let (addr, key) = (stack.rtmp_addr, stack.demo_key.clone());
    eprintln!(
        "{label}: publishing {:.0} s",
        tags.last().map(|t| t.ts).unwrap_or(0) as f64 / 1000.0
    );
    let publisher = tokio::task::spawn_blocking(move || publish_paced(addr, "live", &key, &tags));
    let t = Instant::now();
    loop {
        if let Some(v) = stack.live_streams().await.first() {
            let master = v["master_playlist"].as_str().expect("master_playlist");
            *prefix.lock().unwrap() = Some(master.trim_end_matches("/master.m3u8").to_string());
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{label}: the stream did not go live"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = publisher.await.expect("publisher");
    // the last segments are listed within a second or two of the end
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let broadcast = prefix
        .lock()
        .unwrap()
        .clone()
        .into_iter()
        .collect::<Vec<_>>();
    wait_finalised(&stack, &broadcast).await;
    let mut rows = Vec::new();
    for (rung, w) in watchers {
        let seen = w.join().await;
        let lat = latencies(&seen, &sent, &format!("{label} {rung}"));
        eprintln!(
            "{label} {rung}: per segment (ms) {:?}",
            lat.iter().map(|v| v.round() as i64).collect::<Vec<_>>()
        );
        let kind = if rung == "source" {
            "passthrough"
        } else {
            "encoded"
        };
        rows.push(Row {
            name: format!("Caudal {label}: {rung} ({kind})"),
            lat,
        });
    }
    if s3 {
        let g = get_times.lock().unwrap();
        eprintln!(
            "{label}: the watchers' playlist GETs took median {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} GETs)",
            percentile(&g, 50.0),
            percentile(&g, 95.0),
            percentile(&g, 100.0),
            g.len()
        );
    }
    for (metric, what) in [
        (
            "caudal_segment_listed_seconds",
            "closing frame at the rung -> playlist stored",
        ),
        ("caudal_object_put_seconds", "one object PUT"),
    ] {
        let q = internal_quantiles(metric);
        if !q.is_empty() {
            eprintln!("{label}: {metric} ({what}; all rungs, the exporter's last ~60 s): {q}");
        }
    }
    stack.stop().await;
    rows
}

/// Waits (up to 20 s) until each broadcast (`live/<video id>`) has its VOD playlist, then a
/// moment for the last metadata update, so that stopping the stack does not cut ingest off
/// from metadata-svc mid-update (its retries would hold `Stack::stop` for 30 s).
async fn wait_finalised(stack: &Stack, broadcasts: &[String]) {
    let t = Instant::now();
    for b in broadcasts {
        while stack.store.get(&format!("{b}/vod.m3u8")).await.is_err()
            && t.elapsed() < Duration::from_secs(20)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The ingest's own figures: quantiles of a summary it records (e.g.
/// `caudal_segment_listed_seconds`).
fn internal_quantiles(metric: &str) -> String {
    let text = service_kit::metrics::handle().render();
    let prefix = format!("{metric}{{");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            let q = l.split("quantile=\"").nth(1)?.split('"').next()?;
            let v: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some(format!("q{q}={:.1}ms", v * 1000.0))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn nginx_latency(tags: Arc<Vec<Tag>>, addr: SocketAddr, hls: &Path) -> Row {
    let key = format!("lat{}", std::process::id());
    let playlist = hls.join(format!("{key}.m3u8"));
    let _ = std::fs::remove_file(&playlist);
    let stop = Arc::new(AtomicBool::new(false));
    let w = {
        let (stop, p) = (stop.clone(), playlist.clone());
        std::thread::spawn(move || {
            watch(
                move || std::fs::read(&p).ok(),
                Duration::from_millis(2),
                stop,
            )
        })
    };
    eprintln!("nginx-rtmp: publishing");
    let sent = publish_paced(addr, "live", &key, &tags);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let seen = w.join().expect("watcher");
    let lat = latencies(&seen, &sent, "nginx-rtmp");
    eprintln!(
        "nginx-rtmp: per segment (ms) {:?}",
        lat.iter()
            .map(|v| (v * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    Row {
        name: "nginx-rtmp (hls on; hls_fragment 2s)".into(),
        lat,
    }
}

async fn latency(args: &[String]) {
    let flv = PathBuf::from(arg(args, "flv").expect("--flv FILE"));
    let nginx: SocketAddr = arg(args, "nginx-rtmp")
        .expect("--nginx-rtmp HOST:PORT")
        .parse()
        .expect("address");
    let hls = PathBuf::from(arg(args, "nginx-hls").expect("--nginx-hls DIR"));
    let tags = Arc::new(read_flv(&flv));
    let keys: Vec<u32> = tags
        .iter()
        .filter(|t| t.is_key_picture())
        .map(|t| t.ts)
        .collect();
    eprintln!(
        "{}: {} tags, keyframes at {:?} ms",
        flv.display(),
        tags.len(),
        &keys[..keys.len().min(4)]
    );

    // --runs picks a subset (nginx, passthrough, ladder, s3); --frame-queue N overrides
    // LiveConfig::frame_queue in the Caudal runs (an experiment knob)
    let runs = arg(args, "runs").unwrap_or_else(|| "nginx,passthrough,ladder,s3".into());
    let runs: Vec<&str> = runs.split(',').collect();
    let frame_queue: Option<usize> = arg(args, "frame-queue").and_then(|v| v.parse().ok());
    let cfg = |rungs: Option<Vec<transcoder::RungSpec>>| {
        let c = live_config(true, rungs);
        LiveConfig {
            frame_queue: frame_queue.unwrap_or(c.frame_queue),
            ..c
        }
    };
    let mut rows = Vec::new();
    if runs.contains(&"nginx") {
        let t = tags.clone();
        rows.push(
            tokio::task::spawn_blocking(move || nginx_latency(t, nginx, &hls))
                .await
                .expect("nginx run"),
        );
    }
    if runs.contains(&"passthrough") {
        rows.extend(
            caudal_latency(
                tags.clone(),
                cfg(Some(vec![])),
                &["source"],
                "passthrough only",
                false,
            )
            .await,
        );
    }
    if runs.contains(&"ladder") {
        let rungs = ["source", "720p", "480p", "360p"];
        rows.extend(
            caudal_latency(
                tags.clone(),
                cfg(None),
                &rungs,
                "passthrough + ladder",
                false,
            )
            .await,
        );
    }
    if runs.contains(&"s3") && args.iter().any(|a| a == "--s3") {
        rows.extend(
            caudal_latency(
                tags.clone(),
                cfg(None),
                &["source", "720p"],
                "passthrough + ladder, S3",
                true,
            )
            .await,
        );
    }
    print_rows(
        "Segment availability latency: keyframe closing the segment sent -> segment listed in the stored media playlist",
        &rows,
    );
    let med = |prefix: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(prefix))
            .map(|r| percentile(&r.lat, 50.0))
    };
    let p95 = |prefix: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(prefix))
            .map(|r| percentile(&r.lat, 95.0))
    };
    if let (Some(n50), Some(n95)) = (med("nginx"), p95("nginx")) {
        println!();
        for (prefix, goal) in [
            ("Caudal passthrough only: source", 50.0),
            ("Caudal passthrough + ladder: source", 50.0),
            ("Caudal passthrough + ladder: 720p", 250.0),
        ] {
            if let (Some(m), Some(p)) = (med(prefix), p95(prefix)) {
                println!(
                    "{prefix:<38} median {:+.1} ms, p95 {:+.1} ms vs nginx-rtmp (goal within {goal:.0} ms): {}",
                    m - n50,
                    p - n95,
                    if m - n50 <= goal && p - n95 <= goal { "met" } else { "MISSED" }
                );
            }
        }
    }
}

// ---------------------------------------------------------------- CPU

async fn create_stream_keys(stack: &Stack, n: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let base = format!("http://{}", stack.users_addr);
    let mut keys = Vec::new();
    for i in 0..n {
        let email = format!("bench{i}-{}@example.com", uuid::Uuid::new_v4().simple());
        let res = http
            .post(format!("{base}/v1/auth/signup"))
            .json(&serde_json::json!({"email": email, "password": "bench password 1234", "display_name": format!("Bench {i}")}))
            .send()
            .await
            .expect("signup");
        assert!(res.status().is_success(), "signup: {}", res.status());
        let session: serde_json::Value = res.json().await.expect("signup json");
        let token = session["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        let res = http
            .post(format!("{base}/v1/me/become-creator"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("become creator");
        assert!(
            res.status().is_success(),
            "become-creator: {}",
            res.status()
        );
        let res = http
            .post(format!("{base}/v1/stream-keys"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("stream key");
        assert!(res.status().is_success(), "stream-keys: {}", res.status());
        let k: serde_json::Value = res.json().await.expect("key json");
        keys.push(k["key"].as_str().expect("key").to_string());
    }
    keys
}

struct CpuFigure {
    name: String,
    streams: usize,
    secs: f64,
    server_cpu: f64,
    idle_cpu: Option<f64>,
    publishers_cpu: f64,
}

fn measure(server: &[u32], publishers: &[u32], secs: u64) -> (f64, f64, f64) {
    let hz = clock_ticks();
    let (s0, p0, t0) = (cpu_ticks(server), cpu_ticks(publishers), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (s1, p1, wall) = (
        cpu_ticks(server),
        cpu_ticks(publishers),
        t0.elapsed().as_secs_f64(),
    );
    (
        (s1 - s0) as f64 / hz / wall,
        (p1 - p0) as f64 / hz / wall,
        wall,
    )
}

async fn cpu(args: &[String]) {
    let flv = PathBuf::from(arg(args, "flv").expect("--flv FILE"));
    let nginx: SocketAddr = arg(args, "nginx-rtmp")
        .expect("--nginx-rtmp HOST:PORT")
        .parse()
        .expect("address");
    let nginx_master: u32 = arg(args, "nginx-pid")
        .expect("--nginx-pid PID")
        .parse()
        .expect("pid");
    let n: usize = arg(args, "streams")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let secs: u64 = arg(args, "secs").and_then(|v| v.parse().ok()).unwrap_or(30);
    let warmup: u64 = arg(args, "warmup")
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);

    let plan = transcoder::ladder::select(
        &transcoder::ladder::Source {
            width: 1280,
            height: 720,
            frame_rate: 30.0,
            audio: true,
        },
        &transcoder::LiveConfig {
            rungs: vec![],
            passthrough: true,
            ..Default::default()
        },
    );
    eprintln!(
        "ladder::select(1280x720, rungs: [], passthrough) = {:?}",
        plan.iter()
            .map(|r| format!(
                "{}:{}x{}:passthrough={}",
                r.name, r.width, r.height, r.passthrough
            ))
            .collect::<Vec<_>>()
    );
    assert!(
        plan.len() == 1 && plan[0].passthrough,
        "passthrough-only must give the source rung alone"
    );

    let mut figures = Vec::new();
    // Caudal: ingest + transcoder (and the in-process user-svc/metadata-svc) are this process
    {
        let stack = Stack::start(StackOptions {
            transcode: live_config(true, Some(vec![])),
            storage: None,
            ..Default::default()
        })
        .await;
        let mut keys = vec![stack.demo_key.clone()];
        keys.extend(create_stream_keys(&stack, n.saturating_sub(1)).await);
        let me = [std::process::id()];
        let (idle, _, _) = tokio::task::spawn_blocking(move || measure(&me, &[], 5))
            .await
            .unwrap();
        let mut pubs: Vec<Child> = keys
            .iter()
            .map(|k| spawn_looping_publisher(&flv, &stack.rtmp_url(k)))
            .collect();
        let t = Instant::now();
        while stack.live_streams().await.len() < n {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "only {} of {n} streams went live",
                stack.live_streams().await.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("caudal: {n} streams live, warming up {warmup} s, measuring {secs} s");
        tokio::time::sleep(Duration::from_secs(warmup)).await;
        let pub_pids: Vec<u32> = pubs.iter().map(|c| c.id()).collect();
        let (server, publishers, wall) =
            tokio::task::spawn_blocking(move || measure(&me, &pub_pids, secs))
                .await
                .unwrap();
        let live = stack.live_streams().await.len();
        let segments = count_files(&stack.dir.path().join("media").join("live"), "ts");
        eprintln!(
            "caudal: {live} streams still live at the end; {segments} segments stored in all"
        );
        if let Some(ts) = find_file(&stack.dir.path().join("media").join("live"), "ts") {
            let probe = test_stack::ffprobe(&ts);
            let streams: Vec<String> = probe["streams"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| match s["width"].as_u64() {
                    Some(w) => format!(
                        "{} {w}x{}",
                        s["codec_name"].as_str().unwrap_or("?"),
                        s["height"]
                    ),
                    None => s["codec_name"].as_str().unwrap_or("?").to_string(),
                })
                .collect();
            eprintln!("caudal: a stored segment probes as {streams:?}");
        }
        let broadcasts: Vec<String> = stack
            .live_streams()
            .await
            .iter()
            .filter_map(|v| {
                v["master_playlist"]
                    .as_str()
                    .map(|m| m.trim_end_matches("/master.m3u8").to_string())
            })
            .collect();
        stop_children(&mut pubs);
        wait_finalised(&stack, &broadcasts).await;
        figures.push(CpuFigure {
            name: "Caudal (ingest-rtmp + transcoder, passthrough only)".into(),
            streams: n,
            secs: wall,
            server_cpu: server,
            idle_cpu: Some(idle),
            publishers_cpu: publishers,
        });
        stack.stop().await;
    }
    // nginx-rtmp: its worker process
    {
        let workers = children_of(nginx_master);
        assert!(
            !workers.is_empty(),
            "no nginx worker under pid {nginx_master}"
        );
        let mut pubs: Vec<Child> = (0..n)
            .map(|i| spawn_looping_publisher(&flv, &format!("rtmp://{nginx}/live/cpu{i}")))
            .collect();
        eprintln!("nginx-rtmp: {n} publishers, warming up {warmup} s, measuring {secs} s (worker pids {workers:?})");
        tokio::time::sleep(Duration::from_secs(warmup)).await;
        let pub_pids: Vec<u32> = pubs.iter().map(|c| c.id()).collect();
        let w = workers.clone();
        let (server, publishers, wall) =
            tokio::task::spawn_blocking(move || measure(&w, &pub_pids, secs))
                .await
                .unwrap();
        stop_children(&mut pubs);
        figures.push(CpuFigure {
            name: "nginx-rtmp (worker, hls on)".into(),
            streams: n,
            secs: wall,
            server_cpu: server,
            idle_cpu: None,
            publishers_cpu: publishers,
        });
    }
    println!();
    println!("CPU per stream: {n} publishers of a 720p30 H.264/AAC FLV (ffmpeg -re -stream_loop -1 -c copy), {secs} s window");
    println!(
        "{:<52} {:>12} {:>12} {:>14} {:>16}",
        "server", "total %core", "per stream", "idle %core", "publishers %core"
    );
    for f in &figures {
        println!(
            "{:<52} {:>12.1} {:>11.2}% {:>14} {:>16.1}",
            f.name,
            f.server_cpu * 100.0,
            f.server_cpu * 100.0 / f.streams as f64,
            f.idle_cpu
                .map(|i| format!("{:.1}", i * 100.0))
                .unwrap_or_else(|| "-".into()),
            f.publishers_cpu * 100.0
        );
        let _ = f.secs;
    }
    if let [c, ng] = &figures[..] {
        let net = (c.server_cpu - c.idle_cpu.unwrap_or(0.0)) * 100.0 / c.streams as f64;
        let ngs = ng.server_cpu * 100.0 / ng.streams as f64;
        println!();
        println!(
            "Caudal {:.2}% of one core per stream ({net:.2}% net of its idle baseline) vs nginx-rtmp {ngs:.2}%: {:.1}x",
            c.server_cpu * 100.0 / c.streams as f64,
            if ngs > 0.0 { net / ngs } else { f64::NAN }
        );
    }
}

fn find_file(root: &Path, ext: &str) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                return Some(p);
            }
        }
    }
    None
}

fn count_files(root: &Path, ext: &str) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                n += 1;
            }
        }
    }
    n
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("latency") => latency(&args[1..]).await,
        Some("cpu") => cpu(&args[1..]).await,
        _ => {
            eprintln!("usage: bench_live latency|cpu --flv FILE --nginx-rtmp HOST:PORT (--nginx-hls DIR | --nginx-pid PID)");
            std::process::exit(2);
        }
    }
}
