//! The stored video document, its lifecycle and the rules every write obeys.
//!
//! Everything here is pure: the repository reads a document, applies one of these functions to
//! a copy and writes the copy back only if the version it read is still the stored one.

use chrono::{DateTime, Utc};
use mongodb::bson;
use serde::{Deserialize, Serialize};
use service_clients::metadata::{
    AccessPolicy, Counters, NewVideo, PlaybackLocations, Rendition, StatusChange, Video, VideoKind,
    VideoStatus, Visibility,
};

use crate::error::Error;

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 5_000;
pub const TAGS_MAX: usize = 20;
pub const TAG_MAX: usize = 40;
pub const ID_MAX: usize = 64;
pub const KEY_MAX: usize = 1_024;
pub const RENDITIONS_MAX: usize = 16;
pub const THUMBNAILS_MAX: usize = 50;

/// A video as stored in the `videos` collection. The wire type is [`Video`]; this adds the
/// search keywords, the list sort key, thumbnails and the deleted flag.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VideoDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub owner_id: String,
    pub kind: VideoKind,
    pub status: VideoStatus,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Trimmed, lowercased, without duplicates.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Normalised words of the title and the tags (multikey index; search).
    #[serde(default)]
    pub keywords: Vec<String>,
    pub visibility: Visibility,
    pub access: AccessPolicy,
    #[serde(default)]
    pub duration_secs: Option<f64>,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
    #[serde(default)]
    pub playback: PlaybackLocations,
    /// Storage key of the poster image.
    #[serde(default)]
    pub poster: Option<String>,
    /// Storage keys of thumbnail images (scrubbing previews).
    #[serde(default)]
    pub thumbnails: Vec<String>,
    /// Storage key of the storyboard's WebVTT track (sprite sheets beside it).
    #[serde(default)]
    pub storyboard: Option<String>,
    /// Processing progress, percent.
    #[serde(default)]
    pub progress: Option<f64>,
    /// Why the video is `failed`, for its owner.
    #[serde(default)]
    pub failure: Option<String>,
    /// Changed only with `$inc`, never by a whole-document write.
    #[serde(default)]
    pub counters: Counters,
    pub created_at: bson::DateTime,
    pub updated_at: bson::DateTime,
    /// When the video became watchable: `started_at` for live, the `ready` time for uploads.
    #[serde(default)]
    pub published_at: Option<bson::DateTime>,
    #[serde(default)]
    pub started_at: Option<bson::DateTime>,
    #[serde(default)]
    pub ended_at: Option<bson::DateTime>,
    /// Sort key of every list: `published_at` once published, `created_at` before.
    pub list_at: bson::DateTime,
    /// Bumped by every write except counter increments.
    pub version: i64,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub deleted_at: Option<bson::DateTime>,
}

/// The JSON answer for one video: the wire [`Video`] plus fields older clients ignore.
#[derive(Debug, Clone, Serialize)]
pub struct VideoView {
    #[serde(flatten)]
    pub video: Video,
    pub thumbnails: Vec<String>,
}

impl VideoDoc {
    pub fn to_video(&self) -> Video {
        Video {
            id: self.id.clone(),
            owner_id: self.owner_id.clone(),
            kind: self.kind,
            status: self.status,
            title: self.title.clone(),
            description: self.description.clone(),
            tags: self.tags.clone(),
            visibility: self.visibility,
            access: self.access.clone(),
            duration_secs: self.duration_secs,
            renditions: self.renditions.clone(),
            playback: self.playback.clone(),
            poster: self.poster.clone(),
            storyboard: self.storyboard.clone(),
            progress: self.progress,
            failure: self.failure.clone(),
            counters: self.counters.clone(),
            created_at: to_chrono(self.created_at),
            updated_at: Some(to_chrono(self.updated_at)),
            published_at: self.published_at.map(to_chrono),
            started_at: self.started_at.map(to_chrono),
            ended_at: self.ended_at.map(to_chrono),
            version: self.version,
        }
    }

    pub fn view(&self) -> VideoView {
        VideoView {
            video: self.to_video(),
            thumbnails: self.thumbnails.clone(),
        }
    }

    /// Where this video's objects live, for the cleanup job. A key with a segment equal to the
    /// video id gives the folder up to that segment (`live/{id}/`); any other key (a poster in a
    /// shared folder) is recorded as that one object, never as its folder. An upload's original
    /// and upload state (bff's `uploads/{id}/`) go with it.
    pub fn storage_locations(&self) -> StorageLocations {
        let original = format!("uploads/{}/source", self.id);
        let mut keys: Vec<&str> = Vec::new();
        if self.kind == VideoKind::Upload {
            keys.push(&original);
        }
        keys.extend(self.playback.master.as_deref());
        keys.extend(self.playback.vod_master.as_deref());
        keys.extend(self.renditions.iter().map(|r| r.playlist.as_str()));
        keys.extend(self.poster.as_deref());
        keys.extend(self.storyboard.as_deref());
        keys.extend(self.thumbnails.iter().map(String::as_str));
        let mut out = StorageLocations::default();
        for key in keys {
            let segs: Vec<&str> = key.split('/').collect();
            match segs.iter().position(|s| *s == self.id) {
                Some(i) if i + 1 < segs.len() => {
                    out.prefixes.push(format!("{}/", segs[..=i].join("/")))
                }
                _ => out.keys.push(key.to_string()),
            }
        }
        out.prefixes.sort();
        out.prefixes.dedup();
        let all = out.prefixes.clone();
        out.prefixes
            .retain(|p| !all.iter().any(|q| q != p && p.starts_with(q.as_str())));
        out.keys
            .retain(|k| !all.iter().any(|q| k.starts_with(q.as_str())));
        out.keys.sort();
        out.keys.dedup();
        out
    }
}

/// Storage a deleted video leaves behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageLocations {
    /// Folders holding only this video's objects (`live/{id}/`).
    pub prefixes: Vec<String>,
    /// Single objects outside such folders.
    pub keys: Vec<String>,
}

pub fn to_chrono(d: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(d.timestamp_millis()).unwrap_or_default()
}

pub fn to_bson(d: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(d.timestamp_millis())
}

/// Now, at the millisecond precision the database keeps.
pub fn now() -> bson::DateTime {
    bson::DateTime::from_millis(Utc::now().timestamp_millis())
}

pub fn status_name(s: VideoStatus) -> &'static str {
    use VideoStatus::*;
    match s {
        Created => "created",
        Uploading => "uploading",
        Processing => "processing",
        Ready => "ready",
        Failed => "failed",
        Live => "live",
        Ended => "ended",
        Recorded => "recorded",
    }
}

/// The lifecycle. Upload: created -> uploading -> processing -> ready, and failed from any
/// step before ready. Live: live -> ended -> recorded. Repeating the current status is allowed
/// (a retried call must not fail) and changes nothing but the fields sent with it.
pub fn transition_allowed(from: VideoStatus, to: VideoStatus) -> bool {
    use VideoStatus::*;
    from == to
        || matches!(
            (from, to),
            (Created, Uploading)
                | (Uploading, Processing)
                | (Processing, Ready)
                | (Created | Uploading | Processing, Failed)
                | (Live, Ended)
                | (Ended, Recorded)
        )
}

/// Statuses in which a video is watchable and shown in public lists and search.
pub const WATCHABLE: [VideoStatus; 4] = [
    VideoStatus::Live,
    VideoStatus::Ended,
    VideoStatus::Recorded,
    VideoStatus::Ready,
];

// ---------------------------------------------------------------------------------------------
// keywords

/// Lowercases, strips common Latin accents and splits on anything not alphanumeric.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            for l in c.to_lowercase() {
                fold_into(l, &mut cur);
            }
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn fold_into(c: char, out: &mut String) {
    let s = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' => "s",
        'ţ' | 'ť' | 'ŧ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'þ' => "th",
        'ð' => "d",
        _ => {
            out.push(c);
            return;
        }
    };
    out.push_str(s);
}

/// The `keywords` array: words of the title, then of the tags, each once.
pub fn keywords(title: &str, tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words(title)
        .into_iter()
        .chain(tags.iter().flat_map(|t| words(t)))
    {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// validation

fn is_control_free(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Ids end up in storage keys and URLs: 1..=64 of `[A-Za-z0-9_-]`.
pub fn validate_id(field: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > ID_MAX {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {ID_MAX} characters"),
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid(
            field,
            "may only contain letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

pub fn validate_owner(field: &str, owner: &str) -> Result<(), Error> {
    let n = owner.chars().count();
    if n == 0
        || n > ID_MAX
        || owner.trim() != owner
        || !is_control_free(owner)
        || owner.contains('/')
    {
        return Err(Error::invalid(field, format!("must be 1 to {ID_MAX} characters without spaces at the ends, '/' or control characters")));
    }
    Ok(())
}

/// Trims; 1..=200 characters.
pub fn clean_title(title: &str) -> Result<String, Error> {
    let t = title.trim();
    let n = t.chars().count();
    if n == 0 {
        return Err(Error::invalid("title", "must not be empty"));
    }
    if n > TITLE_MAX {
        return Err(Error::invalid(
            "title",
            format!("must be at most {TITLE_MAX} characters (got {n})"),
        ));
    }
    if !is_control_free(t) {
        return Err(Error::invalid(
            "title",
            "must not contain control characters",
        ));
    }
    Ok(t.to_string())
}

pub fn clean_description(d: &str) -> Result<String, Error> {
    let n = d.chars().count();
    if n > DESCRIPTION_MAX {
        return Err(Error::invalid(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters (got {n})"),
        ));
    }
    Ok(d.trim_end().to_string())
}

/// At most 20 tags, each 1..=40 characters once trimmed; stored lowercased, each once.
pub fn clean_tags(tags: &[String]) -> Result<Vec<String>, Error> {
    if tags.len() > TAGS_MAX {
        return Err(Error::invalid(
            "tags",
            format!("at most {TAGS_MAX} tags (got {})", tags.len()),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let t = tag.trim().to_lowercase();
        let n = t.chars().count();
        if n == 0 || n > TAG_MAX {
            return Err(Error::invalid(
                format!("tags[{i}]"),
                format!("each tag must be 1 to {TAG_MAX} characters"),
            ));
        }
        if !is_control_free(&t) {
            return Err(Error::invalid(
                format!("tags[{i}]"),
                "must not contain control characters",
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// `purchase` needs a positive price and an ISO 4217 currency (`EUR`).
pub fn validate_access(access: &AccessPolicy) -> Result<(), Error> {
    if let AccessPolicy::Purchase {
        price_minor,
        currency,
    } = access
    {
        if *price_minor <= 0 {
            return Err(Error::invalid(
                "access.price_minor",
                "a purchase price must be greater than 0",
            ));
        }
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(Error::invalid(
                "access.currency",
                "must be a three-letter ISO 4217 code such as EUR",
            ));
        }
    }
    Ok(())
}

/// A storage key: relative, `/`-separated, no empty, `.` or `..` segments.
pub fn validate_key(field: &str, key: &str) -> Result<(), Error> {
    let bad = key.is_empty()
        || key.len() > KEY_MAX
        || key.starts_with('/')
        || key.contains('\\')
        || !is_control_free(key)
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(Error::invalid(
            field,
            "must be a relative storage key such as live/abc/master.m3u8",
        ));
    }
    Ok(())
}

pub fn validate_renditions(field: &str, renditions: &[Rendition]) -> Result<(), Error> {
    if renditions.len() > RENDITIONS_MAX {
        return Err(Error::invalid(
            field,
            format!("at most {RENDITIONS_MAX} renditions"),
        ));
    }
    for (i, r) in renditions.iter().enumerate() {
        let n = r.name.chars().count();
        if n == 0 || n > 32 || !is_control_free(&r.name) {
            return Err(Error::invalid(
                format!("{field}[{i}].name"),
                "must be 1 to 32 characters",
            ));
        }
        if !r.frame_rate.is_finite() || r.frame_rate < 0.0 {
            return Err(Error::invalid(
                format!("{field}[{i}].frame_rate"),
                "must be a finite number >= 0",
            ));
        }
        validate_key(&format!("{field}[{i}].playlist"), &r.playlist)?;
    }
    Ok(())
}

pub fn validate_playback(field: &str, p: &PlaybackLocations) -> Result<(), Error> {
    if let Some(k) = &p.master {
        validate_key(&format!("{field}.master"), k)?;
    }
    if let Some(k) = &p.vod_master {
        validate_key(&format!("{field}.vod_master"), k)?;
    }
    if let Some(k) = &p.low_latency {
        validate_key(&format!("{field}.low_latency"), k)?;
    }
    Ok(())
}

pub fn validate_thumbnails(thumbs: &[String]) -> Result<(), Error> {
    if thumbs.len() > THUMBNAILS_MAX {
        return Err(Error::invalid(
            "thumbnails",
            format!("at most {THUMBNAILS_MAX} thumbnails"),
        ));
    }
    for (i, k) in thumbs.iter().enumerate() {
        validate_key(&format!("thumbnails[{i}]"), k)?;
    }
    Ok(())
}

/// Checks a create request and builds the document to insert (version 1).
pub fn new_document(v: &NewVideo, now: bson::DateTime) -> Result<VideoDoc, Error> {
    let id = match &v.id {
        Some(id) => {
            validate_id("id", id)?;
            id.clone()
        }
        None => uuid::Uuid::now_v7().simple().to_string(),
    };
    validate_owner("owner_id", &v.owner_id)?;
    let title = clean_title(&v.title)?;
    let description = clean_description(&v.description)?;
    let tags = clean_tags(&v.tags)?;
    validate_access(&v.access)?;
    validate_renditions("renditions", &v.renditions)?;
    validate_playback("playback", &v.playback)?;
    let initial = match v.kind {
        VideoKind::Live => VideoStatus::Live,
        VideoKind::Upload => VideoStatus::Created,
    };
    let status = v.status.unwrap_or(initial);
    if status != initial {
        return Err(Error::invalid(
            "status",
            format!(
                "a {} video starts {}",
                kind_name(v.kind),
                status_name(initial)
            ),
        ));
    }
    let started_at = match (v.kind, v.started_at) {
        (VideoKind::Live, Some(t)) => Some(to_bson(t)),
        (VideoKind::Live, None) => Some(now),
        (VideoKind::Upload, Some(_)) => {
            return Err(Error::invalid(
                "started_at",
                "only live videos have a start time",
            ));
        }
        (VideoKind::Upload, None) => None,
    };
    // a broadcast is published the moment it starts
    let published_at = started_at;
    Ok(VideoDoc {
        keywords: keywords(&title, &tags),
        id,
        owner_id: v.owner_id.clone(),
        kind: v.kind,
        status,
        title,
        description,
        tags,
        visibility: v.visibility,
        access: v.access.clone(),
        duration_secs: None,
        renditions: v.renditions.clone(),
        playback: v.playback.clone(),
        poster: None,
        thumbnails: Vec::new(),
        storyboard: None,
        progress: None,
        failure: None,
        counters: Counters::default(),
        created_at: now,
        updated_at: now,
        published_at,
        started_at,
        ended_at: None,
        list_at: published_at.unwrap_or(now),
        version: 1,
        deleted: false,
        deleted_at: None,
    })
}

pub fn kind_name(k: VideoKind) -> &'static str {
    match k {
        VideoKind::Live => "live",
        VideoKind::Upload => "upload",
    }
}

/// `POST /videos/{id}/status`: the wire [`StatusChange`] plus images the transcoder may report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusUpdate {
    pub change: StatusChange,
    pub poster: Option<String>,
    pub thumbnails: Option<Vec<String>>,
}

impl StatusUpdate {
    /// Field checks that need no stored document.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(d) = self.change.duration_secs {
            if !d.is_finite() || d < 0.0 {
                return Err(Error::invalid(
                    "duration_secs",
                    "must be a finite number >= 0",
                ));
            }
        }
        if let Some(r) = &self.change.renditions {
            validate_renditions("renditions", r)?;
        }
        if let Some(p) = &self.change.playback {
            validate_playback("playback", p)?;
        }
        if let Some(p) = &self.poster {
            validate_key("poster", p)?;
        }
        if let Some(s) = &self.change.storyboard {
            validate_key("storyboard", s)?;
        }
        if let Some(p) = self.change.progress {
            if !(0.0..=100.0).contains(&p) {
                return Err(Error::invalid("progress", "must be a percentage, 0 to 100"));
            }
        }
        if let Some(t) = &self.thumbnails {
            validate_thumbnails(t)?;
        }
        Ok(())
    }
}

/// Applies a lifecycle transition and what came with it. `playback` is merged field by field
/// (a `None` keeps the stored location), `renditions` replaces the list.
pub fn apply_status(
    doc: &mut VideoDoc,
    u: &StatusUpdate,
    now: bson::DateTime,
) -> Result<(), Error> {
    let ch = &u.change;
    if let Some(to) = ch.status {
        let from = doc.status;
        if !transition_allowed(from, to) {
            return Err(Error::illegal(from, to));
        }
        if from != to {
            let at = ch.at.map(to_bson).unwrap_or(now);
            doc.status = to;
            match to {
                VideoStatus::Live => {
                    let started = *doc.started_at.get_or_insert(at);
                    publish(doc, started);
                }
                VideoStatus::Ready => publish(doc, at),
                VideoStatus::Ended => {
                    if let Some(started) = doc.started_at {
                        if at < started {
                            return Err(Error::invalid(
                                "at",
                                "a broadcast cannot end before it started",
                            ));
                        }
                    }
                    doc.ended_at = Some(at);
                }
                _ => {}
            }
        }
    }
    if let Some(d) = ch.duration_secs {
        doc.duration_secs = Some(d);
    }
    if let Some(r) = &ch.renditions {
        doc.renditions = r.clone();
    }
    if let Some(p) = &ch.playback {
        if p.master.is_some() {
            doc.playback.master = p.master.clone();
        }
        if p.vod_master.is_some() {
            doc.playback.vod_master = p.vod_master.clone();
        }
        if p.low_latency.is_some() {
            doc.playback.low_latency = p.low_latency.clone();
        }
    }
    if let Some(p) = &u.poster {
        doc.poster = Some(p.clone());
    }
    if let Some(s) = &ch.storyboard {
        doc.storyboard = Some(s.clone());
    }
    if let Some(p) = ch.progress {
        doc.progress = Some((p * 10.0).round() / 10.0);
    }
    if doc.status == VideoStatus::Ready {
        doc.progress = Some(100.0);
    }
    if let Some(f) = &ch.failure {
        doc.failure = Some(f.chars().take(500).collect());
    }
    if let Some(t) = &u.thumbnails {
        doc.thumbnails = t.clone();
    }
    doc.updated_at = now;
    Ok(())
}

fn publish(doc: &mut VideoDoc, at: bson::DateTime) {
    if doc.published_at.is_none() {
        doc.published_at = Some(at);
        doc.list_at = at;
    }
}

/// `PATCH /videos/{id}`: what an editor may change. `None` leaves a field alone;
/// `poster: Some(None)` removes the poster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub visibility: Option<Visibility>,
    pub access: Option<AccessPolicy>,
    pub poster: Option<Option<String>>,
    pub thumbnails: Option<Vec<String>>,
}

impl VideoPatch {
    pub fn is_empty(&self) -> bool {
        *self == VideoPatch::default()
    }

    /// Checks every field and normalises title and tags.
    pub fn cleaned(mut self) -> Result<Self, Error> {
        if let Some(t) = &self.title {
            self.title = Some(clean_title(t)?);
        }
        if let Some(d) = &self.description {
            self.description = Some(clean_description(d)?);
        }
        if let Some(t) = &self.tags {
            self.tags = Some(clean_tags(t)?);
        }
        if let Some(a) = &self.access {
            validate_access(a)?;
        }
        if let Some(Some(p)) = &self.poster {
            validate_key("poster", p)?;
        }
        if let Some(t) = &self.thumbnails {
            validate_thumbnails(t)?;
        }
        Ok(self)
    }
}

/// Applies a checked patch (see [`VideoPatch::cleaned`]) and recomputes the keywords.
pub fn apply_patch(doc: &mut VideoDoc, p: &VideoPatch, now: bson::DateTime) {
    if let Some(t) = &p.title {
        doc.title = t.clone();
    }
    if let Some(d) = &p.description {
        doc.description = d.clone();
    }
    if let Some(t) = &p.tags {
        doc.tags = t.clone();
    }
    if let Some(v) = p.visibility {
        doc.visibility = v;
    }
    if let Some(a) = &p.access {
        doc.access = a.clone();
    }
    if let Some(poster) = &p.poster {
        doc.poster = poster.clone();
    }
    if let Some(t) = &p.thumbnails {
        doc.thumbnails = t.clone();
    }
    doc.keywords = keywords(&doc.title, &doc.tags);
    doc.updated_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(title: &str) -> NewVideo {
        NewVideo {
            id: None,
            owner_id: "u1".into(),
            kind: VideoKind::Upload,
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

    #[test]
    fn words_are_normalised() {
        assert_eq!(
            words("Crème Brûlée: the  BEST-recipe 2024!"),
            ["creme", "brulee", "the", "best", "recipe", "2024"]
        );
        assert_eq!(words("Straße Łódź"), ["strasse", "lodz"]);
        assert!(words(" -- ").is_empty());
        assert_eq!(
            keywords("Rust live", &["rust".into(), "game-dev".into()]),
            ["rust", "live", "game", "dev"]
        );
    }

    #[test]
    fn lifecycle() {
        use VideoStatus::*;
        for (from, to) in [
            (Created, Uploading),
            (Uploading, Processing),
            (Processing, Ready),
            (Processing, Failed),
            (Live, Ended),
            (Ended, Recorded),
            (Ready, Ready),
        ] {
            assert!(transition_allowed(from, to), "{from:?} -> {to:?}");
        }
        for (from, to) in [
            (Created, Ready),
            (Ready, Processing),
            (Live, Recorded),
            (Recorded, Live),
            (Live, Ready),
            (Failed, Ready),
            (Ended, Live),
        ] {
            assert!(!transition_allowed(from, to), "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let field = |r: Result<VideoDoc, Error>| match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        let now = now();
        assert_eq!(field(new_document(&upload("  "), now)), "title");
        assert_eq!(field(new_document(&upload(&"x".repeat(201)), now)), "title");
        assert!(new_document(&upload(&"é".repeat(200)), now).is_ok());
        let mut v = upload("ok");
        v.tags = (0..21).map(|i| format!("t{i}")).collect();
        assert_eq!(field(new_document(&v, now)), "tags");
        v.tags = vec!["fine".into(), "x".repeat(41)];
        assert_eq!(field(new_document(&v, now)), "tags[1]");
        v.tags = vec![];
        v.access = AccessPolicy::Purchase {
            price_minor: 0,
            currency: "EUR".into(),
        };
        assert_eq!(field(new_document(&v, now)), "access.price_minor");
        v.access = AccessPolicy::Purchase {
            price_minor: 100,
            currency: "euro".into(),
        };
        assert_eq!(field(new_document(&v, now)), "access.currency");
        v.access = AccessPolicy::Free;
        v.id = Some("../etc".into());
        assert_eq!(field(new_document(&v, now)), "id");
        v.id = None;
        v.status = Some(VideoStatus::Live);
        assert_eq!(field(new_document(&v, now)), "status");
    }

    #[test]
    fn tags_are_cleaned() {
        assert_eq!(
            clean_tags(&[" Rust ".into(), "rust".into(), "Gaming".into()]).unwrap(),
            ["rust", "gaming"]
        );
    }

    #[test]
    fn prefixes_for_cleanup() {
        let mut d = new_document(&upload("x"), now()).unwrap();
        d.id = "abc".into();
        d.kind = VideoKind::Live;
        d.playback.master = Some("live/abc/master.m3u8".into());
        d.playback.vod_master = Some("vod/abc/master.m3u8".into());
        d.renditions = vec![Rendition {
            name: "720p".into(),
            width: 1280,
            height: 720,
            bandwidth: 3_000_000,
            codecs: "avc1".into(),
            frame_rate: 30.0,
            playlist: "live/abc/720p/index.m3u8".into(),
        }];
        d.poster = Some("posters/abc.jpg".into());
        d.thumbnails = vec!["vod/abc/thumbs/1.jpg".into()];
        let loc = d.storage_locations();
        assert_eq!(loc.prefixes, ["live/abc/", "vod/abc/"]);
        assert_eq!(loc.keys, ["posters/abc.jpg"]);
        // an upload's original folder goes too
        d.kind = VideoKind::Upload;
        let loc = d.storage_locations();
        assert_eq!(loc.prefixes, ["live/abc/", "uploads/abc/", "vod/abc/"]);
    }
}
