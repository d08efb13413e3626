//! The ABR ladder: which renditions to make from a source of a given size.

use serde::{Deserialize, Serialize};

/// One configured rung: a target height and bitrate. Width follows the source aspect ratio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RungSpec {
    pub name: String,
    pub height: u32,
    pub video_kbps: u32,
}

impl RungSpec {
    pub fn new(name: &str, height: u32, video_kbps: u32) -> Self {
        Self {
            name: name.into(),
            height,
            video_kbps,
        }
    }
}

/// The default ladder, highest first.
pub fn default_rungs() -> Vec<RungSpec> {
    vec![
        RungSpec::new("1080p", 1080, 5000),
        RungSpec::new("720p", 720, 2800),
        RungSpec::new("480p", 480, 1400),
        RungSpec::new("360p", 360, 800),
    ]
}

/// A rung of a broadcast's ladder: how it is made (scaled and encoded with libx264 at
/// `video_kbps`, or the source copied) and how it is published. Stored in the journal and
/// beside spooled segments, so a recovery knows the ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RungDesc {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// Nominal peak bits per second (video + audio), before anything was measured.
    pub nominal_bandwidth: u64,
    /// The source H.264 copied without re-encoding.
    pub passthrough: bool,
    /// libx264's target, kbit/s (0 for a passthrough rung).
    #[serde(default)]
    pub video_kbps: u32,
}

/// What the ladder is chosen from: the source's first picture and stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source {
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    pub audio: bool,
}

fn even(v: f64) -> u32 {
    let r = v.round() as u32;
    (r + (r & 1)).max(2)
}

/// Picks the rungs for a source: every configured rung no taller than the source (never
/// upscale); a source shorter than every rung gets one rung at its own size, with the lowest
/// rung's bitrate scaled by area. A passthrough rung, when asked for, comes first (it is the
/// highest quality). Rungs are ordered highest first. BANDWIDTH before anything is measured:
/// the video bitrate plus 20 %, and the configured audio bitrate when there is audio.
pub fn select(src: &Source, cfg: &crate::LiveConfig) -> Vec<RungDesc> {
    let (src_w, src_h, rungs) = (src.width, src.height, &cfg.rungs);
    let audio_bps = if src.audio {
        cfg.audio_kbps as u64 * 1000
    } else {
        0
    };
    let rung = |name: String, width: u32, height: u32, video_kbps: u32, passthrough: bool| {
        let kbps = if passthrough {
            cfg.passthrough_kbps_hint
        } else {
            video_kbps
        };
        RungDesc {
            name,
            width,
            height,
            frame_rate: src.frame_rate,
            nominal_bandwidth: kbps as u64 * 1200 + audio_bps,
            passthrough,
            video_kbps,
        }
    };
    let mut specs: Vec<&RungSpec> = rungs
        .iter()
        .filter(|r| r.height <= src_h && r.height > 0)
        .collect();
    specs.sort_by_key(|r| std::cmp::Reverse(r.height));
    let aspect = src_w as f64 / src_h.max(1) as f64;
    let mut out = Vec::new();
    if cfg.passthrough {
        out.push(rung("source".into(), src_w, src_h, 0, true));
    }
    if specs.is_empty() {
        if let Some(lowest) = rungs.iter().min_by_key(|r| r.height) {
            let scale = (src_w as f64 * src_h as f64)
                / (lowest.height as f64 * lowest.height as f64 * aspect);
            let kbps = ((lowest.video_kbps as f64) * scale).round().max(100.0) as u32;
            out.push(rung(
                format!("{}p", src_h - (src_h & 1)),
                src_w - (src_w & 1),
                src_h - (src_h & 1),
                kbps,
                false,
            ));
        }
        return out;
    }
    for s in specs {
        out.push(rung(
            s.name.clone(),
            even(s.height as f64 * aspect),
            s.height,
            s.video_kbps,
            false,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(w: u32, h: u32, rungs: &[RungSpec], passthrough: bool) -> Vec<RungDesc> {
        let cfg = crate::LiveConfig {
            rungs: rungs.to_vec(),
            passthrough,
            ..Default::default()
        };
        let src = Source {
            width: w,
            height: h,
            frame_rate: 30.0,
            audio: true,
        };
        super::select(&src, &cfg)
    }

    fn names(p: &[RungDesc]) -> Vec<String> {
        p.iter()
            .map(|r| format!("{}:{}x{}", r.name, r.width, r.height))
            .collect()
    }

    #[test]
    fn full_hd_gets_four_rungs() {
        let p = select(1920, 1080, &default_rungs(), false);
        assert_eq!(
            names(&p),
            [
                "1080p:1920x1080",
                "720p:1280x720",
                "480p:854x480",
                "360p:640x360"
            ]
        );
    }

    #[test]
    fn hd_source_is_never_upscaled() {
        let p = select(1280, 720, &default_rungs(), false);
        assert_eq!(names(&p), ["720p:1280x720", "480p:854x480", "360p:640x360"]);
        assert_eq!(p[1].video_kbps, 1400);
        // 1400 kbit/s + 20 %, and 160 kbit/s of audio
        assert_eq!(p[1].nominal_bandwidth, 1_840_000);
        assert!(!p[1].passthrough);
    }

    #[test]
    fn passthrough_comes_first() {
        let p = select(1280, 720, &default_rungs(), true);
        assert_eq!(names(&p)[0], "source:1280x720");
        assert!(p[0].passthrough);
        // the configured hint (4000 kbit/s) + 20 % + audio, until it is measured
        assert_eq!(p[0].nominal_bandwidth, 4_960_000);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn odd_sizes_and_tiny_sources() {
        // 4:3 source between rungs
        let p = select(1000, 750, &default_rungs(), false);
        assert_eq!(names(&p), ["720p:960x720", "480p:640x480", "360p:480x360"]);
        // smaller than every rung: one rung at its own (even) size
        let p = select(321, 241, &default_rungs(), false);
        assert_eq!(names(&p), ["240p:320x240"]);
        // vertical video keeps its aspect ratio
        let p = select(720, 1280, &default_rungs(), false);
        assert_eq!(names(&p)[0], "1080p:608x1080");
    }
}
