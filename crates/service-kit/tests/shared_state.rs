//! The shared state against the real Redis that scripts/test.sh starts
//! (`CAUDAL_TEST_REDIS_URL`): what two instances of a service see of each other.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use service_kit::shared::{Invalidations, RateLimiter, Shared};
use tokio_util::sync::CancellationToken;

fn redis_url() -> String {
    std::env::var("CAUDAL_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("CAUDAL_TEST_REDIS_URL is not set: run the tests with scripts/test.sh, which starts Redis")
    })
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test]
async fn two_instances_draw_from_one_bucket() {
    let url = redis_url();
    let (a, b) = (
        Shared::connect(&url, "a").await.unwrap(),
        Shared::connect(&url, "b").await.unwrap(),
    );
    let service = unique("test");
    let (la, lb) = (
        RateLimiter::new("login", 3, 60),
        RateLimiter::new("login", 3, 60),
    );
    la.share(&a, &service);
    lb.share(&b, &service);
    assert_eq!(la.check("1.2.3.4").await, Ok(()));
    assert_eq!(lb.check("1.2.3.4").await, Ok(()));
    assert_eq!(la.check("1.2.3.4").await, Ok(()));
    // the burst is spent across both instances: each one says when a token comes back
    let wait = lb.check("1.2.3.4").await.unwrap_err();
    assert!((1..=2).contains(&wait), "{wait}");
    assert!(la.peek("1.2.3.4").await.is_err());
    // other keys have their own bucket
    assert_eq!(lb.check("5.6.7.8").await, Ok(()));
    // alone (no shared state), an instance would have allowed three more
    let alone = RateLimiter::new("login", 3, 60);
    assert_eq!(alone.check("1.2.3.4").await, Ok(()));
}

#[tokio::test]
async fn a_bucket_refills_on_redis_time() {
    let url = redis_url();
    let s = Shared::connect(&url, "a").await.unwrap();
    let service = unique("test");
    // one token a second
    let l = RateLimiter::new("fast", 1, 60);
    l.share(&s, &service);
    assert_eq!(l.check("k").await, Ok(()));
    assert_eq!(l.check("k").await, Err(1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(l.check("k").await, Ok(()));
}

/// A TCP relay to the real Redis that can be cut: what an instance sees when Redis goes away.
async fn relay(to: &str) -> (String, CancellationToken) {
    let target = to
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = CancellationToken::new();
    let c = cut.clone();
    tokio::spawn(async move {
        loop {
            let (mut inbound, _) = tokio::select! {
                _ = c.cancelled() => return,
                a = listener.accept() => a.unwrap(),
            };
            let (target, c) = (target.clone(), c.clone());
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(&target).await.unwrap();
                tokio::select! {
                    _ = c.cancelled() => {}
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                }
            });
        }
    });
    (format!("redis://{addr}"), cut)
}

#[tokio::test]
async fn with_redis_gone_an_instance_limits_alone() {
    // a Redis that cannot be reached at start-up stops the start
    assert!(Shared::connect("redis://127.0.0.1:1", "x").await.is_err());
    // one that goes away later: the instance keeps limiting, with its own buckets
    let (url, cut) = relay(&redis_url()).await;
    let s = Shared::connect(&url, "gone").await.unwrap();
    let l = RateLimiter::new("gone", 2, 1);
    l.share(&s, &unique("test"));
    assert_eq!(l.check("k").await, Ok(()));
    cut.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // a fresh local bucket: two tokens, then none
    let answers = [l.check("k").await, l.check("k").await, l.check("k").await];
    assert_eq!(answers[..2], [Ok(()), Ok(())]);
    assert!(answers[2].is_err(), "the local bucket limits: {answers:?}");
}

#[tokio::test]
async fn invalidations_reach_the_other_instances_not_the_sender() {
    let url = redis_url();
    let (a, b) = (
        Shared::connect(&url, "inst-a").await.unwrap(),
        Shared::connect(&url, "inst-b").await.unwrap(),
    );
    let channel = unique("caudal:test:inv");
    let (bus_a, bus_b) = (
        Invalidations::new(&a, &channel),
        Invalidations::new(&b, &channel),
    );
    let seen_a = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen_b = Arc::new(Mutex::new(Vec::<String>::new()));
    let resyncs_b = Arc::new(Mutex::new(0));
    let stop = CancellationToken::new();
    let (sa, sb, rb) = (seen_a.clone(), seen_b.clone(), resyncs_b.clone());
    bus_a.listen(
        move |m| sa.lock().unwrap().push(m.to_string()),
        || {},
        stop.clone(),
    );
    bus_b.listen(
        move |m| sb.lock().unwrap().push(m.to_string()),
        move || *rb.lock().unwrap() += 1,
        stop.clone(),
    );
    // both subscribed (each resyncs once when its subscription starts)
    for _ in 0..100 {
        if *resyncs_b.lock().unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus_a.publish("catalog v1").await;
    bus_a.publish("catalog v2").await;
    for _ in 0..100 {
        if seen_b.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*seen_b.lock().unwrap(), vec!["catalog v1", "catalog v2"]);
    assert!(
        seen_a.lock().unwrap().is_empty(),
        "an instance ignores its own messages"
    );
    stop.cancel();
}
