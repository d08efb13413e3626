//! The behaviour every [`VideoRepo`] must have. Each implementation's tests call [`run`] with an
//! empty database; it panics with a message naming the broken rule.

use std::collections::HashSet;

use mongodb::bson;
use service_clients::metadata::{
    AccessPolicy, NewVideo, PlaybackLocations, StatusChange, VideoKind, VideoStatus, Visibility,
};

use crate::error::Error;
use crate::model::{self, StatusUpdate, VideoDoc, VideoPatch};
use crate::repo::{CounterKind, KeywordQuery, ListFilter, VideoRepo};

fn new_video(owner: &str, kind: VideoKind, title: &str) -> NewVideo {
    NewVideo {
        id: None,
        owner_id: owner.into(),
        kind,
        title: title.into(),
        description: String::new(),
        tags: vec![],
        visibility: Visibility::Public,
        access: AccessPolicy::Free,
        status: None,
        started_at: None,
        renditions: vec![],
        playback: PlaybackLocations::default(),
    }
}

fn doc_at(v: &NewVideo, millis: i64) -> VideoDoc {
    model::new_document(v, bson::DateTime::from_millis(millis)).expect("valid test video")
}

fn to(status: VideoStatus) -> StatusUpdate {
    StatusUpdate {
        change: StatusChange {
            status: Some(status),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub async fn run(repo: &dyn VideoRepo) {
    let ns = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let owner = format!("owner-{ns}");
    let now = model::now();
    let t0 = now.timestamp_millis();

    // create, get, retried create, id taken by someone else
    let up = doc_at(&new_video(&owner, VideoKind::Upload, "First upload"), t0);
    let created = repo.create(up.clone()).await.expect("create");
    assert!(
        created.inserted && created.video == up,
        "create stores the document as given"
    );
    assert_eq!(
        repo.get(&up.id).await.unwrap().as_ref(),
        Some(&up),
        "get returns what was created"
    );
    let again = repo
        .create(up.clone())
        .await
        .expect("a repeated create is not an error");
    assert!(
        !again.inserted,
        "a repeated create reports the stored video"
    );
    let mut thief = up.clone();
    thief.owner_id = "someone-else".into();
    assert!(
        matches!(repo.create(thief).await, Err(Error::AlreadyExists(_))),
        "an id is never taken over"
    );
    assert!(repo.get("no-such-video").await.unwrap().is_none());

    // the upload lifecycle, and transitions it refuses
    assert!(matches!(
        repo.change_status(&up.id, &to(VideoStatus::Ready), now)
            .await,
        Err(Error::IllegalTransition { .. })
    ));
    for s in [VideoStatus::Uploading, VideoStatus::Processing] {
        assert_eq!(
            repo.change_status(&up.id, &to(s), now)
                .await
                .unwrap()
                .status,
            s
        );
    }
    let ready_at = bson::DateTime::from_millis(t0 + 5_000);
    let ready = repo
        .change_status(&up.id, &to(VideoStatus::Ready), ready_at)
        .await
        .unwrap();
    assert_eq!(
        ready.published_at,
        Some(ready_at),
        "ready publishes an upload"
    );
    assert_eq!(
        ready.list_at, ready_at,
        "a published video lists by its publish time"
    );
    assert_eq!(ready.version, 4, "each write bumps the version");
    assert!(matches!(
        repo.change_status(&up.id, &to(VideoStatus::Failed), now)
            .await,
        Err(Error::IllegalTransition { .. })
    ));
    assert!(matches!(
        repo.change_status("missing", &to(VideoStatus::Ready), now)
            .await,
        Err(Error::NotFound(_))
    ));

    // the live lifecycle: concurrent repeats of the same transition all succeed, once
    let mut nv = new_video(&owner, VideoKind::Live, "Live show");
    nv.id = Some(format!("live-{ns}"));
    let live = doc_at(&nv, t0 + 1_000);
    assert_eq!(live.status, VideoStatus::Live);
    assert_eq!(
        live.published_at, live.started_at,
        "a broadcast is published when it starts"
    );
    repo.create(live.clone()).await.unwrap();
    let end_at = bson::DateTime::from_millis(t0 + 60_000);
    let ended = StatusUpdate {
        change: StatusChange {
            status: Some(VideoStatus::Ended),
            at: Some(model::to_chrono(end_at)),
            duration_secs: Some(59.0),
            ..Default::default()
        },
        ..Default::default()
    };
    let results =
        futures::future::join_all((0..6).map(|_| repo.change_status(&live.id, &ended, now))).await;
    for r in results {
        let d = r.expect("repeating a transition is allowed");
        assert_eq!(d.status, VideoStatus::Ended);
        assert_eq!(d.ended_at, Some(end_at));
    }
    assert!(matches!(
        repo.change_status(&live.id, &to(VideoStatus::Live), now)
            .await,
        Err(Error::IllegalTransition { .. })
    ));
    let rec = repo
        .change_status(&live.id, &to(VideoStatus::Recorded), now)
        .await
        .unwrap();
    assert_eq!(
        (rec.status, rec.duration_secs),
        (VideoStatus::Recorded, Some(59.0))
    );

    // optimistic concurrency: of editors holding the same version, exactly one wins
    let v = repo.get(&up.id).await.unwrap().unwrap().version;
    let edits = (0..5)
        .map(|i| VideoPatch {
            title: Some(format!("Edit {i}")),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let results =
        futures::future::join_all(edits.iter().map(|p| repo.update(&up.id, v, p, now))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one of the concurrent editors wins");
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(e, Error::VersionConflict { expected, current } if *expected == v && *current == v + 1),
                "{e:?}"
            );
        }
    }
    let winner = results.into_iter().find_map(Result::ok).unwrap();
    assert_eq!(
        repo.get(&up.id).await.unwrap().unwrap().title,
        winner.title,
        "the winner's edit is stored"
    );
    assert!(
        winner.keywords.contains(&"edit".to_string()),
        "keywords follow the title"
    );

    // counters: concurrent increments all count, survive edits and leave the version alone
    let before = repo.get(&up.id).await.unwrap().unwrap();
    let incs =
        futures::future::join_all((0..50).map(|_| repo.increment(&up.id, CounterKind::Views, now)))
            .await;
    assert!(incs.iter().all(Result::is_ok));
    repo.update(
        &up.id,
        before.version,
        &VideoPatch {
            description: Some("d".into()),
            ..Default::default()
        },
        now,
    )
    .await
    .unwrap();
    repo.increment(&up.id, CounterKind::Likes, now)
        .await
        .unwrap();
    let after = repo.get(&up.id).await.unwrap().unwrap();
    assert_eq!(
        (after.counters.views, after.counters.likes),
        (50, 1),
        "no increment is lost"
    );
    assert_eq!(
        after.version,
        before.version + 1,
        "increments do not bump the version"
    );
    assert!(matches!(
        repo.increment("missing", CounterKind::Views, now).await,
        Err(Error::NotFound(_))
    ));

    // lists: newest first, keyset pages
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut nv = new_video(&owner, VideoKind::Live, &format!("Stream {i}"));
        nv.tags = vec!["keyset".into()];
        // two share a timestamp: the id breaks the tie
        let d = doc_at(&nv, t0 + 100_000 + (i / 2) * 1_000);
        ids.push(d.id.clone());
        repo.create(d).await.unwrap();
    }
    let filter = ListFilter {
        owner_id: Some(owner.clone()),
        tag: Some("keyset".into()),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = repo
            .list(
                &filter,
                cursor.as_ref().map(crate::repo::Cursor::as_list),
                3,
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|d| (d.list_at, d.id.clone())));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "every video is listed once");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "lists run newest first, ties by id");
    let by_status = ListFilter {
        owner_id: Some(owner.clone()),
        statuses: vec![VideoStatus::Recorded],
        ..Default::default()
    };
    let page = repo.list(&by_status, None, 10).await.unwrap();
    assert_eq!(
        page.items.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [live.id.as_str()]
    );

    // search candidates: whole words and a typed prefix
    let kw = |words: &[&str], prefix: Option<&str>| KeywordQuery {
        words: words.iter().map(|w| w.to_string()).collect(),
        prefix: prefix.map(String::from),
    };
    let found = repo
        .search_candidates(&kw(&["stream"], None), 100)
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|d| d.id.clone()).collect::<HashSet<_>>(),
        ids.iter().cloned().collect(),
        "by word"
    );
    let found = repo
        .search_candidates(&kw(&[], Some("keyse")), 100)
        .await
        .unwrap();
    assert_eq!(found.len(), 7, "by a prefix of a tag");
    assert!(repo
        .search_candidates(&kw(&["stream"], Some("zzz")), 100)
        .await
        .unwrap()
        .is_empty());

    // trending counts the window's buckets
    for _ in 0..3 {
        repo.increment(&ids[0], CounterKind::Views, now)
            .await
            .unwrap();
    }
    let trending = repo
        .trending(bson::DateTime::from_millis(t0 - 86_400_000), 3)
        .await
        .unwrap();
    assert_eq!(
        trending.first().map(|e| (e.video.id.as_str(), e.views)),
        Some((up.id.as_str(), 50))
    );
    assert_eq!(
        trending.get(1).map(|e| (e.video.id.as_str(), e.views)),
        Some((ids[0].as_str(), 3))
    );
    assert!(
        repo.trending(bson::DateTime::from_millis(t0 + 7_200_000), 3)
            .await
            .unwrap()
            .is_empty(),
        "old buckets fall out"
    );

    // soft delete: gone from get, lists and search; storage recorded; repeatable
    let mut gone = repo.get(&ids[1]).await.unwrap().unwrap();
    let stale = gone.version - 1;
    assert!(matches!(
        repo.soft_delete(&gone.id, Some(stale), now).await,
        Err(Error::VersionConflict { .. })
    ));
    let with_storage = StatusUpdate {
        change: StatusChange {
            playback: Some(PlaybackLocations {
                master: Some(format!("live/{}/master.m3u8", gone.id)),
                vod_master: None,
                low_latency: Some(format!("live/{}/ll.m3u8", gone.id)),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    gone = repo
        .change_status(&gone.id, &with_storage, now)
        .await
        .unwrap();
    assert_eq!(
        gone.playback.low_latency,
        Some(format!("live/{}/ll.m3u8", gone.id)),
        "the low-latency master is kept"
    );
    repo.soft_delete(&gone.id, Some(gone.version), now)
        .await
        .expect("delete");
    repo.soft_delete(&gone.id, None, now)
        .await
        .expect("deleting again succeeds");
    assert!(
        repo.get(&gone.id).await.unwrap().is_none(),
        "a deleted video is not found"
    );
    let page = repo.list(&filter, None, 100).await.unwrap();
    assert!(
        !page.items.iter().any(|d| d.id == gone.id),
        "a deleted video is not listed"
    );
    assert!(!repo
        .search_candidates(&kw(&["stream"], None), 100)
        .await
        .unwrap()
        .iter()
        .any(|d| d.id == gone.id));
    assert!(matches!(
        repo.increment(&gone.id, CounterKind::Views, now).await,
        Err(Error::NotFound(_))
    ));
    let pending = repo.pending_cleanup(100).await.unwrap();
    let task = pending
        .iter()
        .find(|t| t.video_id == gone.id)
        .expect("deletion recorded for cleanup");
    assert_eq!(task.locations.prefixes, [format!("live/{}/", gone.id)]);
    assert_eq!(
        pending.iter().filter(|t| t.video_id == gone.id).count(),
        1,
        "recorded once"
    );
    assert!(repo.complete_cleanup(&gone.id).await.unwrap());
    assert!(!repo.complete_cleanup(&gone.id).await.unwrap());
    assert!(!repo
        .pending_cleanup(100)
        .await
        .unwrap()
        .iter()
        .any(|t| t.video_id == gone.id));
    assert!(matches!(
        repo.soft_delete("missing", None, now).await,
        Err(Error::NotFound(_))
    ));
}
