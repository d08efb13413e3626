//! HLS playlists, written with m3u8-rs. [`MediaWindow`] owns a rung's segment list, the live
//! sliding window and the media sequence; every render is a whole playlist (uploaded in one PUT).

use std::sync::atomic::Ordering;

use crate::RenditionInfo;
use chrono::{DateTime, Utc};
use m3u8_rs::{
    MasterPlaylist, MediaPlaylist, MediaPlaylistType, MediaSegment, Resolution, VariantStream,
};

/// One stored segment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentEntry {
    pub sequence: u64,
    /// Relative to the playlist, e.g. `seg_00003.ts`.
    pub uri: String,
    pub duration_secs: f64,
    /// Wall-clock time of the segment's first frame.
    pub program_date_time: DateTime<Utc>,
    pub size_bytes: u64,
    /// The segment does not continue the one before it (a publisher reconnected, or the
    /// segment before could not be stored): EXT-X-DISCONTINUITY.
    pub discontinuity: bool,
    /// fMP4: the init section it needs (EXT-X-MAP), relative to the playlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

/// A rung's playlist state.
#[derive(Debug, Clone)]
pub struct MediaWindow {
    window: usize,
    /// `window` 0: an EVENT playlist, every segment from the first (a file being transcoded:
    /// viewers start at its beginning while the rest is made).
    event: bool,
    min_target_secs: u64,
    segments: Vec<SegmentEntry>,
}

const HLS_VERSION: usize = 3;
/// EXT-X-MAP on segments that are not I-frames only needs version 6; 7 is what players and
/// Apple's validator expect of fMP4 playlists.
const HLS_VERSION_FMP4: usize = 7;

fn render<F: FnOnce(&mut Vec<u8>) -> std::io::Result<()>>(f: F) -> String {
    // three decimals for EXTINF; the writer reads this global
    m3u8_rs::WRITE_OPT_FLOAT_PRECISION.store(3, Ordering::Relaxed);
    let mut out = Vec::new();
    f(&mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("m3u8-rs writes UTF-8")
}

impl MediaWindow {
    /// `window`: how many segments a live playlist lists; `min_target_secs`: the configured
    /// segment duration, a floor for EXT-X-TARGETDURATION.
    pub fn new(window: usize, min_target_secs: u64) -> Self {
        Self {
            event: window == 0,
            window: if window == 0 {
                usize::MAX
            } else {
                window.max(3)
            },
            min_target_secs: min_target_secs.max(1),
            segments: Vec::new(),
        }
    }

    pub fn push(&mut self, seg: SegmentEntry) {
        self.segments.push(seg);
    }

    pub fn segments(&self) -> &[SegmentEntry] {
        &self.segments
    }

    /// Sum of segment durations.
    pub fn total_duration_secs(&self) -> f64 {
        self.segments.iter().map(|s| s.duration_secs).sum()
    }

    /// Peak and average bits per second over the stored segments.
    pub fn measured_bandwidth(&self) -> Option<(u64, u64)> {
        let total: f64 = self.total_duration_secs();
        if self.segments.is_empty() || total <= 0.0 {
            return None;
        }
        let peak = self
            .segments
            .iter()
            .filter(|s| s.duration_secs > 0.1)
            .map(|s| s.size_bytes as f64 * 8.0 / s.duration_secs)
            .fold(0.0, f64::max);
        let bytes: u64 = self.segments.iter().map(|s| s.size_bytes).sum();
        let avg = bytes as f64 * 8.0 / total;
        Some((peak.max(avg).round() as u64, avg.round() as u64))
    }

    /// EXT-X-TARGETDURATION: at least the configured duration and every EXTINF rounded to
    /// the nearest integer (RFC 8216 section 4.3.3.1).
    pub fn target_duration(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.duration_secs.round() as u64)
            .fold(self.min_target_secs, u64::max)
    }

    fn playlist(&self, from: usize) -> MediaPlaylist {
        let segs = &self.segments[from..];
        // RFC 8216 4.3.3.3: the discontinuities that slid out of the window
        let discontinuity_sequence = self.segments[..from]
            .iter()
            .filter(|s| s.discontinuity)
            .count() as u64;
        let fmp4 = segs.iter().any(|s| s.init.is_some());
        let mut init: Option<&String> = None;
        MediaPlaylist {
            version: Some(if fmp4 { HLS_VERSION_FMP4 } else { HLS_VERSION }),
            target_duration: self.target_duration(),
            media_sequence: segs.first().map(|s| s.sequence).unwrap_or(0),
            discontinuity_sequence,
            independent_segments: true,
            segments: segs
                .iter()
                .map(|s| {
                    // EXT-X-MAP on the first segment and wherever the init section changes
                    let map = (s.init.as_ref() != init).then(|| s.init.clone()).flatten();
                    init = s.init.as_ref();
                    MediaSegment {
                        uri: s.uri.clone(),
                        duration: s.duration_secs as f32,
                        discontinuity: s.discontinuity,
                        program_date_time: Some(s.program_date_time.fixed_offset()),
                        map: map.map(|uri| m3u8_rs::Map {
                            uri,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        }
    }

    fn window_start(&self) -> usize {
        self.segments.len().saturating_sub(self.window)
    }

    /// Whether the live playlist is worth storing after the segment just pushed. A sliding
    /// window: always. An EVENT playlist grows with every segment, so past 64 segments it is
    /// stored every `n / 64`-th only: about 64 stores per doubling, so the bytes stored in all
    /// stay within about 128 times its final size (not n/2 times); the ended playlist lists
    /// everything anyway.
    pub fn publish_now(&self) -> bool {
        let n = self.segments.len();
        !self.event || n <= 64 || n.is_multiple_of(n / 64)
    }

    /// The live playlist: the last `window` segments (EVENT: all of them).
    pub fn render_live(&self) -> String {
        let mut pl = self.playlist(self.window_start());
        if self.event {
            pl.playlist_type = Some(MediaPlaylistType::Event);
        }
        render(|w| pl.write_to(w))
    }

    /// The live playlist after the broadcast ended: the same window plus EXT-X-ENDLIST.
    pub fn render_ended(&self) -> String {
        let mut pl = self.playlist(self.window_start());
        if self.event {
            pl.playlist_type = Some(MediaPlaylistType::Event);
        }
        pl.end_list = true;
        render(|w| pl.write_to(w))
    }

    /// Every segment from the first: EXT-X-PLAYLIST-TYPE:VOD and EXT-X-ENDLIST.
    pub fn render_vod(&self) -> String {
        let mut pl = self.playlist(0);
        pl.end_list = true;
        pl.playlist_type = Some(MediaPlaylistType::Vod);
        render(|w| pl.write_to(w))
    }
}

/// The segments a stored media playlist lists (ours: `seg_NNNNN.ts` URIs, a date-time on
/// every segment), with their media sequence numbers. Sizes are not in playlists: 0.
pub fn parse_media(text: &[u8]) -> Result<Vec<SegmentEntry>, String> {
    let pl = m3u8_rs::parse_media_playlist_res(text).map_err(|e| format!("{e:?}"))?;
    let mut out = Vec::with_capacity(pl.segments.len());
    let mut pdt: Option<DateTime<Utc>> = None;
    // EXT-X-MAP applies to every segment after it (m3u8-rs gives it to the first only)
    let mut init: Option<String> = None;
    for (i, s) in pl.segments.iter().enumerate() {
        if let Some(m) = &s.map {
            init = Some(m.uri.clone());
        }
        let at = s
            .program_date_time
            .map(|t| t.with_timezone(&Utc))
            .or(pdt)
            .unwrap_or_else(Utc::now);
        out.push(SegmentEntry {
            sequence: pl.media_sequence + i as u64,
            uri: s.uri.clone(),
            duration_secs: s.duration as f64,
            program_date_time: at,
            size_bytes: 0,
            discontinuity: s.discontinuity,
            init: init.clone(),
        });
        pdt = Some(at + chrono::Duration::milliseconds((s.duration as f64 * 1000.0) as i64));
    }
    Ok(out)
}

/// The codecs of each rung a stored master playlist lists: (rung name, CODECS).
pub fn parse_master_codecs(text: &[u8]) -> Result<Vec<(String, String)>, String> {
    let pl = m3u8_rs::parse_master_playlist_res(text).map_err(|e| format!("{e:?}"))?;
    Ok(pl
        .variants
        .iter()
        .map(|v| {
            let rung = v.uri.split('/').next().unwrap_or_default().to_string();
            (rung, v.codecs.clone().unwrap_or_default())
        })
        .collect())
}

/// A media playlist's URI in its master: `<rung>/<file>` of its storage key.
fn relative_to_master(key: &str) -> &str {
    match key.rmatch_indices('/').nth(1) {
        Some((at, _)) => &key[at + 1..],
        None => key,
    }
}

/// The master playlist listing every rendition, in the order given; each media playlist by
/// its URI relative to the master (`<rung>/<file>`).
pub fn render_master(renditions: &[RenditionInfo]) -> String {
    let pl = MasterPlaylist {
        version: Some(HLS_VERSION),
        independent_segments: true,
        variants: renditions
            .iter()
            .map(|v| VariantStream {
                uri: relative_to_master(&v.playlist).to_string(),
                bandwidth: v.bandwidth,
                average_bandwidth: v.average_bandwidth,
                codecs: Some(v.codecs.clone()),
                resolution: Some(Resolution {
                    width: v.width as u64,
                    height: v.height as u64,
                }),
                frame_rate: Some((v.frame_rate * 1000.0).round() / 1000.0),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    render(|w| pl.write_to(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn seg(i: u64, d: f64) -> SegmentEntry {
        SegmentEntry {
            sequence: i,
            uri: format!("seg_{i:05}.ts"),
            duration_secs: d,
            program_date_time: Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
                + chrono::Duration::milliseconds((i as i64) * 2000),
            size_bytes: 500_000,
            discontinuity: false,
            init: None,
        }
    }

    #[test]
    fn discontinuities_are_tagged_and_counted_once_they_slide_out() {
        let mut w = MediaWindow::new(3, 2);
        for i in 0..6 {
            let mut s = seg(i, 2.0);
            s.discontinuity = i == 2 || i == 4;
            w.push(s);
        }
        let live = w.render_live();
        // window: 3, 4, 5; the discontinuity on 2 slid out
        assert!(live.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{live}");
        assert!(live.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{live}");
        assert_eq!(live.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{live}");
        let at = live.find("#EXT-X-DISCONTINUITY\n").unwrap();
        assert!(live[at..].contains("seg_00004.ts"));
        assert!(!live[at..]
            .split("seg_00004.ts")
            .next()
            .unwrap()
            .contains("seg_00003.ts"));
        let vod = w.render_vod();
        assert_eq!(vod.matches("#EXT-X-DISCONTINUITY\n").count(), 2);
        assert!(!vod.contains("DISCONTINUITY-SEQUENCE"));
        // what recovery reads back is what was written
        let back = parse_media(live.as_bytes()).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].sequence, 3);
        assert!(back[1].discontinuity && !back[0].discontinuity && !back[2].discontinuity);
        assert_eq!(back[2].uri, "seg_00005.ts");
        assert_eq!(back[2].program_date_time, w.segments()[5].program_date_time);
        let all = parse_media(vod.as_bytes()).unwrap();
        assert_eq!(
            all.iter().map(|s| s.sequence).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn an_event_playlist_keeps_every_segment_and_thins_its_stores() {
        let mut w = MediaWindow::new(0, 2);
        let mut stored = 0;
        for i in 0..1000u64 {
            w.push(seg(i, 2.0));
            stored += usize::from(w.publish_now());
        }
        let live = w.render_live();
        assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{live}");
        // every segment from the first (m3u8-rs leaves out a media sequence of 0)
        assert!(!live.contains("#EXT-X-MEDIA-SEQUENCE"), "{live}");
        assert!(live.contains("seg_00000.ts"), "{live}");
        assert_eq!(live.matches("#EXTINF").count(), 1000);
        assert!(!live.contains("#EXT-X-ENDLIST"));
        assert!(w.render_ended().ends_with("#EXT-X-ENDLIST\n"));
        // 64 while small, then one in n/64: about 64 stores per doubling
        assert!(stored > 64 && stored < 300, "{stored}");
        let mut s = MediaWindow::new(6, 2);
        s.push(seg(0, 2.0));
        assert!(s.publish_now() && !s.render_live().contains("PLAYLIST-TYPE"));
    }

    #[test]
    fn live_window_slides_and_counts_the_media_sequence() {
        let mut w = MediaWindow::new(3, 2);
        for i in 0..5 {
            w.push(seg(i, 2.0));
        }
        assert_eq!(
            w.render_live(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n\
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:00:04.000Z\n#EXTINF:2.000,\nseg_00002.ts\n\
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:00:06.000Z\n#EXTINF:2.000,\nseg_00003.ts\n\
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:00:08.000Z\n#EXTINF:2.000,\nseg_00004.ts\n"
        );
        assert!(w.render_ended().ends_with("seg_00004.ts\n#EXT-X-ENDLIST\n"));
        assert!(w.render_ended().contains("#EXT-X-MEDIA-SEQUENCE:2\n"));
    }

    #[test]
    fn vod_lists_everything_from_the_first_segment() {
        let mut w = MediaWindow::new(3, 2);
        for i in 0..4 {
            w.push(seg(i, 2.0));
        }
        w.push(seg(4, 0.967));
        let vod = w.render_vod();
        assert!(vod.starts_with(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n\
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:00:00.000Z\n#EXTINF:2.000,\nseg_00000.ts\n"
        ));
        assert!(!vod.contains("MEDIA-SEQUENCE"), "sequence 0 is implied");
        assert!(vod.ends_with("#EXTINF:0.967,\nseg_00004.ts\n#EXT-X-ENDLIST\n"));
        assert_eq!(vod.matches("#EXTINF").count(), 5);
        assert!((w.total_duration_secs() - 8.967).abs() < 1e-9);
    }

    #[test]
    fn target_duration_covers_long_segments() {
        let mut w = MediaWindow::new(6, 2);
        w.push(seg(0, 2.4));
        assert_eq!(w.target_duration(), 2);
        w.push(seg(1, 8.34));
        assert_eq!(w.target_duration(), 8);
        w.push(seg(2, 8.5));
        assert_eq!(w.target_duration(), 9);
    }

    #[test]
    fn master_lists_every_rung_with_attributes() {
        let m = render_master(&[
            RenditionInfo {
                name: "720p".into(),
                playlist: "live/v1/720p/index.m3u8".into(),
                bandwidth: 3_500_000,
                average_bandwidth: Some(2_900_000),
                codecs: "avc1.64001f,mp4a.40.2".into(),
                width: 1280,
                height: 720,
                frame_rate: 30.0,
                passthrough: false,
            },
            RenditionInfo {
                name: "360p".into(),
                playlist: "live/v1/360p/index.m3u8".into(),
                bandwidth: 1_100_000,
                average_bandwidth: Some(900_000),
                codecs: "avc1.64001e,mp4a.40.2".into(),
                width: 640,
                height: 360,
                frame_rate: 29.97,
                passthrough: false,
            },
        ]);
        assert_eq!(
            m,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-STREAM-INF:BANDWIDTH=3500000,AVERAGE-BANDWIDTH=2900000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30\n720p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=1100000,AVERAGE-BANDWIDTH=900000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=29.97\n360p/index.m3u8\n"
        );
        let parsed = m3u8_rs::parse_master_playlist_res(m.as_bytes()).expect("parses");
        assert_eq!(parsed.variants.len(), 2);
        assert_eq!(
            parse_master_codecs(m.as_bytes()).unwrap(),
            [
                ("720p".to_string(), "avc1.64001f,mp4a.40.2".to_string()),
                ("360p".to_string(), "avc1.64001e,mp4a.40.2".to_string())
            ]
        );
        assert_eq!(relative_to_master("a/b/c/d.m3u8"), "c/d.m3u8");
        assert_eq!(relative_to_master("d.m3u8"), "d.m3u8");
    }
}
