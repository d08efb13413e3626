//! What the creator's studio shows about a live input: bitrate, frame rate, keyframe
//! interval, audio/video drift and drops, measured over the last few seconds, with advice in
//! OBS's words when something is off.

use std::time::{Duration, Instant};

/// A snapshot, refreshed every [`WINDOW`] (service-clients' wire type).
pub use service_clients::ingest::Health;

pub const WINDOW: Duration = Duration::from_secs(2);

/// Counts what a publisher sends; [`Meter::snapshot`] turns the last window into [`Health`].
pub struct Meter {
    since: Instant,
    started: Instant,
    bytes: u64,
    frames: u64,
    audio_seen: bool,
    last_key_ms: Option<i64>,
    key_interval_ms: Option<i64>,
    last_video_ms: Option<i64>,
    last_audio_ms: Option<i64>,
    pub declared_frame_rate: Option<f64>,
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

impl Meter {
    pub fn new() -> Self {
        Self {
            since: Instant::now(),
            started: Instant::now(),
            bytes: 0,
            frames: 0,
            audio_seen: false,
            last_key_ms: None,
            key_interval_ms: None,
            last_video_ms: None,
            last_audio_ms: None,
            declared_frame_rate: None,
        }
    }

    pub fn video(&mut self, bytes: usize, ts_ms: i64, keyframe: bool) {
        self.bytes += bytes as u64;
        self.frames += 1;
        self.last_video_ms = Some(ts_ms);
        if keyframe {
            if let Some(prev) = self.last_key_ms {
                if ts_ms > prev {
                    self.key_interval_ms = Some(ts_ms - prev);
                }
            }
            self.last_key_ms = Some(ts_ms);
        }
    }

    pub fn audio(&mut self, bytes: usize, ts_ms: i64) {
        self.bytes += bytes as u64;
        self.audio_seen = true;
        self.last_audio_ms = Some(ts_ms);
    }

    /// The last window's figures, or None while it is not over; starts the next window.
    pub fn snapshot(&mut self, dropped: u64, segment_secs: f64) -> Option<Health> {
        let secs = self.since.elapsed().as_secs_f64();
        if secs < WINDOW.as_secs_f64() {
            return None;
        }
        let mut h = Health {
            at: chrono::Utc::now(),
            input_kbps: (self.bytes as f64 * 8.0 / 1000.0 / secs * 10.0).round() / 10.0,
            frame_rate: (self.frames as f64 / secs * 10.0).round() / 10.0,
            // a keyframe seen long ago says nothing about the interval now
            keyframe_interval_secs: self.key_interval_ms.map(|ms| ms as f64 / 1000.0),
            av_drift_ms: match (self.last_audio_ms, self.last_video_ms) {
                (Some(a), Some(v)) => Some(a - v),
                _ => None,
            },
            dropped,
            declared_frame_rate: self.declared_frame_rate,
            advice: Vec::new(),
        };
        let live_for = self.started.elapsed();
        h.advice = advise(
            &h,
            self.audio_seen,
            live_for,
            self.last_key_ms,
            segment_secs,
        );
        self.since = Instant::now();
        self.bytes = 0;
        self.frames = 0;
        Some(h)
    }
}

/// Advice in the words of OBS's settings.
fn advise(
    h: &Health,
    audio_seen: bool,
    live_for: Duration,
    last_key_ms: Option<i64>,
    segment_secs: f64,
) -> Vec<String> {
    let mut out = Vec::new();
    let settled = live_for > Duration::from_secs(6);
    let seg = segment_secs.max(1.0);
    match h.keyframe_interval_secs {
        Some(k) if k > 2.0 * seg + 0.5 => out.push(format!(
            "Keyframes come every {k:.1} s. In OBS, Settings → Output → Streaming, set \
             Keyframe Interval to {seg:.0} s (0 means auto, about 8 s): viewers start and \
             recover faster."
        )),
        None if settled && last_key_ms.is_some() => out.push(format!(
            "Only one keyframe so far. In OBS, Settings → Output → Streaming, set Keyframe \
             Interval to {seg:.0} s."
        )),
        _ => {}
    }
    let expected = h.declared_frame_rate.unwrap_or(30.0);
    if settled && h.frame_rate > 0.0 && h.frame_rate < expected * 0.8 {
        out.push(format!(
            "{:.1} frames a second arrive ({expected:.0} expected): OBS is skipping frames. \
             Check View → Stats: \"skipped due to encoding lag\" means lower Output (Scaled) \
             Resolution or a faster encoder preset; \"dropped due to network\" means a lower \
             Bitrate.",
            h.frame_rate
        ));
    }
    if h.input_kbps > 10_000.0 {
        out.push(format!(
            "{:.0} kbit/s in: more than any viewer gets (the top rung is 5000 kbit/s). In \
             OBS, Settings → Output → Bitrate 6000 Kbps is plenty for 1080p.",
            h.input_kbps
        ));
    }
    if settled && !audio_seen {
        out.push(
            "No audio arrives. In OBS, add an audio source (Desktop Audio or a microphone) \
             and check Settings → Output → Audio Track 1."
                .into(),
        );
    }
    if let Some(d) = h.av_drift_ms.filter(|d| d.abs() > 1000) {
        out.push(format!(
            "Audio and video are {d} ms apart. In OBS, Settings → Audio, use 44.1 or 48 kHz, \
             and check Advanced Audio Properties → Sync Offset."
        ));
    }
    if h.dropped > 0 {
        out.push(format!(
            "The server dropped {} packets of this stream (it could not keep up, or packets \
             broke a limit). Lower the Bitrate or Output (Scaled) Resolution.",
            h.dropped
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health {
            at: chrono::Utc::now(),
            input_kbps: 3000.0,
            frame_rate: 30.0,
            keyframe_interval_secs: Some(2.0),
            av_drift_ms: Some(20),
            dropped: 0,
            declared_frame_rate: Some(30.0),
            advice: Vec::new(),
        }
    }

    #[test]
    fn a_healthy_input_gets_no_advice() {
        assert!(advise(&health(), true, Duration::from_secs(60), Some(0), 2.0).is_empty());
    }

    #[test]
    fn each_problem_gets_its_advice() {
        let h = Health {
            keyframe_interval_secs: Some(8.3),
            frame_rate: 17.0,
            input_kbps: 15_000.0,
            av_drift_ms: Some(-1500),
            dropped: 12,
            ..health()
        };
        let advice = advise(&h, false, Duration::from_secs(60), Some(0), 2.0);
        let all = advice.join("\n");
        assert_eq!(advice.len(), 6, "{all}");
        for words in [
            "Keyframe Interval to 2 s",
            "skipped due to encoding lag",
            "Bitrate 6000 Kbps",
            "No audio",
            "-1500 ms apart",
            "dropped 12 packets",
        ] {
            assert!(all.contains(words), "{words}: {all}");
        }
    }

    #[test]
    fn the_meter_measures_a_window() {
        let mut m = Meter::new();
        m.since -= Duration::from_secs(2);
        for i in 0..60 {
            m.video(12_500, i * 33, i % 30 == 0);
            m.audio(300, i * 33 + 10);
        }
        let h = m.snapshot(0, 2.0).expect("a window passed");
        // over a window of at least 2 s (longer on a busy machine: up to 10 % lower figures)
        let near = |v: f64, want: f64| v <= want * 1.001 && v >= want * 0.9;
        assert!(near(h.frame_rate, 30.0), "{h:?}");
        assert!(
            near(h.input_kbps, 60.0 * 12_800.0 * 8.0 / 1000.0 / 2.0),
            "{h:?}"
        );
        assert_eq!(h.keyframe_interval_secs, Some(0.99));
        assert_eq!(h.av_drift_ms, Some(10));
        assert!(m.snapshot(0, 2.0).is_none(), "the next window just began");
    }
}
