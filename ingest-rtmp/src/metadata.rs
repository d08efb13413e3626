//! Keeps the broadcast's video document in step, in order, without ever holding up media:
//! one task per broadcast applies the updates one after another, retrying while
//! metadata-svc is unavailable. Every update is idempotent (a repeated create is taken as
//! done), so a recovery can send them all again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use service_clients::metadata::{
    MetadataClient, NewVideo, PlaybackLocations, StatusChange, VideoKind, VideoStatus,
};
use service_clients::users::StreamKeyOwner;
use service_clients::ClientError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use transcoder::RenditionInfo;

#[derive(Debug)]
pub enum MetaOp {
    Create(NewVideo),
    Playable {
        master: String,
        /// The low-latency master playlist, when the broadcast cuts parts.
        low_latency: Option<String>,
        renditions: Vec<RenditionInfo>,
    },
    Ended {
        at: DateTime<Utc>,
    },
    Recorded {
        duration_secs: f64,
        vod_master: Option<String>,
        renditions: Vec<RenditionInfo>,
    },
}

/// The broadcast's document: it starts with the creator's default visibility and access
/// policy, so a subscribers-only creator is never live in the clear.
pub fn new_live_video(
    id: &str,
    owner: &StreamKeyOwner,
    started_at: DateTime<Utc>,
    master: String,
) -> NewVideo {
    NewVideo {
        id: Some(id.to_string()),
        owner_id: owner.user_id.clone(),
        kind: VideoKind::Live,
        // reads right while on air and long after: "Ada's broadcast of 1 Dec 2026, 06:12 UTC"
        title: format!(
            "{}'s broadcast of {}",
            owner.display_name,
            started_at.format("%-d %b %Y, %H:%M UTC")
        ),
        description: String::new(),
        tags: Vec::new(),
        visibility: owner.defaults.visibility,
        access: owner.defaults.access.clone(),
        status: Some(VideoStatus::Live),
        started_at: Some(started_at),
        renditions: Vec::new(),
        playback: PlaybackLocations {
            master: Some(master),
            vod_master: None,
            low_latency: None,
        },
    }
}

use transcoder::worker::renditions;

async fn apply(client: &MetadataClient, video_id: &str, op: &MetaOp) -> Result<(), ClientError> {
    match op {
        MetaOp::Create(v) => match client.create_video(v).await {
            Ok(_) => Ok(()),
            // already created by an earlier attempt whose answer was lost
            Err(ClientError::Api { status: 409, .. }) => Ok(()),
            Err(e) => Err(e),
        },
        MetaOp::Playable {
            master,
            low_latency,
            renditions: r,
        } => client
            .change_status(
                video_id,
                &StatusChange {
                    status: None,
                    renditions: Some(renditions(r)),
                    playback: Some(PlaybackLocations {
                        master: Some(master.clone()),
                        vod_master: None,
                        low_latency: low_latency.clone(),
                    }),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()),
        MetaOp::Ended { at } => client
            .change_status(
                video_id,
                &StatusChange {
                    status: Some(VideoStatus::Ended),
                    at: Some(*at),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()),
        MetaOp::Recorded {
            duration_secs,
            vod_master,
            renditions: r,
        } => {
            let current = client.get_video(video_id).await?;
            let master = current.and_then(|v| v.playback.master);
            client
                .change_status(
                    video_id,
                    &StatusChange {
                        status: Some(VideoStatus::Recorded),
                        at: Some(Utc::now()),
                        duration_secs: Some(*duration_secs),
                        renditions: if r.is_empty() {
                            None
                        } else {
                            Some(renditions(r))
                        },
                        playback: Some(PlaybackLocations {
                            master,
                            vod_master: vod_master.clone(),
                            low_latency: None,
                        }),
                        ..Default::default()
                    },
                )
                .await
                .map(|_| ())
        }
    }
}

/// Applies `ops` in order; returns true once every update was taken. An unavailable
/// service is retried (1 s doubling to 30 s) for as long as it takes: nothing is given up
/// while ingest runs (`caudal_metadata_pending` counts the updates waiting). Once ingest is
/// shutting down, retrying stops after 5 s and the broadcast's marker stays for the next
/// start. A refusal is logged and counted, and the next update goes ahead.
pub async fn run(
    client: MetadataClient,
    video_id: String,
    mut ops: mpsc::Receiver<MetaOp>,
    shutdown: CancellationToken,
    jobs: std::sync::Arc<std::sync::OnceLock<jobs::Queue>>,
) -> bool {
    while let Some(op) = ops.recv().await {
        let taken = apply_until_taken(&client, &video_id, &op, &shutdown).await;
        match (&taken, &op) {
            (
                Outcome::Taken,
                MetaOp::Recorded {
                    vod_master: Some(key),
                    ..
                },
            ) => queue_artwork(&jobs, &video_id, &video_id, key).await,
            // playable: a poster from the live stream, so its card has a picture
            // in the background: a slow queue never holds up the broadcast's later updates
            (Outcome::Taken, MetaOp::Playable { master, .. }) => {
                let (jobs, video_id, master) = (jobs.clone(), video_id.clone(), master.clone());
                tokio::spawn(async move {
                    queue_artwork(&jobs, &format!("{video_id}-live"), &video_id, &master).await
                });
            }
            _ => {}
        }
        if matches!(taken, Outcome::Pending) {
            // later updates would overtake the one not taken; the next start redoes them all
            return false;
        }
    }
    true
}

/// Queues the poster and storyboard job of a recording, or the poster job of a broadcast
/// that just became playable (`job_id` tells them apart on the queue). Best effort: a video
/// without pictures plays all the same; a failure is logged and counted.
async fn queue_artwork(
    jobs: &std::sync::OnceLock<jobs::Queue>,
    job_id: &str,
    video_id: &str,
    key: &str,
) {
    let Some(queue) = jobs.get() else {
        if !key.is_empty() {
            tracing::debug!(video_id, "no job queue: the recording gets no poster");
        }
        return;
    };
    let job = service_clients::jobs::ArtworkJob {
        video_id: video_id.to_string(),
        playlist_key: key.to_string(),
    };
    for attempt in 1..=3 {
        match queue
            .enqueue(service_clients::jobs::ArtworkJob::KIND, job_id, &job)
            .await
        {
            Ok(_) => {
                tracing::info!(video_id, job_id, "artwork job queued");
                return;
            }
            Err(e) if attempt < 3 => {
                tracing::warn!(video_id, error = %e, "artwork job not queued; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!(video_id, job_id, error = %e, "artwork job not queued: the video gets no poster from it");
                metrics::counter!("caudal_artwork_jobs_lost_total").increment(1);
            }
        }
    }
}

/// What became of one update.
enum Outcome {
    Taken,
    /// Refused by metadata-svc (logged and counted); the next update goes ahead.
    Refused,
    /// Not taken when ingest stopped: the broadcast's marker stays for the next start.
    Pending,
}

/// Applies one update, retrying while metadata-svc is unavailable (see [`run`]).
async fn apply_until_taken(
    client: &MetadataClient,
    video_id: &str,
    op: &MetaOp,
    shutdown: &CancellationToken,
) -> Outcome {
    let mut backoff = Duration::from_secs(1);
    let started = std::time::Instant::now();
    let mut pending = false;
    let mut stopping_since: Option<std::time::Instant> = None;
    let taken = loop {
        let err = match apply(client, video_id, op).await {
            Ok(()) => break Outcome::Taken,
            Err(e) => e,
        };
        // just created, not yet readable (a store that is slow to read its own writes)
        let not_yet = matches!(err, ClientError::Api { status: 404, .. })
            && !matches!(op, MetaOp::Create(_))
            && started.elapsed() < Duration::from_secs(15);
        if !(err.is_unavailable() || not_yet) {
            tracing::error!(video_id, error = %err, op = ?op_name(op), "metadata update refused");
            metrics::counter!("caudal_metadata_failures_total").increment(1);
            break Outcome::Refused;
        }
        if shutdown.is_cancelled() {
            let since = *stopping_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > Duration::from_secs(5) {
                tracing::error!(video_id, error = %err, op = ?op_name(op), "shutting down with a metadata update not taken");
                break Outcome::Pending;
            }
        }
        if !pending {
            pending = true;
            metrics::gauge!("caudal_metadata_pending").increment(1.0);
        }
        tracing::warn!(video_id, error = %err, "metadata update failed, retrying");
        metrics::counter!("caudal_metadata_retries_total").increment(1);
        tokio::time::sleep(if shutdown.is_cancelled() {
            Duration::from_millis(500)
        } else {
            backoff
        })
        .await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    };
    if pending {
        metrics::gauge!("caudal_metadata_pending").decrement(1.0);
    }
    taken
}

fn op_name(op: &MetaOp) -> &'static str {
    match op {
        MetaOp::Create(_) => "create",
        MetaOp::Playable { .. } => "playable",
        MetaOp::Ended { .. } => "ended",
        MetaOp::Recorded { .. } => "recorded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_broadcast_is_titled_by_its_creator_and_start_not_as_live() {
        let owner = StreamKeyOwner {
            user_id: "u1".into(),
            display_name: "Ada".into(),
            key_id: "k1".into(),
            defaults: Default::default(),
        };
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 6, 5, 0).single().unwrap();
        let v = new_live_video("v1", &owner, at, "live/v1/master.m3u8".into());
        assert_eq!(v.title, "Ada's broadcast of 1 Dec 2026, 06:05 UTC");
    }
}
