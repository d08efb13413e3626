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

/// What a rung will be for this source.
#[derive(Debug, Clone, PartialEq)]
pub enum RungKind {
    /// Scaled and encoded with libx264.
    Encoded { video_kbps: u32 },
    /// The source H.264 copied without re-encoding.
    Passthrough,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RungPlan {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub kind: RungKind,
}

impl RungPlan {
    pub fn is_passthrough(&self) -> bool {
        self.kind == RungKind::Passthrough
    }
}

fn even(v: f64) -> u32 {
    let r = v.round() as u32;
    (r + (r & 1)).max(2)
}

/// Picks the rungs for a `src_w`x`src_h` source: every configured rung no taller than the
/// source (never upscale); a source shorter than every rung gets one rung at its own size,
/// with the lowest rung's bitrate scaled by area. A passthrough rung, when asked for, comes
/// first (it is the highest quality). Rungs are ordered highest first.
pub fn select(src_w: u32, src_h: u32, rungs: &[RungSpec], passthrough: bool) -> Vec<RungPlan> {
    let mut specs: Vec<&RungSpec> = rungs
        .iter()
        .filter(|r| r.height <= src_h && r.height > 0)
        .collect();
    specs.sort_by_key(|r| std::cmp::Reverse(r.height));
    let aspect = src_w as f64 / src_h.max(1) as f64;
    let mut out = Vec::new();
    if passthrough {
        out.push(RungPlan {
            name: "source".into(),
            width: src_w,
            height: src_h,
            kind: RungKind::Passthrough,
        });
    }
    if specs.is_empty() {
        if let Some(lowest) = rungs.iter().min_by_key(|r| r.height) {
            let scale = (src_w as f64 * src_h as f64)
                / (lowest.height as f64 * lowest.height as f64 * aspect);
            let kbps = ((lowest.video_kbps as f64) * scale).round().max(100.0) as u32;
            out.push(RungPlan {
                name: format!("{}p", src_h - (src_h & 1)),
                width: src_w - (src_w & 1),
                height: src_h - (src_h & 1),
                kind: RungKind::Encoded { video_kbps: kbps },
            });
        }
        return out;
    }
    for s in specs {
        out.push(RungPlan {
            name: s.name.clone(),
            width: even(s.height as f64 * aspect),
            height: s.height,
            kind: RungKind::Encoded {
                video_kbps: s.video_kbps,
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &[RungPlan]) -> Vec<String> {
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
        assert_eq!(p[1].kind, RungKind::Encoded { video_kbps: 1400 });
    }

    #[test]
    fn passthrough_comes_first() {
        let p = select(1280, 720, &default_rungs(), true);
        assert_eq!(names(&p)[0], "source:1280x720");
        assert!(p[0].is_passthrough());
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
