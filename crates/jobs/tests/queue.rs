//! The job queue against a real nats-server (`CAUDAL_TEST_NATS_URL`, started by
//! scripts/test.sh). Each test has its own streams, consumer and subjects, so they run in
//! parallel on one server, and deletes its streams at the end.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use jobs::{DeadLetter, JobsConfig, Queue};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Transcode {
    video_id: String,
    source: String,
    rungs: Vec<u32>,
}

fn transcode(video_id: &str) -> Transcode {
    Transcode {
        video_id: video_id.into(),
        source: format!("uploads/{video_id}/source.mp4"),
        rungs: vec![1080, 720, 360],
    }
}

fn nats_url() -> String {
    std::env::var("CAUDAL_TEST_NATS_URL").unwrap_or_else(|_| {
        panic!("CAUDAL_TEST_NATS_URL is not set: run the tests with scripts/test.sh, which starts nats-server")
    })
}

/// A config with names of its own.
fn config(ack_wait_secs: u64, max_deliver: i64) -> JobsConfig {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
    JobsConfig {
        url: nats_url(),
        stream: format!("TEST_JOBS_{suffix}"),
        subject_prefix: format!("test.{suffix}.jobs"),
        consumer: format!("workers_{suffix}"),
        ack_wait_secs,
        max_deliver,
        dead_letter_subject: format!("test.{suffix}.dead"),
        ..JobsConfig::default()
    }
}

async fn jetstream(cfg: &JobsConfig) -> jetstream::Context {
    let client = async_nats::connect(cfg.url.as_str())
        .await
        .expect("connect to nats-server");
    jetstream::new(client)
}

/// Jobs still in the work stream.
async fn work_stream_len(cfg: &JobsConfig) -> u64 {
    jetstream(cfg)
        .await
        .get_stream(&cfg.stream)
        .await
        .expect("work stream")
        .get_info()
        .await
        .expect("work stream info")
        .state
        .messages
}

async fn delete_streams(cfg: &JobsConfig) {
    let js = jetstream(cfg).await;
    for name in [cfg.stream.clone(), cfg.dead_letter_stream()] {
        js.delete_stream(&name).await.expect("delete test stream");
    }
}

async fn next_job(queue: &Queue) -> jobs::Job {
    queue
        .next(Duration::from_secs(10))
        .await
        .expect("pull a job")
        .expect("a job within 10s")
}

#[tokio::test]
async fn enqueued_job_is_delivered_once_and_done() {
    let cfg = config(1, 3);
    let queue = Queue::connect(&cfg).await.expect("connect");
    queue
        .enqueue("transcode", "video-1", &transcode("video-1"))
        .await
        .expect("enqueue");

    let job = next_job(&queue).await;
    assert_eq!(job.kind(), "transcode");
    assert_eq!(job.id(), "video-1");
    assert_eq!(job.attempt(), 1);
    assert!(!job.last_attempt());
    assert_eq!(
        job.decode::<Transcode>().expect("decode"),
        transcode("video-1")
    );
    job.done().await.expect("done");

    assert!(queue.next(Duration::ZERO).await.expect("pull").is_none());
    // an unacknowledged job would be back after ack_wait (1s)
    let again = queue.next(Duration::from_millis(2500)).await.expect("pull");
    assert!(again.is_none(), "a finished job came back: {again:?}");
    assert_eq!(work_stream_len(&cfg).await, 0);
    delete_streams(&cfg).await;
}

#[tokio::test]
async fn duplicate_enqueue_is_delivered_once() {
    let cfg = config(30, 3);
    let queue = Queue::connect(&cfg).await.expect("connect");
    for _ in 0..2 {
        queue
            .enqueue("transcode", "video-2", &transcode("video-2"))
            .await
            .expect("enqueue");
    }
    // a different id is a different job
    queue
        .enqueue("transcode", "video-3", &transcode("video-3"))
        .await
        .expect("enqueue");
    assert_eq!(work_stream_len(&cfg).await, 2);

    let mut ids = Vec::new();
    while let Some(job) = queue.next(Duration::from_secs(1)).await.expect("pull") {
        ids.push(job.id().to_owned());
        job.done().await.expect("done");
    }
    ids.sort();
    assert_eq!(ids, ["video-2", "video-3"]);
    delete_streams(&cfg).await;
}

#[tokio::test]
async fn job_of_a_dead_worker_goes_to_another_worker() {
    let cfg = config(1, 3);
    let dying = Queue::connect(&cfg).await.expect("connect");
    let survivor = Queue::connect(&cfg).await.expect("connect");
    dying
        .enqueue("transcode", "video-4", &transcode("video-4"))
        .await
        .expect("enqueue");

    let job = next_job(&dying).await;
    assert_eq!(job.attempt(), 1);
    // the worker dies: the job is never settled and its connection goes away
    drop(job);
    drop(dying);

    let started = Instant::now();
    let job = next_job(&survivor).await;
    assert_eq!(job.id(), "video-4");
    assert_eq!(job.attempt(), 2);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        job.decode::<Transcode>().expect("decode"),
        transcode("video-4")
    );
    job.done().await.expect("done");
    delete_streams(&cfg).await;
}

#[tokio::test]
async fn kept_alive_job_is_not_redelivered() {
    // an ack_wait of 3 s: the keep-alive (every second) has room on a busy machine
    let cfg = config(3, 3);
    let worker = Queue::connect(&cfg).await.expect("connect");
    let other = Queue::connect(&cfg).await.expect("connect");
    worker
        .enqueue("transcode", "video-5", &transcode("video-5"))
        .await
        .expect("enqueue");

    let job = next_job(&worker).await;
    let lease = job.keep_alive();
    // three times ack_wait: without the keep-alive it would be delivered here
    let stolen = other.next(Duration::from_secs(9)).await.expect("pull");
    assert!(
        stolen.is_none(),
        "a kept-alive job was redelivered: {stolen:?}"
    );
    drop(lease);
    assert_eq!(job.attempt(), 1);
    job.done().await.expect("done after a long run");

    let again = other.next(Duration::from_secs(4)).await.expect("pull");
    assert!(again.is_none(), "a finished job came back: {again:?}");
    assert_eq!(work_stream_len(&cfg).await, 0);
    delete_streams(&cfg).await;
}

#[tokio::test]
async fn dead_job_is_a_dead_letter_and_not_redelivered() {
    let cfg = config(1, 3);
    let queue = Queue::connect(&cfg).await.expect("connect");
    queue
        .enqueue("transcode", "video-6", &transcode("video-6"))
        .await
        .expect("enqueue");
    assert!(queue.dead_letters().await.expect("dead letters").is_empty());

    let job = next_job(&queue).await;
    job.dead("the source has no video track")
        .await
        .expect("dead");

    assert_eq!(
        queue.dead_letters().await.expect("dead letters"),
        [DeadLetter {
            kind: "transcode".into(),
            id: "video-6".into(),
            reason: "the source has no video track".into(),
            attempts: 1,
            payload: serde_json::to_value(transcode("video-6")).expect("json"),
        }]
    );
    let again = queue.next(Duration::from_millis(2500)).await.expect("pull");
    assert!(again.is_none(), "a dead job came back: {again:?}");
    assert_eq!(work_stream_len(&cfg).await, 0);
    delete_streams(&cfg).await;
}

#[tokio::test]
async fn exhausted_job_is_recorded_once_by_two_watchers() {
    let cfg = config(1, 2);
    let queue = Queue::connect(&cfg).await.expect("connect");
    let other = Queue::connect(&cfg).await.expect("connect");
    let mut watcher = queue.watch_exhausted().await.expect("watch");
    let mut second = other.watch_exhausted().await.expect("watch");
    queue
        .enqueue("transcode", "video-7", &transcode("video-7"))
        .await
        .expect("enqueue");

    // two deliveries, neither settled (the worker hangs or dies each time)
    let first = next_job(&queue).await;
    assert_eq!(first.attempt(), 1);
    drop(first);
    let last = next_job(&queue).await;
    assert_eq!(last.attempt(), 2);
    assert!(last.last_attempt());
    drop(last);
    // JetStream gives up on it when a worker next asks for work after the lease ran out
    let third = queue.next(Duration::from_secs(3)).await.expect("pull");
    assert!(third.is_none(), "delivered a third time: {third:?}");

    let letter = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            letter = watcher.next() => letter,
            letter = second.next() => letter,
        }
    })
    .await
    .expect("an exhausted job within 30s")
    .expect("the watch goes on");
    let expected = DeadLetter {
        kind: "transcode".into(),
        id: "video-7".into(),
        reason: DeadLetter::EXHAUSTED.into(),
        attempts: 2,
        payload: serde_json::to_value(transcode("video-7")).expect("json"),
    };
    assert_eq!(letter, expected);
    assert_eq!(
        queue.dead_letters().await.expect("dead letters"),
        [expected]
    );
    assert_eq!(work_stream_len(&cfg).await, 0);

    // neither watcher reports it again (its sweeps run every second)
    let more = tokio::time::timeout(Duration::from_secs(3), async {
        tokio::select! {
            letter = watcher.next() => letter,
            letter = second.next() => letter,
        }
    })
    .await;
    assert!(more.is_err(), "a second report: {more:?}");
    assert_eq!(queue.dead_letters().await.expect("dead letters").len(), 1);
    assert!(queue.next(Duration::ZERO).await.expect("pull").is_none());
    delete_streams(&cfg).await;
}

#[tokio::test]
async fn job_exhausted_while_no_watcher_ran_is_found_by_the_sweep() {
    let cfg = config(1, 1);
    let queue = Queue::connect(&cfg).await.expect("connect");
    queue
        .enqueue("transcode", "video-8", &transcode("video-8"))
        .await
        .expect("enqueue");
    let only = next_job(&queue).await;
    assert!(only.last_attempt());
    drop(only);
    let again = queue.next(Duration::from_secs(3)).await.expect("pull");
    assert!(again.is_none(), "delivered a second time: {again:?}");

    // wait until JetStream has given up on it (its advisory went to nobody)
    let js = jetstream(&cfg).await;
    let work = js.get_stream(&cfg.stream).await.expect("work stream");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = work
            .consumer_info(&cfg.consumer)
            .await
            .expect("consumer info");
        if info.num_ack_pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "JetStream never gave up on the job: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        work_stream_len(&cfg).await,
        1,
        "the exhausted job stays in the stream"
    );

    let mut watcher = queue.watch_exhausted().await.expect("watch");
    let letter = tokio::time::timeout(Duration::from_secs(30), watcher.next())
        .await
        .expect("the sweep finds it within 30s")
        .expect("the watch goes on");
    assert_eq!((letter.id.as_str(), letter.attempts), ("video-8", 1));
    assert_eq!(letter.reason, DeadLetter::EXHAUSTED);
    assert_eq!(queue.dead_letters().await.expect("dead letters"), [letter]);
    assert_eq!(work_stream_len(&cfg).await, 0);
    delete_streams(&cfg).await;
}

#[tokio::test]
async fn retried_job_comes_back_after_the_delay() {
    let cfg = config(30, 3);
    let queue = Queue::connect(&cfg).await.expect("connect");
    queue
        .enqueue("transcode", "video-9", &transcode("video-9"))
        .await
        .expect("enqueue");

    let job = next_job(&queue).await;
    assert_eq!(job.attempt(), 1);
    let delay = Duration::from_secs(2);
    let asked = Instant::now();
    job.retry(delay).await.expect("retry");

    let job = next_job(&queue).await;
    let waited = asked.elapsed();
    assert!(
        waited >= delay,
        "redelivered after {waited:?}, before the {delay:?} delay"
    );
    assert_eq!(job.id(), "video-9");
    assert_eq!(job.attempt(), 2);
    job.done().await.expect("done");
    assert!(queue.dead_letters().await.expect("dead letters").is_empty());
    delete_streams(&cfg).await;
}

#[tokio::test]
async fn retry_on_the_last_attempt_is_a_dead_letter() {
    let cfg = config(30, 2);
    let queue = Queue::connect(&cfg).await.expect("connect");
    queue
        .enqueue("transcode", "video-10", &transcode("video-10"))
        .await
        .expect("enqueue");
    next_job(&queue)
        .await
        .retry(Duration::ZERO)
        .await
        .expect("retry");
    let last = next_job(&queue).await;
    assert!(last.last_attempt());
    last.retry(Duration::ZERO).await.expect("retry");

    let letters = queue.dead_letters().await.expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].id, "video-10");
    assert_eq!(letters[0].attempts, 2);
    assert_eq!(
        letters[0].reason,
        "retry asked for on the last attempt (2 of 2)"
    );
    assert!(queue.next(Duration::ZERO).await.expect("pull").is_none());
    assert_eq!(work_stream_len(&cfg).await, 0);
    delete_streams(&cfg).await;
}

#[tokio::test]
async fn connect_is_idempotent_and_reports_a_missing_server() {
    let cfg = config(30, 3);
    let first = Queue::connect(&cfg).await.expect("connect");
    first
        .enqueue("transcode", "video-11", &transcode("video-11"))
        .await
        .expect("enqueue");
    // a second process connecting with the same config finds the same queue
    let second = Queue::connect(&cfg).await.expect("connect again");
    next_job(&second).await.done().await.expect("done");
    delete_streams(&cfg).await;

    let unreachable = JobsConfig {
        url: "nats://127.0.0.1:1".into(),
        ..config(30, 3)
    };
    let err = Queue::connect(&unreachable)
        .await
        .err()
        .expect("no server on port 1");
    assert!(
        err.to_string()
            .starts_with("could not connect to NATS at nats://127.0.0.1:1"),
        "{err}"
    );
}
