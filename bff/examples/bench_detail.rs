//! Load test of the watch screen, `GET /v1/videos/{id}`, for entitled viewers: each of 64
//! clients is a different signed-in viewer subscribed to the creator of a subscribers-only
//! live video, so every answer carries `access.reason = subscribed` and a signed playback URL.
//! This is playback-token issuance: the access check (always asked of user-svc when a token
//! is handed out) plus signing. Goal: p99 < 10 ms at 1,000 requests/s.
//!
//! Everything runs in this process on loopback, over real HTTP: metadata-svc (MongoDB-
//! compatible server) and user-svc (MariaDB) through `test-stack`, bff, and the floor: an
//! axum handler answering a fixed JSON body of exactly the same size. Each target is driven
//! by 64 concurrent clients, first paced at 1,000 requests/s (latency measured from the
//! scheduled send time, so queueing counts), then as fast as they go. bff runs twice: with
//! its default short caches (token identity, creator profile, granted access) and with them
//! off (every request asks user-svc `GET /v1/me` and the entitlement check, and metadata-svc
//! for the video).
//!
//! ```text
//! DATABASE_URL=mysql://caudal:caudal@127.0.0.1:23306/caudal \
//! CAUDAL_MONGO_URL='mongodb://127.0.0.1:27117/?directConnection=true' \
//!   cargo run -p bff --example bench_detail -- [seconds per phase, default 5] [rounds, default 3]
//! ```
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::header;
use axum::routing::get;
use bytes::Bytes;
use serde_json::{json, Value};
use service_clients::metadata::{
    AccessPolicy, NewVideo, PlaybackLocations, VideoKind, VideoStatus, Visibility,
};
use test_stack::{Stack, StackOptions};
use tokio_util::sync::CancellationToken;

const CLIENTS: usize = 64;
const TARGET_RATE: f64 = 1_000.0;

struct Outcome {
    latencies_us: Vec<u32>,
    errors: usize,
    elapsed: Duration,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// 64 clients, client `i` with `tokens[i]`; paced at `rate` (None: as fast as they go).
async fn drive(
    http: &reqwest::Client,
    url: &str,
    tokens: &[String],
    rate: Option<f64>,
    secs: u64,
) -> Outcome {
    let start = Instant::now() + Duration::from_millis(50);
    let until = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate().take(CLIENTS) {
        let (http, url, token) = (http.clone(), url.to_string(), format!("Bearer {token}"));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut k = 0u64;
            loop {
                let scheduled = match rate {
                    Some(r) => {
                        start + Duration::from_secs_f64((k * CLIENTS as u64 + i as u64) as f64 / r)
                    }
                    None => Instant::now().max(start),
                };
                if scheduled >= until {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let ok = match http
                    .get(&url)
                    .header(header::AUTHORIZATION, &token)
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    lat.push(scheduled.elapsed().as_micros().min(u32::MAX as u128) as u32);
                } else {
                    errors += 1;
                }
                k += 1;
            }
            (lat, errors)
        }));
    }
    let mut out = Outcome {
        latencies_us: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (l, e) = t.await.expect("client task");
        out.latencies_us.extend(l);
        out.errors += e;
    }
    out.elapsed = Instant::now()
        .saturating_duration_since(start)
        .min(Duration::from_secs(secs) + Duration::from_secs(5));
    out.latencies_us.sort_unstable();
    out
}

/// One phase's figures: (req/s, p50, p99, max in ms, errors).
fn figures(o: &Outcome) -> (f64, f64, f64, f64, usize) {
    let rate = o.latencies_us.len() as f64 / o.elapsed.as_secs_f64();
    (
        rate,
        pct(&o.latencies_us, 0.50),
        pct(&o.latencies_us, 0.99),
        pct(&o.latencies_us, 1.0),
        o.errors,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

async fn json_call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = http.request(method, url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    anyhow::ensure!(status.is_success(), "{status}: {v}");
    Ok(v)
}

async fn start_bff(
    stack: &Stack,
    caches: bool,
    stop: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let mut cfg = bff::Config::for_tests(
        &format!("http://{}", stack.users_addr),
        &format!("http://{}", stack.metadata_addr),
        "http://edge.bench",
    );
    cfg.rate_limit.auth_burst = 10_000;
    cfg.rate_limit.purchase_burst = 10_000;
    if !caches {
        cfg.identity_cache_ms = 0;
        cfg.profile_cache_ms = 0;
        cfg.entitlement_cache_ms = 0;
    }
    Ok(bff::start(cfg, stop.clone()).await?.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = arg(1, 5);
    let rounds = arg(2, 3).max(1) as usize;
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let bff_cached = start_bff(&stack, true, &stop).await?;
    let bff_uncached = start_bff(&stack, false, &stop).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS * 2)
        .tcp_nodelay(true)
        .build()?;
    let base = format!("http://{bff_cached}");
    let post = reqwest::Method::POST;

    // a creator with a plan and a subscribers-only broadcast on air
    let creator = json_call(&http, post.clone(), format!("{base}/v1/auth/signup"), None,
        json!({"email": format!("{}@bench.example", test_stack::random_name("c")), "password": "bench password 1", "display_name": "Bench Creator"})).await?;
    let (ctoken, cid) = (
        creator["access_token"].as_str().unwrap().to_string(),
        creator["user"]["id"].as_str().unwrap().to_string(),
    );
    json_call(
        &http,
        post.clone(),
        format!("{base}/v1/me/become-creator"),
        Some(&ctoken),
        json!({}),
    )
    .await?;
    json_call(
        &http,
        reqwest::Method::PUT,
        format!("{base}/v1/studio/plan"),
        Some(&ctoken),
        json!({"price_minor": 500, "currency": "EUR"}),
    )
    .await?;
    let id = test_stack::random_name("bench");
    stack
        .metadata
        .create_video(&NewVideo {
            id: Some(id.clone()),
            owner_id: cid.clone(),
            kind: VideoKind::Live,
            title: "Subscribers-only benchmark broadcast".into(),
            description: "A live broadcast used to measure the watch screen.".into(),
            tags: vec!["bench".into(), "live".into()],
            visibility: Visibility::Public,
            access: AccessPolicy::Subscribers,
            status: Some(VideoStatus::Live),
            started_at: Some(chrono::Utc::now()),
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
        })
        .await?;

    // 64 subscribed viewers
    let mut tokens = Vec::new();
    for i in 0..CLIENTS {
        let v = json_call(&http, post.clone(), format!("{base}/v1/auth/signup"), None,
            json!({"email": format!("{}@bench.example", test_stack::random_name("v")), "password": "bench password 1", "display_name": format!("Viewer {i}")})).await?;
        let t = v["access_token"].as_str().unwrap().to_string();
        json_call(
            &http,
            post.clone(),
            format!("{base}/v1/subscriptions"),
            Some(&t),
            json!({"creator_id": cid}),
        )
        .await?;
        tokens.push(t);
    }
    let path = format!("/v1/videos/{id}");
    let sample = http
        .get(format!("{base}{path}"))
        .bearer_auth(&tokens[0])
        .send()
        .await?
        .bytes()
        .await?;
    let check: Value = serde_json::from_slice(&sample)?;
    anyhow::ensure!(
        check["access"]["reason"] == "subscribed" && check["playback"]["url"].is_string(),
        "not entitled: {check}"
    );

    // the floor: the same bytes from a handler that does nothing
    let body = Bytes::from(sample.to_vec());
    let floor_router = axum::Router::new().route(
        "/v1/videos/{id}",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let (floor, _) = service_kit::serve("127.0.0.1:0".parse()?, floor_router, stop.clone()).await?;

    let targets: [(&str, SocketAddr); 3] = [
        ("floor (fixed JSON)", floor),
        ("bff", bff_cached),
        ("bff, caches off", bff_uncached),
    ];
    // warm the connection pools and caches
    for (_, addr) in &targets {
        drive(
            &http,
            &format!("http://{addr}{path}"),
            &tokens,
            Some(TARGET_RATE),
            1,
        )
        .await;
    }
    println!(
        "GET /v1/videos/{{id}}, entitled viewer, {CLIENTS} clients, answer {} bytes, {} cores; {rounds} rounds of {secs} s per phase,\n\
         targets interleaved round by round so that load from elsewhere on the machine hits them alike\n",
        sample.len(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "{:<5} {:<22} {:<8} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "round", "target", "load", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    // per target: (p99 at 1000/s, max req/s) of every round
    let mut paced_p99: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut max_rate: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for round in 1..=rounds {
        for (mode, rate) in [("1000/s", Some(TARGET_RATE)), ("max", None)] {
            for (i, (name, addr)) in targets.iter().enumerate() {
                let o = drive(&http, &format!("http://{addr}{path}"), &tokens, rate, secs).await;
                let (r, p50, p99, max, errors) = figures(&o);
                println!("{round:<5} {name:<22} {mode:<8} {r:>9.0} {p50:>9.2} {p99:>9.2} {max:>9.2} {errors:>7}");
                if rate.is_some() {
                    paced_p99[i].push(p99);
                } else {
                    max_rate[i].push(r);
                }
            }
        }
    }
    let floor_p99 = median(paced_p99[0].clone());
    let floor_rate = median(max_rate[0].clone());
    println!("\nmedians over {rounds} rounds:");
    println!(
        "{:<22} p99 at 1000/s {floor_p99:.2} ms, max throughput {floor_rate:.0} req/s",
        targets[0].0
    );
    for (i, (name, _)) in targets.iter().enumerate().skip(1) {
        let (p99, rate) = (median(paced_p99[i].clone()), median(max_rate[i].clone()));
        println!(
            "{name:<22} p99 at 1000/s {p99:.2} ms ({:.1}x the floor; goal < 10 ms: {}), max throughput {rate:.0} req/s ({:.2} of the floor)",
            p99 / floor_p99,
            if p99 < 10.0 { "met" } else { "missed" },
            rate / floor_rate,
        );
    }
    stop.cancel();
    stack.stop().await;
    Ok(())
}
