//! Deletes the media of deleted videos: reads metadata-svc's cleanup records, deletes every
//! object under the video's folders (and its single objects), then marks the record done. A
//! record whose deletion failed stays pending and is tried again next round; deleting twice
//! is harmless.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use service_clients::metadata::CleanupTask;

use crate::Shared;

/// Records taken per round.
const BATCH: usize = 20;
/// Objects deleted at once.
const PARALLEL_DELETES: usize = 8;

pub async fn run(shared: Arc<Shared>) {
    let every = Duration::from_secs(shared.cfg.cleanup_interval_secs);
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = round(&shared).await {
            tracing::warn!(error = %e, "media cleanup round failed; trying again later");
        }
    }
}

/// One pass over the pending records; returns how many videos were cleaned.
pub(crate) async fn round(shared: &Shared) -> anyhow::Result<usize> {
    let tasks = shared.metadata.pending_cleanup(BATCH).await?;
    let mut cleaned = 0;
    for t in tasks {
        match clean(shared, &t).await {
            Ok(objects) => {
                shared.metadata.complete_cleanup(&t.video_id).await?;
                metrics::counter!("caudal_cleanup_objects_deleted_total").increment(objects as u64);
                tracing::info!(video_id = %t.video_id, objects, "media of a deleted video removed");
                cleaned += 1;
            }
            Err(e) => {
                metrics::counter!("caudal_cleanup_failures_total").increment(1);
                tracing::warn!(video_id = %t.video_id, error = %e, "media cleanup failed; will retry");
            }
        }
    }
    Ok(cleaned)
}

async fn clean(shared: &Shared, t: &CleanupTask) -> anyhow::Result<usize> {
    let mut keys = t.keys.clone();
    for prefix in &t.prefixes {
        // a record never names a folder outside the video's own (`live/{id}/`)
        anyhow::ensure!(
            prefix.ends_with('/') && prefix.split('/').any(|s| s == t.video_id),
            "refusing to clean {prefix:?}: not a folder of video {}",
            t.video_id
        );
        keys.extend(shared.store.list(prefix).await?);
    }
    let n = keys.len();
    futures::stream::iter(keys)
        .map(|k| async move { shared.store.delete(&k).await })
        .buffer_unordered(PARALLEL_DELETES)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(n)
}
