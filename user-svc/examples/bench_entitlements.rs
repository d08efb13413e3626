//! Load test of the two hot internal endpoints: entitlement checks (bff, every protected
//! play) and stream-key validation (ingest, every publish).
//!
//! Starts user-svc in process against a fresh database on the server `DATABASE_URL` points
//! at (created as `caudal_test_bench_<random>`, dropped at the end), seeds creators, plans,
//! stream keys, viewers, subscriptions and purchases through the API, then drives each
//! endpoint from 64 concurrent HTTP clients: first at a fixed 2,000 requests/s (latency
//! measured from the scheduled send time, so queueing counts), then as fast as possible.
//!
//! ```text
//! DATABASE_URL=mysql://caudal:caudal@127.0.0.1:23306/caudal \
//!   cargo run -p user-svc --example bench_entitlements -- [seconds per phase, default 10]
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rand::seq::SliceRandom as _;
use rand::SeedableRng as _;
use serde_json::{json, Value};
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;
use user_svc::Config;

const CLIENTS: usize = 64;
const TARGET_RATE: f64 = 2_000.0;
const CREATORS: usize = 40;
const VIEWERS: usize = 200;

struct Seed {
    creators: Vec<String>,
    viewers: Vec<String>,
    /// (viewer, creator) pairs with a subscription.
    subscribed: Vec<(String, String)>,
    /// (viewer, creator, video) with a completed purchase.
    purchased: Vec<(String, String, String)>,
    keys: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let server_url =
        std::env::var("DATABASE_URL").context("set DATABASE_URL to the MariaDB server")?;
    let db_name = format!("caudal_test_bench_{}", uuid::Uuid::new_v4().simple());
    let Some(base) = server_url.rsplit_once('/').map(|(b, _)| b.to_string()) else {
        bail!("DATABASE_URL must look like mysql://user:pass@host:port/db");
    };
    let mut admin = sqlx::MySqlConnection::connect(&server_url)
        .await
        .context("connecting to DATABASE_URL")?;
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin)
        .await?;
    let result = bench(&format!("{base}/{db_name}"), secs).await;
    sqlx::query(&format!("DROP DATABASE {db_name}"))
        .execute(&mut admin)
        .await?;
    result
}

async fn bench(db_url: &str, secs: u64) -> anyhow::Result<()> {
    let mut config = Config::for_tests(db_url);
    // BENCH_POOL: database connections (default 32, the service's default)
    config.database_max_connections = std::env::var("BENCH_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let shutdown = CancellationToken::new();
    let (addr, server) = user_svc::start(config, shutdown.clone()).await?;
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS * 2)
        .build()?;

    let t = Instant::now();
    let seed = Arc::new(seed(&http, &base).await?);
    println!(
        "seeded {} creators, {} viewers, {} subscriptions, {} purchases, {} stream keys in {:.1}s",
        seed.creators.len(),
        seed.viewers.len(),
        seed.subscribed.len(),
        seed.purchased.len(),
        seed.keys.len(),
        t.elapsed().as_secs_f64()
    );
    println!("{CLIENTS} clients, {secs}s per phase; latency in ms from the scheduled send time\n");
    println!(
        "{:<44} {:>8} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7}",
        "phase", "requests", "errors", "req/s", "p50", "p90", "p99", "max"
    );

    for (name, kind) in [
        ("floor: GET /healthz (no database)", Kind::Floor),
        ("entitlement check", Kind::Entitlement),
        ("stream-key validate", Kind::Validate),
    ] {
        // warm-up: connections, caches, buffer pool
        run_phase(
            &http,
            &base,
            &seed,
            kind,
            Some(TARGET_RATE),
            Duration::from_secs(2),
        )
        .await;
        let fixed = run_phase(
            &http,
            &base,
            &seed,
            kind,
            Some(TARGET_RATE),
            Duration::from_secs(secs),
        )
        .await;
        fixed.print(&format!("{name} @ {TARGET_RATE:.0}/s"));
        let max = run_phase(&http, &base, &seed, kind, None, Duration::from_secs(secs)).await;
        max.print(&format!("{name} @ max"));
    }
    shutdown.cancel();
    server.await?;
    Ok(())
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut req = http.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, v))
}

async fn signup(
    http: &reqwest::Client,
    base: &str,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let (s, v) = post(
        http,
        format!("{base}/v1/auth/signup"),
        None,
        json!({"email": format!("{name}@bench.local"), "password": "bench-password", "display_name": name}),
    )
    .await?;
    if s != 201 {
        bail!("signup answered {s}: {v}");
    }
    Ok((
        v["user"]["id"].as_str().unwrap_or_default().into(),
        v["access_token"].as_str().unwrap_or_default().into(),
    ))
}

async fn seed(http: &reqwest::Client, base: &str) -> anyhow::Result<Seed> {
    let mut s = Seed {
        creators: vec![],
        viewers: vec![],
        subscribed: vec![],
        purchased: vec![],
        keys: vec![],
    };
    for i in 0..CREATORS {
        let (id, token) = signup(http, base, &format!("creator{i}")).await?;
        post(
            http,
            format!("{base}/v1/me/become-creator"),
            Some(&token),
            json!({}),
        )
        .await?;
        let plan = http
            .put(format!("{base}/v1/me/plan"))
            .bearer_auth(&token)
            .json(&json!({"price_minor": 500, "currency": "EUR"}))
            .send()
            .await?;
        if !plan.status().is_success() {
            bail!("plan answered {}", plan.status());
        }
        let (st, key) = post(
            http,
            format!("{base}/v1/stream-keys"),
            Some(&token),
            json!({}),
        )
        .await?;
        if st != 201 {
            bail!("stream key answered {st}: {key}");
        }
        s.keys.push(key["key"].as_str().unwrap_or_default().into());
        s.creators.push(id);
    }
    for i in 0..VIEWERS {
        let (id, token) = signup(http, base, &format!("viewer{i}")).await?;
        let creator = s.creators[i % CREATORS].clone();
        if i % 2 == 0 {
            let (st, v) = post(
                http,
                format!("{base}/v1/subscriptions"),
                Some(&token),
                json!({"creator_id": creator}),
            )
            .await?;
            if st != 201 {
                bail!("subscribe answered {st}: {v}");
            }
            s.subscribed.push((id.clone(), creator.clone()));
        }
        if i % 3 == 0 {
            let video = format!("video-{}", i % 50);
            let (st, v) = post(
                http,
                format!("{base}/v1/purchases"),
                Some(&token),
                json!({"video_id": video, "creator_id": creator, "price_minor": 199, "currency": "EUR", "idempotency_key": format!("seed-{i}")}),
            )
            .await?;
            if st != 201 {
                bail!("purchase answered {st}: {v}");
            }
            s.purchased.push((id.clone(), creator, video));
        }
        s.viewers.push(id);
    }
    Ok(s)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Entitlement,
    Validate,
    /// `GET /healthz`: no database; the floor of this harness on this machine.
    Floor,
}

/// One request of the mix, and the status it must answer.
fn next_request(seed: &Seed, kind: Kind, rng: &mut impl rand::Rng) -> (String, Value, u16) {
    match kind {
        Kind::Entitlement => {
            let roll = rng.gen_range(0..100);
            let body = if roll < 30 {
                let (u, c) = seed.subscribed.choose(rng).expect("seeded");
                json!({"user_id": u, "owner_id": c, "video_id": "v", "policy": {"policy": "subscribers"}})
            } else if roll < 55 {
                let (u, c, v) = seed.purchased.choose(rng).expect("seeded");
                json!({"user_id": u, "owner_id": c, "video_id": v, "policy": {"policy": "purchase", "price_minor": 199, "currency": "EUR"}})
            } else if roll < 85 {
                // mostly denied: random viewer, random creator, with an offer to build
                let u = seed.viewers.choose(rng).expect("seeded");
                let c = seed.creators.choose(rng).expect("seeded");
                let policy = if roll % 2 == 0 {
                    json!({"policy": "subscribers"})
                } else {
                    json!({"policy": "purchase", "price_minor": 199, "currency": "EUR"})
                };
                json!({"user_id": u, "owner_id": c, "video_id": "video-x", "policy": policy})
            } else {
                let c = seed.creators.choose(rng).expect("seeded");
                json!({"user_id": null, "owner_id": c, "video_id": "v", "policy": {"policy": "subscribers"}})
            };
            ("/internal/v1/entitlements/check".into(), body, 200)
        }
        Kind::Floor => ("/healthz".into(), Value::Null, 200),
        Kind::Validate => {
            if rng.gen_bool(0.9) {
                let key = seed.keys.choose(rng).expect("seeded");
                (
                    "/internal/v1/stream-keys/validate".into(),
                    json!({"key": key}),
                    200,
                )
            } else {
                (
                    "/internal/v1/stream-keys/validate".into(),
                    json!({"key": format!("live_{}", rng.gen::<u64>())}),
                    404,
                )
            }
        }
    }
}

struct PhaseResult {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

impl PhaseResult {
    fn print(&self, name: &str) {
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        let pct = |p: f64| -> f64 {
            if l.is_empty() {
                return 0.0;
            }
            let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
            l[i] as f64 / 1000.0
        };
        println!(
            "{:<44} {:>8} {:>7} {:>9.0} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            name,
            l.len(),
            self.errors,
            l.len() as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(1.0)
        );
    }
}

/// `rate`: total requests per second across all clients, or `None` for closed-loop max.
async fn run_phase(
    http: &reqwest::Client,
    base: &str,
    seed: &Arc<Seed>,
    kind: Kind,
    rate: Option<f64>,
    duration: Duration,
) -> PhaseResult {
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (http, base, seed) = (http.clone(), base.to_string(), seed.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_entropy();
            let interval = rate.map(|r| Duration::from_secs_f64(CLIENTS as f64 / r));
            // spread the clients' schedules evenly over one interval
            let mut next = start
                + interval
                    .map(|i| i.mul_f64(client as f64 / CLIENTS as f64))
                    .unwrap_or_default();
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                if interval.is_some() {
                    tokio::time::sleep_until(next.into()).await;
                } else {
                    next = Instant::now();
                }
                if next >= end {
                    break;
                }
                let (path, body, want) = next_request(&seed, kind, &mut rng);
                let req = if kind == Kind::Floor {
                    http.get(format!("{base}{path}"))
                } else {
                    http.post(format!("{base}{path}")).json(&body)
                };
                let ok = match req.send().await {
                    Ok(resp) => resp.status().as_u16() == want && resp.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(next.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
                if let Some(i) = interval {
                    next += i;
                }
            }
            (latencies, errors)
        }));
    }
    let mut result = PhaseResult {
        latencies_us: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (l, e) = t.await.expect("client task");
        result.latencies_us.extend(l);
        result.errors += e;
    }
    result.elapsed = start.elapsed().min(duration).max(Duration::from_millis(1));
    result
}
