//! Segment write and read throughput of one S3-compatible store, through the same client the
//! services use (`storage::S3Store`, aws-sdk-s3). `bench/cluster.sh` runs it against the
//! Garage cluster and against s3s-fs.
//!
//!   bench_store ENDPOINT ACCESS_KEY SECRET_KEY [OBJECTS] [BYTES] [CONCURRENCY]
//!
//! Writes OBJECTS objects of BYTES (default 400 of 1 MiB: a 2 s segment at 4 Mbit/s) with
//! CONCURRENCY requests in flight (default 8), reads them all back the same way, checks every
//! byte, deletes them, and prints one line per phase: objects/s, MB/s, p50 and p99 latency.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark prints its figures

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use storage::{CachePolicy, ObjectMeta, S3Config, StoreConfig};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(phase: &str, n: usize, bytes: usize, took: Duration, mut lat: Vec<Duration>) {
    lat.sort();
    let secs = took.as_secs_f64();
    println!(
        "{phase:<6} {n} objects of {bytes} B in {secs:.2} s: {:.0} objects/s, {:.1} MB/s, p50 {:.1} ms, p99 {:.1} ms",
        n as f64 / secs,
        (n * bytes) as f64 / secs / 1e6,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!(
            "usage: bench_store ENDPOINT ACCESS_KEY SECRET_KEY [OBJECTS] [BYTES] [CONCURRENCY]"
        );
        std::process::exit(2);
    }
    let arg = |i: usize, default: usize| -> usize {
        args.get(i)
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let (objects, size, concurrency) = (arg(4, 400), arg(5, 1 << 20), arg(6, 8));
    let store = StoreConfig::S3(S3Config {
        endpoint: args[1].clone(),
        region: "us-east-1".into(),
        bucket: "media".into(),
        path_style: true,
        access_key_id: args[2].clone(),
        secret_access_key: args[3].clone(),
        prefix: format!("bench-{}/", std::process::id()),
        create_bucket: true,
    })
    .open()
    .await?;
    // every object distinct, so nothing can be answered from a cache of an earlier one
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..objects)
            .map(|i| {
                Bytes::from(
                    (0..size)
                        .map(|j| ((i * 31 + j * 7) % 251) as u8)
                        .collect::<Vec<u8>>(),
                )
            })
            .collect(),
    );
    let key = |i: usize| format!("seg_{i:05}.m4s");

    let started = Instant::now();
    let lat: Vec<Duration> = stream::iter(0..objects)
        .map(|i| {
            let (store, bodies) = (store.clone(), bodies.clone());
            async move {
                let t = Instant::now();
                let k = key(i);
                store
                    .put(
                        &k,
                        bodies[i].clone(),
                        &ObjectMeta::for_key(&k, CachePolicy::Immutable),
                    )
                    .await
                    .expect("put");
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    report("write", objects, size, started.elapsed(), lat);

    let started = Instant::now();
    let lat: Vec<Duration> = stream::iter(0..objects)
        .map(|i| {
            let (store, bodies) = (store.clone(), bodies.clone());
            async move {
                let t = Instant::now();
                let got = store.get(&key(i)).await.expect("get");
                assert!(got == bodies[i], "object {i} came back different");
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    report("read", objects, size, started.elapsed(), lat);

    stream::iter(0..objects)
        .for_each_concurrent(concurrency, |i| {
            let store = store.clone();
            async move {
                let _ = store.delete(&key(i)).await;
            }
        })
        .await;
    Ok(())
}
