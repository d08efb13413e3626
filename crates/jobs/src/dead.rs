//! Dead letters: jobs given up on, kept in their own stream, and the watcher that turns jobs
//! no worker settled on any attempt into dead letters.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::RawMessageErrorKind;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::job::{job_id, job_kind};
use crate::{BoxError, Inner, JobsError};

/// Most jobs one sweep of the work stream looks at (the rest wait for the next sweep).
const SWEEP_LIMIT: usize = 1000;

/// A job given up on, as kept in the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub kind: String,
    pub id: String,
    /// Why: the worker's reason, or [`DeadLetter::EXHAUSTED`].
    pub reason: String,
    /// Deliveries made.
    pub attempts: i64,
    /// The job as enqueued (a JSON string if it was not JSON).
    pub payload: serde_json::Value,
}

impl DeadLetter {
    /// The reason recorded for a job that no worker settled on any attempt.
    pub const EXHAUSTED: &'static str = "the worker stopped responding on every attempt";
}

pub(crate) fn payload_value(payload: &[u8]) -> serde_json::Value {
    serde_json::from_slice(payload).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(payload).into_owned())
    })
}

/// Publishes `letter` to the dead-letter stream and waits for it to be stored. Its message id
/// is the job's work-stream sequence, so recording the same delivery twice (two watchers, or
/// a retried `dead`) keeps one letter. True when this call stored it, false for a duplicate.
pub(crate) async fn record(
    inner: &Inner,
    letter: &DeadLetter,
    work_seq: u64,
) -> Result<bool, JobsError> {
    let failed = |source: BoxError| JobsError::DeadLetter {
        kind: letter.kind.clone(),
        id: letter.id.clone(),
        source,
    };
    let body = serde_json::to_vec(letter).map_err(|err| failed(Box::new(err)))?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("{}:{work_seq}", inner.cfg.stream),
    );
    let ack = inner
        .js
        .publish_with_headers(inner.cfg.dead_letter_subject.clone(), headers, body.into())
        .await
        .map_err(|err| failed(Box::new(err)))?
        .await
        .map_err(|err| failed(Box::new(err)))?;
    Ok(!ack.duplicate)
}

/// Every letter in the dead-letter stream, oldest first.
pub(crate) async fn read_all(inner: &Inner) -> Result<Vec<DeadLetter>, JobsError> {
    let failed = |source: BoxError| JobsError::ReadDeadLetters {
        stream: inner.cfg.dead_letter_stream(),
        source,
    };
    let state = inner
        .dead
        .get_info()
        .await
        .map_err(|err| failed(Box::new(err)))?
        .state;
    let mut letters = Vec::new();
    let mut seq = state.first_sequence.max(1);
    while state.messages > 0 && seq <= state.last_sequence {
        let message = match inner
            .dead
            .raw_message_builder()
            .sequence(seq)
            .next_by_subject(inner.cfg.dead_letter_subject.clone())
            .send()
            .await
        {
            Ok(message) => message,
            Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => break,
            Err(err) => return Err(failed(Box::new(err))),
        };
        match serde_json::from_slice::<DeadLetter>(&message.payload) {
            Ok(letter) => letters.push(letter),
            Err(err) => tracing::warn!(
                stream = inner.cfg.dead_letter_stream(),
                seq = message.sequence,
                error = %err,
                "unreadable dead letter skipped"
            ),
        }
        seq = message.sequence + 1;
    }
    Ok(letters)
}

/// JetStream's advisory for a message whose consumer reached max deliveries.
#[derive(Debug, Deserialize)]
struct MaxDeliveriesAdvisory {
    stream_seq: u64,
    deliveries: i64,
}

struct Watch {
    inner: Arc<Inner>,
    advisories: async_nats::Subscriber,
    sweeps: tokio::time::Interval,
    /// Sequences the last sweep found passed by the consumer; seen again, they are exhausted.
    suspects: HashSet<u64>,
    ready: VecDeque<DeadLetter>,
}

pub(crate) async fn watch_exhausted(
    inner: Arc<Inner>,
) -> Result<impl futures::Stream<Item = DeadLetter> + Send + Unpin + 'static, JobsError> {
    let failed = |source: BoxError| JobsError::Watch {
        stream: inner.cfg.stream.clone(),
        consumer: inner.cfg.consumer.clone(),
        source,
    };
    let subject = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
        inner.cfg.stream, inner.cfg.consumer
    );
    let advisories = inner
        .client
        .subscribe(subject)
        .await
        .map_err(|err| failed(Box::new(err)))?;
    // the subscription is live on the server once this returns: no advisory is missed after it
    inner
        .client
        .flush()
        .await
        .map_err(|err| failed(Box::new(err)))?;
    let period = inner.cfg.ack_wait().max(Duration::from_secs(1));
    let mut sweeps = tokio::time::interval(period);
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watch = Watch {
        inner,
        advisories,
        sweeps,
        suspects: HashSet::new(),
        ready: VecDeque::new(),
    };
    Ok(Box::pin(futures::stream::unfold(
        watch,
        |mut watch| async move {
            loop {
                if let Some(letter) = watch.ready.pop_front() {
                    return Some((letter, watch));
                }
                tokio::select! {
                    advisory = watch.advisories.next() => {
                        let advisory = advisory?;
                        watch.on_advisory(&advisory.payload).await;
                    }
                    _ = watch.sweeps.tick() => watch.sweep().await,
                }
            }
        },
    )))
}

impl Watch {
    async fn on_advisory(&mut self, payload: &[u8]) {
        let advisory: MaxDeliveriesAdvisory = match serde_json::from_slice(payload) {
            Ok(advisory) => advisory,
            Err(err) => {
                tracing::warn!(error = %err, "unreadable max-deliveries advisory ignored");
                return;
            }
        };
        self.exhaust(advisory.stream_seq, advisory.deliveries).await;
    }

    /// Looks for jobs the consumer has passed by without their being settled: a job still in
    /// the work stream (acknowledged and terminated ones are removed) that the consumer has
    /// delivered and no longer waits on. One seen by two sweeps in a row is exhausted; the
    /// wait rules out a job acknowledged a moment before it was removed.
    async fn sweep(&mut self) {
        let found = match self.passed_by().await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(stream = self.inner.cfg.stream, error = %err, "exhausted-job sweep failed");
                return;
            }
        };
        let confirmed: Vec<u64> = found
            .iter()
            .copied()
            .filter(|seq| self.suspects.contains(seq))
            .collect();
        self.suspects = found;
        for seq in confirmed {
            self.exhaust(seq, self.inner.cfg.max_deliver).await;
        }
    }

    /// Sequences of jobs the consumer is done with but that are still in the work stream: those
    /// at or below its ack floor or, when it waits on no acknowledgement at all, every one it
    /// has delivered. (JetStream does not move the ack floor past an exhausted job until a later
    /// job is acknowledged, and lists no pending sequences, hence the two cases.)
    async fn passed_by(&self) -> Result<HashSet<u64>, BoxError> {
        let inner = &self.inner;
        let info = inner.work.consumer_info(&inner.cfg.consumer).await?;
        let last = if info.num_ack_pending == 0 {
            info.delivered.stream_sequence
        } else {
            info.ack_floor.stream_sequence
        };
        let subjects = format!("{}.>", inner.cfg.subject_prefix);
        let mut found = HashSet::new();
        let mut seq = 1;
        while seq <= last && found.len() < SWEEP_LIMIT {
            let message = match inner
                .work
                .raw_message_builder()
                .sequence(seq)
                .next_by_subject(subjects.clone())
                .send()
                .await
            {
                Ok(message) => message,
                Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => break,
                Err(err) => return Err(Box::new(err)),
            };
            if message.sequence > last {
                break;
            }
            found.insert(message.sequence);
            seq = message.sequence + 1;
        }
        Ok(found)
    }

    /// Records the job at `seq` as a dead letter and removes it from the work stream; queues
    /// the letter for the caller if this watcher was the one to record it.
    async fn exhaust(&mut self, seq: u64, attempts: i64) {
        self.suspects.remove(&seq);
        match exhaust(&self.inner, seq, attempts).await {
            Ok(Some(letter)) => {
                tracing::warn!(
                    kind = letter.kind,
                    id = letter.id,
                    attempts,
                    "job exhausted its attempts (dead letter)"
                );
                self.ready.push_back(letter);
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(
                stream = self.inner.cfg.stream,
                seq,
                error = %err,
                "exhausted job not recorded (the next sweep retries)"
            ),
        }
    }
}

async fn exhaust(inner: &Inner, seq: u64, attempts: i64) -> Result<Option<DeadLetter>, JobsError> {
    let failed = |source: BoxError| JobsError::Watch {
        stream: inner.cfg.stream.clone(),
        consumer: inner.cfg.consumer.clone(),
        source,
    };
    let message = match inner.work.get_raw_message(seq).await {
        Ok(message) => message,
        // another watcher got there first
        Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => return Ok(None),
        Err(err) => return Err(failed(Box::new(err))),
    };
    let kind = job_kind(&inner.cfg.subject_prefix, message.subject.as_str());
    let id = job_id(Some(&message.headers), &kind, seq);
    let letter = DeadLetter {
        kind,
        id,
        reason: DeadLetter::EXHAUSTED.to_owned(),
        attempts,
        payload: payload_value(&message.payload),
    };
    let recorded = record(inner, &letter, seq).await?;
    if let Err(err) = inner.work.delete_message(seq).await {
        // gone already (another watcher) is fine; anything else is an error
        match inner.work.get_raw_message(seq).await {
            Err(gone) if gone.kind() == RawMessageErrorKind::NoMessageFound => {}
            _ => return Err(failed(Box::new(err))),
        }
    }
    Ok(recorded.then_some(letter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_json_or_text() {
        assert_eq!(payload_value(br#"{"a":1}"#), serde_json::json!({"a": 1}));
        assert_eq!(payload_value(b"not json"), serde_json::json!("not json"));
    }

    #[test]
    fn advisory_reads_sequence_and_deliveries() {
        let advisory: MaxDeliveriesAdvisory = serde_json::from_str(
            r#"{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"x","timestamp":"2026-01-01T00:00:00Z",
                "stream":"S","consumer":"C","stream_seq":42,"deliveries":3}"#,
        )
        .expect("advisory");
        assert_eq!((advisory.stream_seq, advisory.deliveries), (42, 3));
    }
}
