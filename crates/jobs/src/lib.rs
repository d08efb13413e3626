//! # jobs: the transcode job queue
//!
//! A small work queue on NATS JetStream. Producers [`Queue::enqueue`] a JSON job under a kind
//! (`"transcode"`) and an id (the video id); workers pull one job at a time with
//! [`Queue::next`] and settle it with [`Job::done`], [`Job::retry`] or [`Job::dead`].
//!
//! What lives on the server ([`Queue::connect`] creates or updates all three):
//! - the work stream (`CAUDAL_JOBS`, WorkQueue retention) over `<prefix>.>`; a job is
//!   `<prefix>.<kind>`, and is removed from the stream once acknowledged or terminated;
//! - one durable pull consumer (`workers`) that every worker shares, with explicit acks,
//!   `ack_wait` and `max_deliver`;
//! - the dead-letter stream (`CAUDAL_JOBS_DEAD`, limits retention) over `dead_letter_subject`,
//!   holding one [`DeadLetter`] per job given up on, until an operator purges it.
//!
//! ## Delivery guarantees
//!
//! Delivery is **at least once**, so every job must be idempotent: a job is delivered again
//! when its worker does not settle it within `ack_wait` (it crashed, hung, or lost its
//! connection), when the acknowledgement of a finished job is lost ([`Job::done`] then
//! returns an error), or when the worker asks for a [`Job::retry`]. A long job keeps its lease with
//! [`Job::keep_alive`]. A job is attempted at most `max_deliver` times; then it is a dead
//! letter, either because the worker said so ([`Job::dead`], or [`Job::retry`] on the last
//! attempt) or because no worker answered on the last attempt: JetStream then stops
//! delivering it without telling anyone but an advisory, which [`Queue::watch_exhausted`]
//! turns into a dead letter (run one watcher per deployment; more are harmless).
//!
//! Enqueueing is idempotent within the work stream's duplicate window (two minutes): the
//! message id is `<kind>:<id>`, so a second enqueue of the same job is dropped, including one
//! made shortly after the first one finished. To run a job again on purpose within that
//! window, give it a new id.
//!
//! ## A worker
//!
//! ```no_run
//! # async fn transcode(_: &serde_json::Value) -> Result<(), String> { Ok(()) }
//! # async fn worker() -> Result<(), jobs::JobsError> {
//! use std::time::Duration;
//!
//! let queue = jobs::Queue::connect(&jobs::JobsConfig::default()).await?;
//! queue.enqueue("transcode", "video-1", &serde_json::json!({"video_id": "video-1"})).await?;
//! loop {
//!     let Some(job) = queue.next(Duration::from_secs(5)).await? else { continue };
//!     let lease = job.keep_alive();
//!     let outcome = transcode(&job.decode()?).await;
//!     drop(lease);
//!     match outcome {
//!         Ok(()) => job.done().await?,
//!         Err(reason) if job.last_attempt() => job.dead(&reason).await?,
//!         Err(_) => job.retry(Duration::from_secs(10)).await?,
//!     }
//! }
//! # }
//! ```

mod dead;
mod job;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use serde::{Deserialize, Serialize};

pub use dead::DeadLetter;
pub use job::{Job, KeepAlive};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Header carrying the job id (the message id is `<kind>:<id>`; this keeps the id unparsed).
const JOB_ID_HEADER: &str = "Caudal-Job-Id";
/// How long the streams remember message ids to drop duplicate publishes.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Where the job queue lives and how it retries. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct JobsConfig {
    /// NATS server URL (JetStream enabled), or several separated by commas (the servers of
    /// one cluster: the client connects to any that answers and learns the others from it).
    pub url: String,
    /// Name of the work stream (WorkQueue retention).
    pub stream: String,
    /// Subject prefix: a job of kind `k` is published on `<prefix>.k`.
    pub subject_prefix: String,
    /// Durable pull consumer shared by all workers.
    pub consumer: String,
    /// A job neither settled nor kept alive for this long is delivered again.
    pub ack_wait_secs: u64,
    /// Attempts per job, the first one included; then it is a dead letter.
    pub max_deliver: i64,
    /// Subject of the dead letters, outside `<prefix>.>`; the stream `<stream>_DEAD` keeps them.
    pub dead_letter_subject: String,
    /// Copies JetStream keeps of each stream (1 to 5): 1 on one server, 3 on a three-server
    /// cluster, so that losing a server loses no job.
    pub replicas: usize,
    /// An enqueue that fails is tried again for this long (0: once). A cluster that lost the
    /// server leading the stream elects another within seconds, and answers nothing until
    /// then; a job sent twice is dropped as a duplicate by its id.
    pub enqueue_retry_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            url: "nats://127.0.0.1:4222".into(),
            stream: "CAUDAL_JOBS".into(),
            subject_prefix: "caudal.jobs".into(),
            consumer: "workers".into(),
            ack_wait_secs: 30,
            max_deliver: 3,
            dead_letter_subject: "caudal.jobs_dead".into(),
            replicas: 1,
            enqueue_retry_secs: 10,
        }
    }
}

impl JobsConfig {
    /// Name of the stream that keeps the dead letters.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DEAD", self.stream)
    }

    fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_secs)
    }

    /// The servers `url` names.
    pub fn servers(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn validate(&self) -> Result<(), JobsError> {
        let bad = |why: String| Err(JobsError::Config(why));
        if self.servers().is_empty() {
            return bad("url names no NATS server".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return bad(format!("replicas must be 1 to 5, not {}", self.replicas));
        }
        for (field, name) in [("stream", &self.stream), ("consumer", &self.consumer)] {
            if name.is_empty() || name.contains(['.', '*', '>', '/', '\\']) || has_space(name) {
                return bad(format!(
                    "{field} {name:?} must be a non-empty name without spaces, '.', '*', '>', '/' or '\\'"
                ));
            }
        }
        for (field, subject) in [
            ("subject_prefix", &self.subject_prefix),
            ("dead_letter_subject", &self.dead_letter_subject),
        ] {
            if !is_literal_subject(subject) {
                return bad(format!(
                    "{field} {subject:?} must be a subject of non-empty dot-separated tokens without spaces or wildcards"
                ));
            }
        }
        if self.dead_letter_subject == self.subject_prefix
            || self
                .dead_letter_subject
                .starts_with(&format!("{}.", self.subject_prefix))
        {
            return bad(format!(
                "dead_letter_subject {:?} must lie outside the work subjects {:?}",
                self.dead_letter_subject,
                format!("{}.>", self.subject_prefix)
            ));
        }
        if self.ack_wait_secs == 0 {
            return bad("ack_wait_secs must be at least 1".into());
        }
        if self.max_deliver < 1 {
            return bad(format!(
                "max_deliver must be at least 1 (got {})",
                self.max_deliver
            ));
        }
        Ok(())
    }
}

fn has_space(s: &str) -> bool {
    s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_literal_subject(subject: &str) -> bool {
    !subject.is_empty()
        && !has_space(subject)
        && subject
            .split('.')
            .all(|token| !token.is_empty() && token != "*" && token != ">")
}

/// Everything that can go wrong with the job queue, worded for the person reading the log.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("invalid job queue configuration: {0}")]
    Config(String),
    #[error("could not connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error(
        "could not create or update {what} (is nats-server running with JetStream, -js?): {source}"
    )]
    Setup { what: String, source: BoxError },
    #[error("invalid job {field} {value:?}: {why}")]
    InvalidJob {
        field: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("could not encode job {kind}:{id} as JSON: {source}")]
    Encode {
        kind: String,
        id: String,
        source: serde_json::Error,
    },
    #[error("job {kind}:{id} does not decode as the expected type: {source}")]
    Decode {
        kind: String,
        id: String,
        source: serde_json::Error,
    },
    #[error("could not enqueue job {kind}:{id}: {source}")]
    Enqueue {
        kind: String,
        id: String,
        source: BoxError,
    },
    #[error("could not pull the next job from consumer {consumer} of stream {stream}: {source}")]
    Pull {
        stream: String,
        consumer: String,
        source: BoxError,
    },
    #[error("could not {action} job {kind}:{id}: {source}")]
    Settle {
        action: &'static str,
        kind: String,
        id: String,
        source: BoxError,
    },
    #[error("could not record job {kind}:{id} as a dead letter: {source}")]
    DeadLetter {
        kind: String,
        id: String,
        source: BoxError,
    },
    #[error("could not read the dead-letter stream {stream}: {source}")]
    ReadDeadLetters { stream: String, source: BoxError },
    #[error("could not watch for exhausted jobs on {stream}/{consumer}: {source}")]
    Watch {
        stream: String,
        consumer: String,
        source: BoxError,
    },
}

/// A connection to the job queue: producers enqueue, workers pull. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: JobsConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    work: stream::Stream,
    dead: stream::Stream,
    consumer: consumer::PullConsumer,
}

impl Queue {
    /// Connects and creates (or updates to `cfg`) the work stream, its durable pull consumer
    /// and the dead-letter stream.
    pub async fn connect(cfg: &JobsConfig) -> Result<Queue, JobsError> {
        cfg.validate()?;
        let client = async_nats::ConnectOptions::new()
            .name("caudal-jobs")
            .connect(cfg.servers())
            .await
            .map_err(|source| JobsError::Connect {
                url: cfg.url.clone(),
                source,
            })?;
        let js = jetstream::new(client.clone());

        let work = setup_stream(
            &js,
            stream::Config {
                name: cfg.stream.clone(),
                description: Some("caudal jobs waiting for a worker".into()),
                subjects: vec![format!("{}.>", cfg.subject_prefix)],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                num_replicas: cfg.replicas,
                ..Default::default()
            },
        )
        .await?;
        let dead = setup_stream(
            &js,
            stream::Config {
                name: cfg.dead_letter_stream(),
                description: Some("caudal jobs given up on (dead letters)".into()),
                subjects: vec![cfg.dead_letter_subject.clone()],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                num_replicas: cfg.replicas,
                ..Default::default()
            },
        )
        .await?;
        let consumer = work
            .create_consumer(consumer::pull::Config {
                durable_name: Some(cfg.consumer.clone()),
                description: Some("caudal workers".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: cfg.ack_wait(),
                max_deliver: cfg.max_deliver,
                ..Default::default()
            })
            .await
            .map_err(|err| JobsError::Setup {
                what: format!("consumer {} on stream {}", cfg.consumer, cfg.stream),
                source: Box::new(err),
            })?;
        Ok(Queue {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                client,
                js,
                work,
                dead,
                consumer,
            }),
        })
    }

    /// The configuration this queue was connected with.
    pub fn config(&self) -> &JobsConfig {
        &self.inner.cfg
    }

    /// Publishes `job` as JSON on `<prefix>.<kind>` with message id `<kind>:<id>` and waits for
    /// JetStream to store it. A duplicate within the duplicate window is dropped (and logged).
    pub async fn enqueue<T: Serialize>(
        &self,
        kind: &str,
        id: &str,
        job: &T,
    ) -> Result<(), JobsError> {
        validate_kind(kind)?;
        validate_id(id)?;
        let payload = serde_json::to_vec(job).map_err(|source| JobsError::Encode {
            kind: kind.into(),
            id: id.into(),
            source,
        })?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, format!("{kind}:{id}"));
        headers.insert(JOB_ID_HEADER, id);
        let subject = format!("{}.{kind}", self.inner.cfg.subject_prefix);
        let failed = |source: BoxError| JobsError::Enqueue {
            kind: kind.into(),
            id: id.into(),
            source,
        };
        let payload = bytes::Bytes::from(payload);
        let give_up =
            std::time::Instant::now() + Duration::from_secs(self.inner.cfg.enqueue_retry_secs);
        let mut attempt = 1u32;
        let ack = loop {
            let sent = async {
                self.inner
                    .js
                    .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                    .await
                    .map_err(BoxError::from)?
                    .await
                    .map_err(BoxError::from)
            };
            match sent.await {
                Ok(ack) => break ack,
                Err(err) if std::time::Instant::now() < give_up => {
                    tracing::warn!(kind, id, attempt, error = %err, "job not enqueued; trying again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(err) => return Err(failed(err)),
            }
        };
        if ack.duplicate {
            tracing::debug!(kind, id, "job already enqueued, duplicate dropped");
        } else {
            tracing::debug!(kind, id, seq = ack.sequence, "job enqueued");
        }
        Ok(())
    }

    /// Pulls one job, waiting up to `wait` for one to be ready; `None` if none was.
    pub async fn next(&self, wait: Duration) -> Result<Option<Job>, JobsError> {
        use futures::StreamExt;
        let inner = &self.inner;
        let failed = |source: BoxError| JobsError::Pull {
            stream: inner.cfg.stream.clone(),
            consumer: inner.cfg.consumer.clone(),
            source,
        };
        let batch = if wait.is_zero() {
            inner.consumer.fetch().max_messages(1).messages().await
        } else {
            inner
                .consumer
                .batch()
                .max_messages(1)
                .expires(wait)
                .messages()
                .await
        };
        let mut batch = batch.map_err(|err| failed(Box::new(err)))?;
        match batch.next().await {
            None => Ok(None),
            Some(Err(err)) => Err(failed(err)),
            Some(Ok(message)) => Job::from_message(message, self.inner.clone())
                .map(Some)
                .map_err(failed),
        }
    }

    /// Every dead letter in the dead-letter stream, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, JobsError> {
        dead::read_all(&self.inner).await
    }

    /// Watches for jobs that JetStream stopped delivering because no worker settled them on
    /// any of their `max_deliver` attempts (a worker that dies on the last attempt). Each such
    /// job is recorded in the dead-letter stream (reason [`DeadLetter::EXHAUSTED`]), removed from
    /// the work stream and yielded, so the caller can mark the video failed.
    ///
    /// JetStream gives up on such a job, and says so in a max-deliveries advisory, when a
    /// worker next asks for work after the last lease ran out (workers pulling in a loop make
    /// that prompt). The watcher listens to those advisories and, every `ack_wait` (at least a
    /// second), also sweeps the work stream for jobs the consumer no longer waits on, so a job
    /// exhausted while no watcher ran (or while it was reconnecting) is caught too, after two
    /// sweeps. Several watchers may run at once: each job becomes one dead letter, yielded by
    /// the watcher that recorded it. Failures are logged and retried by the next sweep. The
    /// stream ends when the connection is closed; drop it to stop watching.
    pub async fn watch_exhausted(
        &self,
    ) -> Result<impl futures::Stream<Item = DeadLetter> + Send + 'static, JobsError> {
        dead::watch_exhausted(self.inner.clone()).await
    }
}

async fn setup_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, JobsError> {
    let name = config.name.clone();
    let failed = |source: BoxError| JobsError::Setup {
        what: format!("stream {name}"),
        source,
    };
    js.create_or_update_stream(config)
        .await
        .map_err(|err| failed(Box::new(err)))?;
    js.get_stream(&name)
        .await
        .map_err(|err| failed(Box::new(err)))
}

fn validate_kind(kind: &str) -> Result<(), JobsError> {
    if kind.is_empty() || kind.contains(['.', '*', '>']) || has_space(kind) {
        return Err(JobsError::InvalidJob {
            field: "kind",
            value: kind.into(),
            why: "a kind is one subject token: non-empty, without spaces, '.', '*' or '>'",
        });
    }
    Ok(())
}

fn validate_id(id: &str) -> Result<(), JobsError> {
    if id.is_empty() || id.chars().any(char::is_control) {
        return Err(JobsError::InvalidJob {
            field: "id",
            value: id.into(),
            why: "an id is non-empty and has no control characters",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(JobsConfig::default().validate().is_ok());
        assert_eq!(
            JobsConfig::default().dead_letter_stream(),
            "CAUDAL_JOBS_DEAD"
        );
    }

    #[test]
    fn dead_letter_subject_must_be_outside_the_work_subjects() {
        let cfg = JobsConfig {
            dead_letter_subject: "caudal.jobs.dead".into(),
            ..Default::default()
        };
        let err = cfg
            .validate()
            .expect_err("dead letters under the work subjects");
        assert!(
            err.to_string().contains("outside the work subjects"),
            "{err}"
        );
    }

    #[test]
    fn names_and_subjects_are_checked() {
        for cfg in [
            JobsConfig {
                stream: "A.B".into(),
                ..Default::default()
            },
            JobsConfig {
                consumer: String::new(),
                ..Default::default()
            },
            JobsConfig {
                subject_prefix: "caudal.*".into(),
                ..Default::default()
            },
            JobsConfig {
                subject_prefix: "caudal..jobs".into(),
                ..Default::default()
            },
            JobsConfig {
                ack_wait_secs: 0,
                ..Default::default()
            },
            JobsConfig {
                max_deliver: 0,
                ..Default::default()
            },
        ] {
            assert!(cfg.validate().is_err(), "{cfg:?}");
        }
    }

    #[test]
    fn kinds_are_one_token_and_ids_are_printable() {
        assert!(validate_kind("transcode").is_ok());
        assert!(validate_kind("trans.code").is_err());
        assert!(validate_kind("").is_err());
        assert!(validate_kind("a b").is_err());
        assert!(validate_id("0190d5c8-video:1").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("a\r\nb").is_err());
    }

    #[test]
    fn config_reads_partial_json_with_defaults() {
        let cfg: JobsConfig =
            serde_json::from_str(r#"{"url":"nats://10.0.0.1:4222","max_deliver":5}"#)
                .expect("partial config");
        assert_eq!(cfg.url, "nats://10.0.0.1:4222");
        assert_eq!(cfg.max_deliver, 5);
        assert_eq!(cfg.stream, "CAUDAL_JOBS");
        assert_eq!(cfg.ack_wait_secs, 30);
        assert_eq!(cfg.replicas, 1);
        assert_eq!(cfg.enqueue_retry_secs, 10);
    }

    #[test]
    fn a_cluster_is_named_by_its_servers_and_replicated_within_bounds() {
        let cfg = JobsConfig {
            url: "nats://nats-1:4222, nats://nats-2:4222,nats://nats-3:4222,".into(),
            replicas: 3,
            ..JobsConfig::default()
        };
        assert_eq!(
            cfg.servers(),
            [
                "nats://nats-1:4222",
                "nats://nats-2:4222",
                "nats://nats-3:4222"
            ]
        );
        assert!(cfg.validate().is_ok());
        for (url, replicas) in [(" , ", 1), ("nats://a:4222", 0), ("nats://a:4222", 6)] {
            let bad = JobsConfig {
                url: url.into(),
                replicas,
                ..JobsConfig::default()
            };
            assert!(bad.validate().is_err(), "{url:?} x{replicas} accepted");
        }
    }
}
