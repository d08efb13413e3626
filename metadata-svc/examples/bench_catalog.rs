//! Catalog read benchmark: starts metadata-svc in-process against `CAUDAL_MONGO_URL` (a fresh
//! random database, dropped at the end), seeds ~2,000 videos, then drives over real HTTP
//! from 64 concurrent clients, for each of `GET /internal/v1/videos/{id}` (random ids) and a
//! filtered list page (`GET /internal/v1/videos?owner=..&limit=20`, random owner):
//!
//! - `max`: closed loop, every client sends its next request as soon as the last answers;
//! - `paced`: 2,000 req/s in total on a fixed schedule, latency measured from the scheduled
//!   send time (so a stall is not hidden by sending less: no coordinated omission).
//!
//! ```text
//! CAUDAL_MONGO_URL='mongodb://127.0.0.1:27117/?directConnection=true' \
//!   cargo run -p metadata-svc --example bench_catalog [-- --no-cache] [--secs 10] [--rate 2000]
//! ```
//! `--no-cache` sets `cache_ttl_ms = 0`: every request reaches the database; `--ttl-ms N`
//! overrides the default TTL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metadata_svc::model;
use mongodb::bson;
use service_clients::metadata::{
    AccessPolicy, NewVideo, PlaybackLocations, StatusChange, VideoKind, VideoStatus, Visibility,
};

const VIDEOS: usize = 2_000;
const OWNERS: usize = 40;
const CLIENTS: usize = 64;

struct Args {
    cache: bool,
    ttl_ms: Option<u64>,
    secs: u64,
    rate: u64,
}

fn args() -> Args {
    let mut a = Args {
        cache: true,
        ttl_ms: None,
        secs: 10,
        rate: 2_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--no-cache" => a.cache = false,
            "--secs" => a.secs = it.next().and_then(|v| v.parse().ok()).expect("--secs N"),
            "--rate" => a.rate = it.next().and_then(|v| v.parse().ok()).expect("--rate N"),
            "--ttl-ms" => {
                a.ttl_ms = Some(it.next().and_then(|v| v.parse().ok()).expect("--ttl-ms N"))
            }
            other => {
                panic!("unknown argument {other}; use --no-cache, --ttl-ms N, --secs N, --rate N")
            }
        }
    }
    a
}

/// 2,000 videos of 40 creators, published over the last 30 days, most of them watchable.
fn seed_docs() -> Vec<model::VideoDoc> {
    let tags = [
        "music", "gaming", "rust", "cooking", "travel", "news", "science", "art",
    ];
    let now = model::now().timestamp_millis();
    (0..VIDEOS)
        .map(|i| {
            let kind = if i % 4 == 0 {
                VideoKind::Live
            } else {
                VideoKind::Upload
            };
            let new = NewVideo {
                id: Some(format!("bench{i:05}")),
                owner_id: format!("creator-{}", i % OWNERS),
                kind,
                title: format!("Benchmark video {i} about {}", tags[i % tags.len()]),
                description: "A video seeded by the catalog benchmark. ".repeat(4),
                tags: vec![
                    tags[i % tags.len()].into(),
                    tags[(i / 3) % tags.len()].into(),
                ],
                visibility: if i % 10 == 0 {
                    Visibility::Unlisted
                } else {
                    Visibility::Public
                },
                access: AccessPolicy::Free,
                status: None,
                started_at: None,
                renditions: vec![],
                playback: PlaybackLocations::default(),
            };
            let at = bson::DateTime::from_millis(now - (i as i64 * 1_296_000)); // spread over 30 days
            let mut doc = model::new_document(&new, at).expect("valid seed");
            let done = match kind {
                VideoKind::Live => vec![VideoStatus::Ended, VideoStatus::Recorded],
                VideoKind::Upload => vec![
                    VideoStatus::Uploading,
                    VideoStatus::Processing,
                    VideoStatus::Ready,
                ],
            };
            for s in done {
                let u = model::StatusUpdate {
                    change: StatusChange {
                        status: Some(s),
                        duration_secs: Some(120.0 + i as f64),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                model::apply_status(&mut doc, &u, at).expect("legal");
            }
            doc.counters.views = (i * 37 % 1000) as i64;
            doc
        })
        .collect()
}

struct Outcome {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    micros: Vec<u32>,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// Runs `CLIENTS` workers for `secs`; `rate` None = closed loop, Some(r) = r req/s in total.
async fn drive(
    http: reqwest::Client,
    base: Arc<str>,
    path_of: Arc<dyn Fn(u64) -> String + Send + Sync>,
    secs: u64,
    rate: Option<u64>,
) -> Outcome {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..CLIENTS {
        let (http, base, path_of) = (http.clone(), base.clone(), path_of.clone());
        tasks.push(tokio::spawn(async move {
            let mut micros = Vec::with_capacity(1 << 14);
            let (mut ok, mut errors) = (0usize, 0usize);
            // each worker sends every `interval`, offset so the workers interleave
            let interval = rate.map(|r| Duration::from_secs_f64(CLIENTS as f64 / r as f64));
            let mut next = started
                + interval
                    .map(|i| i.mul_f64(w as f64 / CLIENTS as f64))
                    .unwrap_or_default();
            let mut n: u64 = w as u64 * 7919;
            loop {
                if interval.is_some() {
                    if next >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(next.into()).await;
                } else if Instant::now() >= deadline {
                    break;
                }
                let sent = if interval.is_some() {
                    next
                } else {
                    Instant::now()
                };
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let url = format!("{base}{}", path_of(n >> 33));
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(_) => ok += 1,
                        Err(_) => errors += 1,
                    },
                    _ => errors += 1,
                }
                micros.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                if let Some(i) = interval {
                    next += i;
                }
            }
            (ok, errors, micros)
        }));
    }
    let mut out = Outcome {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        micros: Vec::new(),
    };
    for t in tasks {
        let (ok, errors, micros) = t.await.expect("worker");
        out.ok += ok;
        out.errors += errors;
        out.micros.extend(micros);
    }
    out.elapsed = started.elapsed();
    out.micros.sort_unstable();
    out
}

fn report(name: &str, mode: &str, o: &Outcome) {
    eprintln!(
        "{name:<28} {mode:<13} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  ({} ok, {} errors)",
        o.ok as f64 / o.elapsed.as_secs_f64(),
        pct(&o.micros, 0.50),
        pct(&o.micros, 0.99),
        o.micros.last().map(|m| *m as f64 / 1000.0).unwrap_or(f64::NAN),
        o.ok,
        o.errors,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args();
    let url = std::env::var("CAUDAL_MONGO_URL").map_err(|_| {
        anyhow::anyhow!(
            "CAUDAL_MONGO_URL is not set (e.g. mongodb://127.0.0.1:27117/?directConnection=true)"
        )
    })?;
    let database = format!(
        "caudal_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let config = metadata_svc::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        mongo_url: url.clone(),
        database: database.clone(),
        cache_ttl_ms: if args.cache {
            args.ttl_ms
                .unwrap_or(metadata_svc::Config::default().cache_ttl_ms)
        } else {
            0
        },
        ..Default::default()
    };
    let client = mongodb::Client::with_uri_str(&url).await?;
    let db = client.database(&database);
    let result = run(&args, config, &db).await;
    db.drop().await?;
    result
}

async fn run(
    args: &Args,
    config: metadata_svc::Config,
    db: &mongodb::Database,
) -> anyhow::Result<()> {
    let seeding = Instant::now();
    let docs = seed_docs();
    let videos = db.collection::<model::VideoDoc>("videos");
    for chunk in docs.chunks(250) {
        videos.insert_many(chunk).await?;
    }
    eprintln!(
        "seeded {VIDEOS} videos of {OWNERS} creators in {:?}",
        seeding.elapsed()
    );

    let shutdown = tokio_util::sync::CancellationToken::new();
    let cache_ttl = config.cache_ttl_ms;
    let (addr, server) = metadata_svc::start(config, shutdown.clone()).await?;
    eprintln!(
        "metadata-svc on {addr}, read cache {}, {CLIENTS} clients, {} s per run, paced rate {} req/s",
        if cache_ttl > 0 { format!("on ({cache_ttl} ms TTL)") } else { "off".into() },
        args.secs,
        args.rate
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let base: Arc<str> = Arc::from(format!("http://{addr}"));

    let by_id: Arc<dyn Fn(u64) -> String + Send + Sync> =
        Arc::new(|n| format!("/internal/v1/videos/bench{:05}", n % VIDEOS as u64));
    let by_owner: Arc<dyn Fn(u64) -> String + Send + Sync> = Arc::new(|n| {
        format!(
            "/internal/v1/videos?owner=creator-{}&limit=20",
            n % OWNERS as u64
        )
    });

    // sanity: both answer what was seeded
    let one: serde_json::Value = http
        .get(format!("{base}{}", by_id(7)))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(one["id"] == "bench00007", "unexpected answer {one}");
    let page: serde_json::Value = http
        .get(format!("{base}{}", by_owner(3)))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(
        page["items"].as_array().map(Vec::len) == Some(20),
        "unexpected page {page}"
    );

    for (name, path_of) in [
        ("GET /videos/{id}", by_id),
        ("GET /videos?owner=&limit=20", by_owner),
    ] {
        let warm = drive(http.clone(), base.clone(), path_of.clone(), 1, None).await;
        drop(warm);
        let max = drive(http.clone(), base.clone(), path_of.clone(), args.secs, None).await;
        report(name, "max (closed)", &max);
        let paced = drive(
            http.clone(),
            base.clone(),
            path_of.clone(),
            args.secs,
            Some(args.rate),
        )
        .await;
        report(name, &format!("paced {}/s", args.rate), &paced);
    }
    shutdown.cancel();
    let _ = server.await;
    Ok(())
}
