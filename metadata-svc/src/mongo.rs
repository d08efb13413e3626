//! [`VideoRepo`] on MongoDB (or a MongoDB-compatible server).
//!
//! Collections: `videos` (one document per video, [`VideoDoc`]), `video_stats` (hourly
//! view/like buckets, `_id = "{video_id}|{hour millis}"`) and `cleanup` (storage of deleted
//! videos, `_id = video_id`).
//!
//! Every write to a video is a compare-and-set on `version`: read, apply a pure function from
//! [`crate::model`], then `find_one_and_update({_id, version: read}, {$set: changed, $inc:
//! {version: 1}})`. Counters are never part of `$set`, so `$inc`s landing in between are kept.
//! No multi-document transactions are used (a standalone MongoDB has none): a deletion writes
//! the video first, then the cleanup record, and a retried deletion writes the record again.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::Deserialize;
use service_clients::metadata::{Counters, VideoKind, VideoStatus, Visibility};

use crate::config::{redact_url, Config};
use crate::error::Error;
use crate::model::{self, StatusUpdate, StorageLocations, VideoDoc, VideoPatch};
use crate::repo::{
    CleanupTask, CounterKind, Created, KeywordQuery, ListCursor, ListFilter, Page, TrendingEntry,
    VideoRepo,
};

/// How many times a status change or deletion re-reads the video when another write won.
const CAS_ATTEMPTS: usize = 16;
const HOUR_MS: i64 = 3_600_000;
/// How often buffered hourly bucket increments are written.
pub const BUCKET_FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct MongoRepo {
    db: Database,
    videos: Collection<VideoDoc>,
    stats: Collection<Document>,
    cleanup: Collection<Document>,
    op_timeout: Duration,
    buckets: Arc<BucketBuffer>,
    increments: Arc<Coalescer>,
}

type Waiter = tokio::sync::oneshot::Sender<Result<Counters, Error>>;

/// Increments of one counter of one video that arrived while the previous write for it was in
/// flight. Each batch becomes one atomic `{$inc: n}`; the waiters are answered only after it
/// is written, each with its own count (`total - n + 1 ..= total`). One write per request at
/// low load, a handful for a burst of thousands.
#[derive(Default)]
struct Coalescer {
    queues: std::sync::Mutex<HashMap<(String, CounterKind), Vec<Waiter>>>,
}

/// `(video_id, hour millis)`.
type BucketKey = (String, i64);
/// `(views, likes)`.
type BucketCounts = (i64, i64);

/// Hourly bucket increments waiting to be written: `(video_id, hour millis) -> (views, likes)`.
///
/// The per-video totals are `$inc`ed at once and exactly; the hourly buckets only feed
/// trending, so they are summed here and written as one `$inc` upsert per bucket every
/// [`BUCKET_FLUSH_EVERY`] (and before trending is read, and at shutdown). A view then costs
/// one database write instead of two. A crash loses at most that interval of trending data.
#[derive(Default)]
struct BucketBuffer {
    pending: std::sync::Mutex<HashMap<BucketKey, BucketCounts>>,
    flusher: std::sync::OnceLock<()>,
    /// Serialises flushes so that a trending read waits for one in progress.
    flushing: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct CountersOnly {
    #[serde(default)]
    counters: Counters,
}

impl MongoRepo {
    /// Builds the client without touching the network (the driver connects lazily).
    pub async fn open(config: &Config) -> Result<Self, Error> {
        let mut opts = ClientOptions::parse(&config.mongo_url).await.map_err(|e| {
            Error::invalid(
                "mongo_url",
                format!("{}: {e}", redact_url(&config.mongo_url)),
            )
        })?;
        opts.server_selection_timeout = Some(config.connect_timeout());
        opts.connect_timeout = Some(config.connect_timeout());
        opts.max_pool_size = Some(config.max_pool_size.max(1));
        opts.app_name.get_or_insert_with(|| "metadata-svc".into());
        let client = Client::with_options(opts).map_err(Error::from)?;
        Ok(Self::new(
            client.database(&config.database),
            config.op_timeout(),
        ))
    }

    /// Opens the database and creates the indexes: what start-up does.
    pub async fn connect(config: &Config) -> Result<Self, Error> {
        let repo = Self::open(config).await?;
        repo.ensure_indexes().await?;
        Ok(repo)
    }

    pub fn new(db: Database, op_timeout: Duration) -> Self {
        Self {
            videos: db.collection("videos"),
            stats: db.collection("video_stats"),
            cleanup: db.collection("cleanup"),
            db,
            op_timeout,
            buckets: Arc::new(BucketBuffer::default()),
            increments: Arc::new(Coalescer::default()),
        }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Creates every index the queries use; a no-op when they exist.
    pub async fn ensure_indexes(&self) -> Result<(), Error> {
        let idx = |keys: Document, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_string()).build())
                .build()
        };
        let videos = vec![
            // GET /videos (no filter)
            idx(doc! {"list_at": -1, "_id": -1}, "list"),
            // ?owner= and /creators/{owner}/videos
            idx(doc! {"owner_id": 1, "list_at": -1, "_id": -1}, "owner_list"),
            // ?status=&kind= and /videos/live
            idx(
                doc! {"status": 1, "kind": 1, "list_at": -1, "_id": -1},
                "status_kind_list",
            ),
            // ?visibility= and /videos/recent
            idx(
                doc! {"visibility": 1, "list_at": -1, "_id": -1},
                "visibility_list",
            ),
            // ?tag=
            idx(doc! {"tags": 1, "list_at": -1, "_id": -1}, "tags_list"),
            // search: equality on whole words, anchored regex for the typed prefix
            idx(doc! {"keywords": 1}, "keywords"),
        ];
        let stats = vec![idx(doc! {"hour": 1, "video_id": 1}, "hour_video")];
        let cleanup = vec![idx(doc! {"done": 1, "deleted_at": 1}, "pending")];
        self.timed(self.videos.create_indexes(videos)).await?;
        self.timed(self.stats.create_indexes(stats)).await?;
        self.timed(self.cleanup.create_indexes(cleanup)).await?;
        Ok(())
    }

    /// Runs one database operation, turning a stall into [`Error::Unavailable`].
    async fn timed<T>(
        &self,
        fut: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T, Error> {
        self.timed_raw(fut).await?.map_err(Error::from)
    }

    /// Like [`Self::timed`], leaving the driver's error to the caller.
    async fn timed_raw<T>(
        &self,
        fut: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<mongodb::error::Result<T>, Error> {
        tokio::time::timeout(self.op_timeout, fut.into_future())
            .await
            .map_err(|_| Error::Unavailable(format!("no answer within {:?}", self.op_timeout)))
    }

    async fn find_all(
        &self,
        filter: Document,
        sort: Document,
        limit: i64,
    ) -> Result<Vec<VideoDoc>, Error> {
        self.timed(async {
            let cursor = self.videos.find(filter).sort(sort).limit(limit).await?;
            cursor.try_collect().await
        })
        .await
    }

    /// Any stored version of the video, deleted or not.
    async fn get_any(&self, id: &str) -> Result<Option<VideoDoc>, Error> {
        self.timed(self.videos.find_one(doc! {"_id": id})).await
    }

    /// Writes `next` over `cur` if `cur.version` is still stored; `None` when another write won.
    async fn compare_and_set(
        &self,
        cur: &VideoDoc,
        next: &VideoDoc,
    ) -> Result<Option<VideoDoc>, Error> {
        let mut set = bson::to_document(next)?;
        for managed in ["_id", "counters", "version"] {
            set.remove(managed);
        }
        self.timed(
            self.videos
                .find_one_and_update(
                    doc! {"_id": &cur.id, "version": cur.version},
                    doc! {"$set": set, "$inc": {"version": 1}},
                )
                .return_document(ReturnDocument::After),
        )
        .await
    }

    async fn record_cleanup(&self, doc: &VideoDoc) -> Result<(), Error> {
        let StorageLocations { prefixes, keys } = doc.storage_locations();
        let record = doc! {
            "video_id": &doc.id,
            "owner_id": &doc.owner_id,
            "prefixes": prefixes,
            "keys": keys,
            "deleted_at": doc.deleted_at.unwrap_or(doc.updated_at),
            "done": false,
        };
        self.timed(
            self.cleanup
                .update_one(doc! {"_id": &doc.id}, doc! {"$setOnInsert": record})
                .upsert(true),
        )
        .await?;
        Ok(())
    }

    fn buffer_bucket(&self, id: &str, counter: CounterKind, n: i64, now: bson::DateTime) {
        let hour = now.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS;
        {
            let mut pending = self
                .buckets
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let e = pending.entry((id.to_string(), hour)).or_default();
            match counter {
                CounterKind::Views => e.0 += n,
                CounterKind::Likes => e.1 += n,
            }
        }
        // one flusher per repository, started on first use (inside the runtime); it stops
        // when the repository is dropped
        self.buckets.flusher.get_or_init(|| {
            let weak: Weak<BucketBuffer> = Arc::downgrade(&self.buckets);
            let repo = self.without_buckets();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(BUCKET_FLUSH_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(buckets) = weak.upgrade() else { break };
                    if let Err(e) = repo.flush_buckets(&buckets).await {
                        tracing::warn!(error = %e, "hourly buckets not written; retrying");
                    }
                }
            });
        });
    }

    /// Writes batches of queued increments for one counter until none are left.
    async fn drive_increments(self, id: String, counter: CounterKind) {
        let key = (id, counter);
        loop {
            let batch: Vec<Waiter> = {
                let mut queues = self
                    .increments
                    .queues
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let batch = queues.get_mut(&key).map(std::mem::take).unwrap_or_default();
                if batch.is_empty() {
                    // nobody queued since the last write: the next request starts a new driver
                    queues.remove(&key);
                    return;
                }
                batch
            };
            let n = batch.len() as i64;
            let result = self.add_to_counter(&key.0, counter, n).await;
            if result.is_ok() {
                self.buffer_bucket(&key.0, counter, n, model::now());
            }
            for (i, waiter) in batch.into_iter().enumerate() {
                let answer = result.clone().map(|mut c| {
                    let own = |total: i64| total - n + 1 + i as i64;
                    match counter {
                        CounterKind::Views => c.views = own(c.views),
                        CounterKind::Likes => c.likes = own(c.likes),
                    }
                    c
                });
                let _ = waiter.send(answer);
            }
        }
    }

    async fn add_to_counter(
        &self,
        id: &str,
        counter: CounterKind,
        n: i64,
    ) -> Result<Counters, Error> {
        let field = format!("counters.{}", counter.field());
        Ok(self
            .timed(
                self.videos
                    .clone_with_type::<CountersOnly>()
                    .find_one_and_update(
                        doc! {"_id": id, "deleted": false},
                        doc! {"$inc": {field: n}},
                    )
                    .projection(doc! {"counters": 1})
                    .return_document(ReturnDocument::After),
            )
            .await?
            .ok_or_else(|| Error::NotFound(id.to_string()))?
            .counters)
    }

    /// A handle on the same collections that does not keep the bucket buffer alive.
    fn without_buckets(&self) -> Self {
        Self {
            buckets: Arc::new(BucketBuffer::default()),
            ..self.clone()
        }
    }

    /// Writes the buffered bucket increments; what fails is put back for the next flush.
    async fn flush_buckets(&self, buckets: &BucketBuffer) -> Result<(), Error> {
        let _one_at_a_time = buckets.flushing.lock().await;
        let batch = std::mem::take(&mut *buckets.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return Ok(());
        }
        let results: Vec<((BucketKey, BucketCounts), Result<(), Error>)> =
            futures::stream::iter(batch)
                .map(|(key, counts)| async move {
                    let r = self.write_bucket(&key.0, key.1, counts).await;
                    ((key, counts), r)
                })
                .buffer_unordered(8)
                .collect()
                .await;
        let mut first_error = None;
        let mut pending = buckets.pending.lock().unwrap_or_else(|p| p.into_inner());
        for ((key, (views, likes)), r) in results {
            if let Err(e) = r {
                let e2 = pending.entry(key).or_default();
                e2.0 += views;
                e2.1 += likes;
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn write_bucket(
        &self,
        id: &str,
        hour: i64,
        (views, likes): BucketCounts,
    ) -> Result<(), Error> {
        let key = format!("{id}|{hour}");
        let update = doc! {
            "$inc": {"views": views, "likes": likes},
            "$setOnInsert": {"video_id": id, "hour": bson::DateTime::from_millis(hour)},
        };
        // two first upserts of a bucket (two replicas) may race; the loser's retry finds it
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .timed_raw(
                    self.stats
                        .update_one(doc! {"_id": &key}, update.clone())
                        .upsert(true),
                )
                .await?
            {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 3 && Error::is_duplicate_key(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn status_bson(s: VideoStatus) -> Bson {
    Bson::String(model::status_name(s).into())
}

fn kind_bson(k: VideoKind) -> Bson {
    Bson::String(model::kind_name(k).into())
}

fn visibility_bson(v: Visibility) -> Bson {
    Bson::String(
        match v {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Private => "private",
        }
        .into(),
    )
}

fn watchable() -> Bson {
    Bson::Array(model::WATCHABLE.iter().map(|s| status_bson(*s)).collect())
}

/// The filter of a list query, keyset condition included.
pub fn list_filter(f: &ListFilter, after: Option<ListCursor<'_>>) -> Document {
    let mut q = doc! {"deleted": false};
    if let Some(o) = &f.owner_id {
        q.insert("owner_id", o);
    }
    match f.statuses.as_slice() {
        [] => {}
        [one] => {
            q.insert("status", status_bson(*one));
        }
        many => {
            q.insert(
                "status",
                doc! {"$in": many.iter().map(|s| status_bson(*s)).collect::<Vec<_>>()},
            );
        }
    }
    if let Some(k) = f.kind {
        q.insert("kind", kind_bson(k));
    }
    if let Some(t) = &f.tag {
        q.insert("tags", t);
    }
    if let Some(v) = f.visibility {
        q.insert("visibility", visibility_bson(v));
    }
    if let Some(c) = after {
        // (list_at, _id) < cursor, written as a range on list_at (index bounds) minus the ties
        // at or above the cursor's id
        q.insert("list_at", doc! {"$lte": c.list_at});
        q.insert(
            "$nor",
            vec![doc! {"list_at": c.list_at, "_id": {"$gte": c.id}}],
        );
    }
    q
}

fn list_sort() -> Document {
    doc! {"list_at": -1, "_id": -1}
}

/// Escapes regex metacharacters (keywords are alphanumeric, but the query is user input).
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\^$.|?*+()[]{}-/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl VideoRepo for MongoRepo {
    async fn create(&self, doc: VideoDoc) -> Result<Created, Error> {
        match self.timed_raw(self.videos.insert_one(&doc)).await? {
            Ok(_) => Ok(Created {
                video: doc,
                inserted: true,
            }),
            Err(e) if Error::is_duplicate_key(&e) => match self.get_any(&doc.id).await? {
                Some(existing)
                    if !existing.deleted
                        && existing.owner_id == doc.owner_id
                        && existing.kind == doc.kind =>
                {
                    Ok(Created {
                        video: existing,
                        inserted: false,
                    })
                }
                _ => Err(Error::AlreadyExists(doc.id)),
            },
            Err(e) => Err(e.into()),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<VideoDoc>, Error> {
        self.timed(self.videos.find_one(doc! {"_id": id, "deleted": false}))
            .await
    }

    async fn change_status(
        &self,
        id: &str,
        update: &StatusUpdate,
        now: bson::DateTime,
    ) -> Result<VideoDoc, Error> {
        for _ in 0..CAS_ATTEMPTS {
            let cur = self
                .get(id)
                .await?
                .ok_or_else(|| Error::NotFound(id.to_string()))?;
            let mut next = cur.clone();
            model::apply_status(&mut next, update, now)?;
            if let Some(done) = self.compare_and_set(&cur, &next).await? {
                return Ok(done);
            }
        }
        let current = self.get(id).await?.map(|d| d.version).unwrap_or_default();
        Err(Error::VersionConflict {
            expected: current,
            current,
        })
    }

    async fn update(
        &self,
        id: &str,
        expected_version: i64,
        patch: &VideoPatch,
        now: bson::DateTime,
    ) -> Result<VideoDoc, Error> {
        let cur = self
            .get(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        if cur.version != expected_version {
            return Err(Error::VersionConflict {
                expected: expected_version,
                current: cur.version,
            });
        }
        let mut next = cur.clone();
        model::apply_patch(&mut next, patch, now);
        match self.compare_and_set(&cur, &next).await? {
            Some(done) => Ok(done),
            None => match self.get(id).await? {
                Some(now) => Err(Error::VersionConflict {
                    expected: expected_version,
                    current: now.version,
                }),
                None => Err(Error::NotFound(id.to_string())),
            },
        }
    }

    async fn soft_delete(
        &self,
        id: &str,
        expected_version: Option<i64>,
        now: bson::DateTime,
    ) -> Result<(), Error> {
        for _ in 0..CAS_ATTEMPTS {
            let cur = self
                .get_any(id)
                .await?
                .ok_or_else(|| Error::NotFound(id.to_string()))?;
            if cur.deleted {
                return self.record_cleanup(&cur).await;
            }
            if let Some(expected) = expected_version {
                if expected != cur.version {
                    return Err(Error::VersionConflict {
                        expected,
                        current: cur.version,
                    });
                }
            }
            let mut next = cur.clone();
            next.deleted = true;
            next.deleted_at = Some(now);
            next.updated_at = now;
            if let Some(done) = self.compare_and_set(&cur, &next).await? {
                tracing::info!(video_id = %id, version = done.version, "video deleted");
                return self.record_cleanup(&done).await;
            }
        }
        Err(Error::Unavailable(format!(
            "video {id} kept changing during its deletion"
        )))
    }

    async fn list(
        &self,
        filter: &ListFilter,
        after: Option<ListCursor<'_>>,
        limit: usize,
    ) -> Result<Page, Error> {
        let limit = limit.max(1);
        let mut items = self
            .find_all(list_filter(filter, after), list_sort(), limit as i64 + 1)
            .await?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|d| crate::repo::Cursor::after(d, 0))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn search_candidates(
        &self,
        query: &KeywordQuery,
        max: usize,
    ) -> Result<Vec<VideoDoc>, Error> {
        let mut clauses: Vec<Document> = Vec::new();
        if !query.words.is_empty() {
            clauses.push(doc! {"keywords": {"$all": &query.words}});
        }
        if let Some(p) = &query.prefix {
            // anchored and case-sensitive (keywords are lowercase): MongoDB scans only the
            // index range [p, p\u{10FFFF})
            clauses.push(doc! {"keywords": {"$regex": format!("^{}", regex_escape(p))}});
        }
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let filter = doc! {
            "$and": clauses,
            "deleted": false,
            "visibility": "public",
            "status": {"$in": watchable()},
        };
        self.find_all(filter, list_sort(), max as i64).await
    }

    async fn increment(
        &self,
        id: &str,
        counter: CounterKind,
        _now: bson::DateTime,
    ) -> Result<Counters, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start_driver = {
            let mut queues = self
                .increments
                .queues
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match queues.get_mut(&(id.to_string(), counter)) {
                // a driver is running for this counter: it takes us in its next batch
                Some(queue) => {
                    queue.push(tx);
                    false
                }
                None => {
                    queues.insert((id.to_string(), counter), vec![tx]);
                    true
                }
            }
        };
        if start_driver {
            // a task of its own: a caller that goes away must not strand the others
            tokio::spawn(self.clone().drive_increments(id.to_string(), counter));
        }
        rx.await
            .unwrap_or_else(|_| Err(Error::Database("increment dropped".into())))
    }

    async fn trending(
        &self,
        since: bson::DateTime,
        limit: usize,
    ) -> Result<Vec<TrendingEntry>, Error> {
        // this process's latest views count at once
        self.flush_buckets(&self.buckets).await?;
        // ask for more than needed: some of the busiest may be private or deleted
        let want = (limit * 3 + 10) as i64;
        let pipeline = vec![
            doc! {"$match": {"hour": {"$gt": since}}},
            doc! {"$group": {"_id": "$video_id", "views": {"$sum": "$views"}, "likes": {"$sum": "$likes"}}},
            doc! {"$sort": {"views": -1, "likes": -1, "_id": 1}},
            doc! {"$limit": want},
        ];
        let rows: Vec<Document> = self
            .timed(async {
                let cursor = self.stats.aggregate(pipeline).await?;
                cursor.try_collect().await
            })
            .await?;
        let num = |d: &Document, k: &str| match d.get(k) {
            Some(Bson::Int32(n)) => *n as i64,
            Some(Bson::Int64(n)) => *n,
            Some(Bson::Double(n)) => *n as i64,
            _ => 0,
        };
        let ranked: Vec<(String, i64, i64)> = rows
            .iter()
            .filter_map(|d| {
                Some((
                    d.get_str("_id").ok()?.to_string(),
                    num(d, "views"),
                    num(d, "likes"),
                ))
            })
            .collect();
        if ranked.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ranked.iter().map(|(id, ..)| id.as_str()).collect();
        let filter = doc! {
            "_id": {"$in": ids},
            "deleted": false,
            "visibility": "public",
            "status": {"$in": watchable()},
        };
        let docs = self.find_all(filter, doc! {"_id": 1}, want).await?;
        let mut out = Vec::with_capacity(limit);
        for (id, views, likes) in ranked {
            if let Some(video) = docs.iter().find(|d| d.id == id) {
                out.push(TrendingEntry {
                    video: video.clone(),
                    views,
                    likes,
                });
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn pending_cleanup(&self, limit: usize) -> Result<Vec<CleanupTask>, Error> {
        let rows: Vec<Document> = self
            .timed(async {
                let cursor = self
                    .cleanup
                    .find(doc! {"done": false})
                    .sort(doc! {"deleted_at": 1, "_id": 1})
                    .limit(limit as i64)
                    .await?;
                cursor.try_collect().await
            })
            .await?;
        let strings = |d: &Document, k: &str| -> Vec<String> {
            d.get_array(k)
                .map(|a| {
                    a.iter()
                        .filter_map(|b| b.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(rows
            .iter()
            .map(|d| CleanupTask {
                video_id: d.get_str("video_id").unwrap_or_default().to_string(),
                owner_id: d.get_str("owner_id").unwrap_or_default().to_string(),
                locations: StorageLocations {
                    prefixes: strings(d, "prefixes"),
                    keys: strings(d, "keys"),
                },
                deleted_at: d
                    .get_datetime("deleted_at")
                    .map(|t| model::to_chrono(*t))
                    .unwrap_or_default(),
            })
            .collect())
    }

    async fn flush(&self) -> Result<(), Error> {
        self.flush_buckets(&self.buckets).await
    }

    async fn complete_cleanup(&self, video_id: &str) -> Result<bool, Error> {
        let r = self
            .timed(self.cleanup.update_one(
                doc! {"_id": video_id, "done": false},
                doc! {"$set": {"done": true, "done_at": model::now()}},
            ))
            .await?;
        Ok(r.matched_count == 1)
    }
}
