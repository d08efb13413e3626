//! Uploads the whole way through real services: a creator uploads a file through bff with
//! tus in pieces, the connection drops halfway and the upload resumes from the last byte
//! stored; the original in storage is byte-identical; a transcode job goes over NATS
//! JetStream to a worker, which writes the ladder and makes the video `ready`. Files that
//! are not videos end `failed` with a reason; over-limit and wrong-owner uploads are refused
//! before a byte is stored.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{config, start_bff, Api};
use reqwest::StatusCode;
use serde_json::Value;
use storage::StoreConfig;
use test_stack::{Stack, StackOptions};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use transcoder::{LiveConfig, RungSpec};

fn nats_url() -> String {
    std::env::var("CAUDAL_TEST_NATS_URL").expect(
        "CAUDAL_TEST_NATS_URL is not set: run the tests through scripts/test.sh, which starts nats-server",
    )
}

/// A queue of this test's own (streams and subjects named apart from other tests').
fn jobs_config() -> jobs::JobsConfig {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_uppercase();
    jobs::JobsConfig {
        url: nats_url(),
        stream: format!("UP_{tag}"),
        subject_prefix: format!("up{tag}.jobs").to_lowercase(),
        consumer: "workers".into(),
        dead_letter_subject: format!("up{tag}.dead").to_lowercase(),
        ack_wait_secs: 10,
        max_deliver: 3,
        ..jobs::JobsConfig::default()
    }
}

/// An H.264/AAC MP4 made by the ffmpeg CLI (lossless: about 0.6 MB/s, so that a few
/// seconds fill more than one 5 MiB part).
fn make_mp4(path: &std::path::Path, secs: u32) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=640x360:rate=30:duration={secs}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={secs}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sha256_hex(data: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `POST /v1/uploads`; the upload's path.
async fn create(api: &Api, token: &str, length: u64, title: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(api.url("/v1/uploads"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length.to_string())
        .header(
            "Upload-Metadata",
            format!("title {},filetype {}", b64(title), b64("video/mp4")),
        )
        .send()
        .await
        .unwrap()
}

async fn offset(api: &Api, token: &str, path: &str) -> (StatusCode, Option<u64>) {
    let r = reqwest::Client::new()
        .head(api.url(path))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    let off = r
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (r.status(), off)
}

async fn patch(api: &Api, token: &str, path: &str, from: u64, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .patch(api.url(path))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", from.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A PATCH that announces `announced` bytes, sends `body` and then drops the connection.
async fn patch_and_drop(api: &Api, token: &str, path: &str, announced: usize, body: &[u8]) {
    let addr = api
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {announced}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(64 << 10) {
        s.write_all(piece).await.unwrap();
    }
    s.flush().await.unwrap();
    // let the server read what was sent before the connection goes
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(s);
}

/// `GET /v1/studio/videos/{id}` as `token`.
async fn studio_video(api: &Api, token: &str, id: &str) -> Value {
    let r = reqwest::Client::new()
        .get(api.url(&format!("/v1/studio/videos/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// The video document as metadata-svc has it, once its status is `want`.
async fn wait_status(stack: &Stack, id: &str, want: &str, within: Duration) -> Value {
    let catalog = service_clients::metadata::MetadataClient::new(
        &format!("http://{}", stack.metadata_addr),
        Duration::from_secs(5),
    )
    .unwrap();
    let t = Instant::now();
    loop {
        // a passing error (a slow answer on a busy machine) is polled again
        let v = match catalog.get_video(id).await {
            Ok(v) => serde_json::json!({ "video": v.expect("the video exists") }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        if v["video"]["status"] == want {
            return v;
        }
        assert!(t.elapsed() < within, "not {want} within {within:?}: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_resumes_after_a_drop_and_becomes_a_ready_video() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let media = StoreConfig::Local {
        root: stack.dir.path().join("media"),
    };
    let jobs = jobs_config();
    let mut cfg = config(&stack, "http://127.0.0.1:9");
    cfg.uploads.storage = media.clone();
    cfg.uploads.jobs = jobs.clone();
    cfg.uploads.max_bytes = 50 << 20;
    let api = start_bff(cfg, &stop).await;
    let worker = transcoder::worker::WorkerConfig {
        metadata_svc_url: format!("http://{}", stack.metadata_addr),
        storage: media,
        jobs: jobs.clone(),
        transcode: LiveConfig {
            x264_preset: "ultrafast".into(),
            rungs: vec![
                RungSpec::new("360p", 360, 800),
                RungSpec::new("240p", 240, 400),
            ],
            spool_dir: stack.dir.path().join("worker-spool"),
            ..Default::default()
        },
        work_dir: stack.dir.path().join("work"),
        retry_delay_secs: 1,
        artwork: transcoder::artwork::ArtworkConfig {
            interval_secs: 2.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let w_stop = stop.clone();
    tokio::spawn(async move { transcoder::worker::run(worker, w_stop).await });

    let (creator, _) = api.creator("Uma", None).await;
    let (other, _) = api.signup("Olaf").await;
    let file = stack.dir.path().join("clip.mp4");
    make_mp4(&file, 12);
    let data = std::fs::read(&file).unwrap();
    let len = data.len() as u64;
    // over one part (5 MiB) so that parts and tail are both exercised
    assert!(len > 6 << 20, "{len} bytes");

    // refused before a byte is stored: over the limit, not a creator
    let big = create(&api, &creator, 51 << 20, "too big").await;
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let viewer = create(&api, &other, len, "not a creator").await;
    assert_eq!(viewer.status(), StatusCode::FORBIDDEN);

    let created = create(&api, &creator, len, "My trip").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["tus-resumable"], "1.0.0");
    // another tus version: 412, as the protocol says
    let old = reqwest::Client::new()
        .post(api.url("/v1/uploads"))
        .bearer_auth(&creator)
        .header("Tus-Resumable", "0.2.2")
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::PRECONDITION_FAILED);
    let path = created.headers()["location"].to_str().unwrap().to_string();
    let id = path.rsplit('/').next().unwrap().to_string();
    let v = wait_status(&stack, &id, "uploading", Duration::from_secs(5)).await;
    assert_eq!(v["video"]["title"], "My trip");

    // someone else can neither see nor write it
    assert_eq!(offset(&api, &other, &path).await.0, StatusCode::NOT_FOUND);
    let w = patch(&api, &other, &path, 0, vec![1, 2, 3]).await;
    assert_eq!(w.status(), StatusCode::NOT_FOUND);

    // the connection drops halfway through the first PATCH
    let half = (len / 2) as usize;
    patch_and_drop(&api, &creator, &path, len as usize, &data[..half]).await;
    // the server keeps what arrived once it sees the connection end; ask until it has
    let t = Instant::now();
    let stored = loop {
        let (status, stored) = offset(&api, &creator, &path).await;
        assert_eq!(status, StatusCode::OK);
        let stored = stored.expect("Upload-Offset");
        if stored > 0 || t.elapsed() > Duration::from_secs(10) {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        stored > 0 && stored <= half as u64,
        "resumes from what arrived: {stored} of {half}"
    );
    // a wrong offset is refused; the right one finishes it
    let wrong = patch(
        &api,
        &creator,
        &path,
        stored + 1,
        data[stored as usize + 1..][..1024].to_vec(),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::CONFLICT);
    let done = patch(
        &api,
        &creator,
        &path,
        stored,
        data[stored as usize..].to_vec(),
    )
    .await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        done.headers()["upload-offset"].to_str().unwrap(),
        len.to_string()
    );

    // the original, byte for byte
    let source = stack
        .store
        .get(&format!("uploads/{id}/source"))
        .await
        .unwrap();
    assert_eq!(source.len() as u64, len);
    assert_eq!(sha256_hex(&source), sha256_hex(&data));

    // processed by the worker: ready, with the ladder and a duration
    let v = wait_status(&stack, &id, "ready", Duration::from_secs(90)).await;
    let d = v["video"]["duration_secs"].as_f64().unwrap();
    assert!((d - 12.0).abs() <= 1.0, "duration {d}: {v}");
    let master = stack
        .store
        .get(&format!("vod/{id}/vod.m3u8"))
        .await
        .or(stack.store.get(&format!("vod/{id}/master.m3u8")).await)
        .expect("a master playlist");
    let master = String::from_utf8_lossy(&master).to_string();
    assert!(
        master.contains("360p") && master.contains("240p"),
        "{master}"
    );
    let rung = master
        .lines()
        .find(|l| l.contains("360p") && !l.starts_with('#'))
        .unwrap()
        .to_string();
    let pl = stack.store.get(&format!("vod/{id}/{rung}")).await.unwrap();
    let pl = m3u8_rs::parse_media_playlist_res(&pl).expect("a media playlist");
    assert!(pl.end_list, "a finished VOD playlist");
    let total: f32 = pl.segments.iter().map(|s| s.duration).sum();
    assert!((total - 12.0).abs() <= 1.0, "{total}");

    // the studio shows it done
    let sv = studio_video(&api, &creator, &id).await;
    assert_eq!(sv["status"], "ready", "{sv}");
    assert_eq!(sv["progress"], 100.0, "{sv}");
    assert!(
        sv["poster"].as_str().unwrap().ends_with("/poster.jpg"),
        "{sv}"
    );

    // a poster and a storyboard: one cue per 2 s, every sheet it names stored beside it
    let poster = v["video"]["poster"]
        .as_str()
        .expect("a poster key")
        .to_string();
    assert_eq!(poster, format!("vod/{id}/poster.jpg"));
    let jpeg = stack.store.get(&poster).await.unwrap();
    assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff], "a JPEG poster");
    let sb = v["video"]["storyboard"]
        .as_str()
        .expect("a storyboard key")
        .to_string();
    let vtt = String::from_utf8(stack.store.get(&sb).await.unwrap().to_vec()).unwrap();
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    let cues: Vec<&str> = vtt.lines().filter(|l| l.contains("#xywh=")).collect();
    assert_eq!(cues.len(), (d / 2.0).ceil() as usize, "{vtt}");
    for cue in &cues {
        let sheet = cue.split('#').next().unwrap();
        let key = format!("vod/{id}/{sheet}");
        assert!(
            stack.store.head(&key).await.is_ok(),
            "{key} named by the storyboard"
        );
    }
    // the owner's watch screen hands out the storyboard signed like the playlist
    let watch: Value = reqwest::Client::new()
        .get(api.url(&format!("/v1/videos/{id}")))
        .bearer_auth(&creator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pb = &watch["playback"];
    assert!(pb["url"].as_str().unwrap().contains("/p/"), "{watch}");
    assert!(
        pb["storyboard"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/vod/{id}/storyboard.vtt")),
        "{watch}"
    );
    assert!(
        watch["video"]["poster"]
            .as_str()
            .unwrap()
            .ends_with("/poster.jpg"),
        "{watch}"
    );

    // bad files end failed with a reason, and the worker keeps serving
    let text = b"these are my notes, not a video\n".repeat(200);
    let created = create(&api, &creator, text.len() as u64, "notes").await;
    let tpath = created.headers()["location"].to_str().unwrap().to_string();
    let tid = tpath.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        patch(&api, &creator, &tpath, 0, text.clone())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let v = wait_status(&stack, &tid, "failed", Duration::from_secs(30)).await;
    let why = v["video"]["failure"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("not a video"), "{v}");
    // and its owner reads the reason in the studio
    let sv = studio_video(&api, &creator, &tid).await;
    assert_eq!(sv["status"], "failed", "{sv}");
    assert_eq!(sv["failure"].as_str(), Some(why.as_str()), "{sv}");

    // a truncated MP4 (its index, at the end, cut off) and an audio-only file: failed, each
    // with its reason; a 0-byte upload is refused at creation
    let truncated = std::fs::read(&file).unwrap()[..(len as usize) * 3 / 5].to_vec();
    let audio = stack.dir.path().join("voice.m4a");
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=500:duration=5",
        ])
        .args(["-c:a", "aac"])
        .arg(&audio)
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success());
    for (bytes, title, reason) in [
        (truncated, "cut short", "damaged or incomplete"),
        (std::fs::read(&audio).unwrap(), "audio only", "no video"),
    ] {
        let created = create(&api, &creator, bytes.len() as u64, title).await;
        let p = created.headers()["location"].to_str().unwrap().to_string();
        let bid = p.rsplit('/').next().unwrap().to_string();
        let sent = patch(&api, &creator, &p, 0, bytes).await;
        assert_eq!(sent.status(), StatusCode::NO_CONTENT);
        let v = wait_status(&stack, &bid, "failed", Duration::from_secs(30)).await;
        let why = v["video"]["failure"].as_str().unwrap_or_default();
        assert!(why.contains(reason), "{title}: {v}");
    }
    let empty = create(&api, &creator, 0, "nothing").await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);

    // a cancelled upload leaves nothing behind
    let created = create(&api, &creator, len, "cancelled").await;
    let cpath = created.headers()["location"].to_str().unwrap().to_string();
    let cid = cpath.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        patch(&api, &creator, &cpath, 0, data[..1000].to_vec())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let gone = reqwest::Client::new()
        .delete(api.url(&cpath))
        .bearer_auth(&creator)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        offset(&api, &creator, &cpath).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(stack
        .store
        .list(&format!("uploads/{cid}/"))
        .await
        .unwrap()
        .is_empty());
    wait_status(&stack, &cid, "failed", Duration::from_secs(5)).await;

    // deleting the ready video deletes its ladder, pictures and original (ingest's cleanup)
    let deleted = reqwest::Client::new()
        .delete(api.url(&format!("/v1/studio/videos/{id}")))
        .bearer_auth(&creator)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let t = Instant::now();
    loop {
        let mut left = stack.store.list(&format!("uploads/{id}/")).await.unwrap();
        left.extend(stack.store.list(&format!("vod/{id}/")).await.unwrap());
        if left.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "left after deletion: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    stop.cancel();
}

/// The worker binary beside this test's (`target/<profile>/transcoder`), built by
/// `cargo build --workspace --all-targets` (scripts/test.sh) or `cargo test --workspace`.
fn worker_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("transcoder");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --workspace --all-targets)",
        bin.display()
    );
    bin
}

/// A `transcoder worker` process on `jobs`, logging to `log`.
fn spawn_worker(
    stack: &Stack,
    jobs: &jobs::JobsConfig,
    media: &std::path::Path,
    name: &str,
    log: &std::path::Path,
) -> std::process::Child {
    let dir = stack.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::fs::File::create(log).unwrap();
    Command::new(worker_binary())
        .arg("worker")
        .env("CAUDAL_WORKER_METRICS_LISTEN", "127.0.0.1:0")
        .env(
            "CAUDAL_WORKER_METADATA_SVC_URL",
            format!("http://{}", stack.metadata_addr),
        )
        .env("CAUDAL_WORKER_STORAGE__BACKEND", "local")
        .env("CAUDAL_WORKER_STORAGE__ROOT", media)
        .env("CAUDAL_WORKER_JOBS__URL", &jobs.url)
        .env("CAUDAL_WORKER_JOBS__STREAM", &jobs.stream)
        .env("CAUDAL_WORKER_JOBS__SUBJECT_PREFIX", &jobs.subject_prefix)
        .env("CAUDAL_WORKER_JOBS__CONSUMER", &jobs.consumer)
        .env(
            "CAUDAL_WORKER_JOBS__DEAD_LETTER_SUBJECT",
            &jobs.dead_letter_subject,
        )
        .env(
            "CAUDAL_WORKER_JOBS__ACK_WAIT_SECS",
            jobs.ack_wait_secs.to_string(),
        )
        .env(
            "CAUDAL_WORKER_JOBS__MAX_DELIVER",
            jobs.max_deliver.to_string(),
        )
        .env("CAUDAL_WORKER_WORK_DIR", dir.join("work"))
        .env("CAUDAL_WORKER_TRANSCODE__SPOOL_DIR", dir.join("spool"))
        .env("CAUDAL_WORKER_TRANSCODE__X264_PRESET", "veryfast")
        .env("NO_COLOR", "1")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("the worker starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_is_killed_completes_on_another_worker() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let media = stack.dir.path().join("media");
    let mut jobs = jobs_config();
    jobs.ack_wait_secs = 3;
    let mut cfg = config(&stack, "http://127.0.0.1:9");
    cfg.uploads.storage = StoreConfig::Local {
        root: media.clone(),
    };
    cfg.uploads.jobs = jobs.clone();
    let api = start_bff(cfg, &stop).await;
    let (creator, _) = api.creator("Kim", None).await;

    // 60 s of 720p30: long enough to be killed in the middle of
    let file = stack.dir.path().join("long.mp4");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1280x720:rate=30:duration=60")
        .args(["-f", "lavfi", "-i", "sine=frequency=330:duration=60"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "60"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"])
        .arg(&file)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = std::fs::read(&file).unwrap();
    let created = create(&api, &creator, data.len() as u64, "long").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let path = created.headers()["location"].to_str().unwrap().to_string();
    let id = path.rsplit('/').next().unwrap().to_string();
    let done = patch(&api, &creator, &path, 0, data).await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);

    // worker A takes the job and is SIGKILLed once it is well into it
    let logs = stack.dir.path();
    let mut a = spawn_worker(&stack, &jobs, &media, "a", &logs.join("a.log"));
    let t = Instant::now();
    loop {
        let v = stack.metadata.get_video(&id).await.unwrap().unwrap();
        if v.progress.unwrap_or(0.0) >= 5.0 && v.playback.master.is_some() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "worker A made no progress: {}",
            std::fs::read_to_string(logs.join("a.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // playable while processing: its owner gets a URL, the rungs' EVENT playlists start at
    // the first segment and have no end yet
    let watch: Value = reqwest::Client::new()
        .get(api.url(&format!("/v1/videos/{id}")))
        .bearer_auth(&creator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(watch["video"]["status"], "processing", "{watch}");
    assert!(
        watch["playback"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("/p/") && u.ends_with(&format!("/vod/{id}/master.m3u8"))),
        "{watch}"
    );
    let early = std::fs::read_to_string(media.join(format!("vod/{id}/master.m3u8"))).unwrap();
    let first = early
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap()
        .to_string();
    let event = std::fs::read_to_string(media.join(format!("vod/{id}/{first}"))).unwrap();
    assert!(event.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{event}");
    let pl = m3u8_rs::parse_media_playlist_res(event.as_bytes()).expect("a media playlist");
    assert_eq!(pl.media_sequence, 0, "{event}");
    assert_eq!(pl.segments[0].uri, "seg_00000.ts", "{event}");
    assert!(!event.contains("#EXT-X-ENDLIST"), "{event}");

    a.kill().expect("SIGKILL worker A");
    a.wait().unwrap();
    let v = stack.metadata.get_video(&id).await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(v.status).unwrap(),
        "processing",
        "killed mid-job"
    );

    // worker B gets the job once A's lease lapses, and finishes it
    let mut b = spawn_worker(&stack, &jobs, &media, "b", &logs.join("b.log"));
    let v = wait_status(&stack, &id, "ready", Duration::from_secs(180)).await;
    let d = v["video"]["duration_secs"].as_f64().unwrap();
    assert!((d - 60.0).abs() <= 1.0, "duration {d}");
    // longer than a lease: a redelivery, if any, changes nothing
    tokio::time::sleep(Duration::from_secs(jobs.ack_wait_secs + 2)).await;
    b.kill().unwrap();
    b.wait().unwrap();
    let a_log = std::fs::read_to_string(logs.join("a.log")).unwrap();
    let b_log = std::fs::read_to_string(logs.join("b.log")).unwrap();
    assert!(a_log.contains("transcoding an upload"), "{a_log}");
    assert!(!a_log.contains("upload ready"), "{a_log}");
    assert_eq!(
        b_log.matches("upload ready").count(),
        1,
        "ready once: {b_log}"
    );

    let ended = std::fs::read_to_string(media.join(format!("vod/{id}/{first}"))).unwrap();
    assert!(ended.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && ended.ends_with("#EXT-X-ENDLIST\n"));
    let pl = m3u8_rs::parse_media_playlist_res(ended.as_bytes()).expect("a media playlist");
    assert_eq!(pl.media_sequence, 0, "{ended}");
    assert_eq!(pl.segments.len(), 30, "every 2 s segment of 60 s: {ended}");

    // complete and decodable: every rung finished, every segment it lists there and read by ffprobe
    let master = std::fs::read_to_string(media.join(format!("vod/{id}/vod.m3u8")))
        .or_else(|_| std::fs::read_to_string(media.join(format!("vod/{id}/master.m3u8"))))
        .expect("a master playlist");
    let rungs: Vec<&str> = master
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(!rungs.is_empty(), "{master}");
    for rung in rungs {
        let pl_path = media.join(format!("vod/{id}/{rung}"));
        let pl = std::fs::read(&pl_path).unwrap();
        let pl = m3u8_rs::parse_media_playlist_res(&pl).expect("a media playlist");
        assert!(pl.end_list, "{rung} finished");
        let total: f32 = pl.segments.iter().map(|s| s.duration).sum();
        assert!((total - 60.0).abs() <= 1.0, "{rung}: {total} s");
        let dir = pl_path.parent().unwrap();
        for seg in &pl.segments {
            let seg_path = dir.join(&seg.uri);
            let probe = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "stream=codec_name",
                    "-of",
                    "csv=p=0",
                ])
                .arg(&seg_path)
                .output()
                .expect("ffprobe runs");
            let codecs = String::from_utf8_lossy(&probe.stdout);
            assert!(
                probe.status.success() && codecs.contains("h264") && codecs.contains("aac"),
                "{}: {codecs} {}",
                seg_path.display(),
                String::from_utf8_lossy(&probe.stderr)
            );
        }
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_is_dropped_and_its_video_failed() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let mut cfg = config(&stack, "http://127.0.0.1:9");
    cfg.uploads.storage = StoreConfig::Local {
        root: stack.dir.path().join("media"),
    };
    cfg.uploads.jobs = jobs_config();
    cfg.uploads.expire_secs = 2;
    cfg.uploads.sweep_interval_secs = 1;
    let api = start_bff(cfg, &stop).await;
    let (creator, _) = api.creator("Abe", None).await;
    let created = create(&api, &creator, 10 << 20, "left behind").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let path = created.headers()["location"].to_str().unwrap().to_string();
    let id = path.rsplit('/').next().unwrap().to_string();
    let sent = patch(&api, &creator, &path, 0, vec![7u8; 100_000]).await;
    assert_eq!(sent.status(), StatusCode::NO_CONTENT);
    assert!(!stack
        .store
        .list(&format!("uploads/{id}/"))
        .await
        .unwrap()
        .is_empty());
    // untouched past expire_secs: the sweeper drops it
    let v = wait_status(&stack, &id, "failed", Duration::from_secs(20)).await;
    assert!(
        v["video"]["failure"]
            .as_str()
            .unwrap_or_default()
            .contains("abandoned"),
        "{v}"
    );
    assert!(stack
        .store
        .list(&format!("uploads/{id}/"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(offset(&api, &creator, &path).await.0, StatusCode::NOT_FOUND);
    stop.cancel();
}
