//! One pulled job and the ways a worker settles it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use serde::de::DeserializeOwned;

use crate::dead::{self, DeadLetter};
use crate::{BoxError, Inner, JobsError, JOB_ID_HEADER};

/// A job pulled by [`crate::Queue::next`]. Settle it with [`Job::done`], [`Job::retry`] or
/// [`Job::dead`]; a job dropped unsettled is delivered again after `ack_wait`.
pub struct Job {
    kind: String,
    id: String,
    attempt: i64,
    stream_sequence: u64,
    message: jetstream::Message,
    queue: Arc<Inner>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts())
            .field("stream_sequence", &self.stream_sequence)
            .field("payload_bytes", &self.message.payload.len())
            .finish()
    }
}

impl Job {
    pub(crate) fn from_message(
        message: jetstream::Message,
        queue: Arc<Inner>,
    ) -> Result<Job, BoxError> {
        let (attempt, stream_sequence) = {
            let info = message.info()?;
            (info.delivered, info.stream_sequence)
        };
        let kind = job_kind(&queue.cfg.subject_prefix, message.subject.as_str());
        let id = job_id(message.headers.as_ref(), &kind, stream_sequence);
        Ok(Job {
            kind,
            id,
            attempt,
            stream_sequence,
            message,
            queue,
        })
    }

    /// The kind it was enqueued under (the last part of its subject).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The id it was enqueued with.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Which delivery this is, from 1.
    pub fn attempt(&self) -> i64 {
        self.attempt
    }

    /// How many deliveries a job gets (`max_deliver`).
    pub fn max_attempts(&self) -> i64 {
        self.queue.cfg.max_deliver
    }

    /// True when no delivery follows this one: a failure now should be [`Job::dead`].
    pub fn last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts()
    }

    /// The job as enqueued (JSON).
    pub fn payload(&self) -> &[u8] {
        &self.message.payload
    }

    /// Decodes the JSON payload.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, JobsError> {
        serde_json::from_slice(&self.message.payload).map_err(|source| JobsError::Decode {
            kind: self.kind.clone(),
            id: self.id.clone(),
            source,
        })
    }

    /// Keeps the job leased while the returned guard lives: tells JetStream every
    /// `ack_wait / 3` that work is in progress, so a long job is not delivered to another
    /// worker meanwhile. Drop the guard (or settle the job) to stop. Needs a Tokio runtime.
    pub fn keep_alive(&self) -> KeepAlive {
        let period = (self.queue.cfg.ack_wait() / 3).max(Duration::from_millis(100));
        let client = self.queue.client.clone();
        let reply = self.message.reply.clone();
        let (kind, id) = (self.kind.clone(), self.id.clone());
        let task = tokio::spawn(async move {
            let Some(reply) = reply else { return };
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let sent = client
                    .publish(reply.clone(), AckKind::Progress.into())
                    .await;
                if let Err(err) = sent {
                    tracing::warn!(kind, id, error = %err, "job keep-alive not sent");
                }
            }
        });
        KeepAlive { task }
    }

    /// The job succeeded: acknowledges it and waits for the server to confirm, after which it
    /// is gone from the work stream.
    pub async fn done(self) -> Result<(), JobsError> {
        self.message
            .double_ack()
            .await
            .map_err(|source| self.settle_failed("acknowledge", source))?;
        tracing::debug!(
            kind = self.kind,
            id = self.id,
            attempt = self.attempt,
            "job done"
        );
        Ok(())
    }

    /// The job failed but may succeed later: it is delivered again after `delay`. On the last
    /// attempt there is no later, so it becomes a dead letter instead (a worker that knows why
    /// it failed should call [`Job::dead`] itself when [`Job::last_attempt`] is true).
    pub async fn retry(self, delay: Duration) -> Result<(), JobsError> {
        if self.last_attempt() {
            let reason = format!(
                "retry asked for on the last attempt ({} of {})",
                self.attempt,
                self.max_attempts()
            );
            return self.dead(&reason).await;
        }
        let nak = AckKind::Nak((!delay.is_zero()).then_some(delay));
        self.message
            .ack_with(nak)
            .await
            .map_err(|source| self.settle_failed("put back", source))?;
        self.queue
            .client
            .flush()
            .await
            .map_err(|err| self.settle_failed("put back", Box::new(err)))?;
        tracing::debug!(
            kind = self.kind,
            id = self.id,
            attempt = self.attempt,
            delay_ms = delay.as_millis() as u64,
            "job to be retried"
        );
        Ok(())
    }

    /// The job cannot succeed: records it in the dead-letter stream with `reason`, then tells
    /// JetStream to stop delivering it (which removes it from the work stream).
    pub async fn dead(self, reason: &str) -> Result<(), JobsError> {
        let letter = DeadLetter {
            kind: self.kind.clone(),
            id: self.id.clone(),
            reason: reason.to_owned(),
            attempts: self.attempt,
            payload: dead::payload_value(&self.message.payload),
        };
        dead::record(&self.queue, &letter, self.stream_sequence).await?;
        self.message
            .double_ack_with(AckKind::Term)
            .await
            .map_err(|source| self.settle_failed("terminate", source))?;
        tracing::warn!(
            kind = self.kind,
            id = self.id,
            attempt = self.attempt,
            reason,
            "job given up on (dead letter)"
        );
        Ok(())
    }

    fn settle_failed(&self, action: &'static str, source: BoxError) -> JobsError {
        JobsError::Settle {
            action,
            kind: self.kind.clone(),
            id: self.id.clone(),
            source,
        }
    }
}

/// Keeps a job leased while it lives (see [`Job::keep_alive`]).
#[must_use = "the job is kept alive only while this guard lives"]
pub struct KeepAlive {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The kind of a job on `subject`: what follows `<prefix>.`.
pub(crate) fn job_kind(prefix: &str, subject: &str) -> String {
    subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(subject)
        .to_owned()
}

/// The id of a job: its id header, else what follows `<kind>:` in its message id, else
/// `#<stream sequence>` for a message not enqueued by this crate.
pub(crate) fn job_id(headers: Option<&async_nats::HeaderMap>, kind: &str, seq: u64) -> String {
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    if let Some(id) = header(JOB_ID_HEADER) {
        return id;
    }
    if let Some(msg_id) = header("Nats-Msg-Id") {
        if let Some(id) = msg_id.strip_prefix(&format!("{kind}:")) {
            return id.to_owned();
        }
        return msg_id;
    }
    format!("#{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_the_subject_after_the_prefix() {
        assert_eq!(
            job_kind("caudal.jobs", "caudal.jobs.transcode"),
            "transcode"
        );
        assert_eq!(
            job_kind("caudal.jobs", "caudal.jobsx.transcode"),
            "caudal.jobsx.transcode"
        );
    }

    #[test]
    fn id_comes_from_the_header_then_the_message_id() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, "transcode:v1:x");
        assert_eq!(job_id(Some(&headers), "transcode", 7), "v1:x");
        headers.insert(JOB_ID_HEADER, "v2");
        assert_eq!(job_id(Some(&headers), "transcode", 7), "v2");
        assert_eq!(job_id(None, "transcode", 7), "#7");
    }
}
