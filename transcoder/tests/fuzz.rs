//! Property tests over what hostile publishers control: the AVC and AAC configuration
//! records (parsed by us and by FFmpeg; FLV tags and RTMP timestamps are ingest-rtmp's,
//! tested in its `flv_fuzz.rs`); and over what we write: playlists must parse back to what was listed. Bounded
//! (10,000 cases each) so they run in every test run; `PROPTEST_CASES` changes it.

use proptest::prelude::*;
use transcoder::playlist::{parse_media, MediaWindow, SegmentEntry};
use transcoder::{av, codecs};

/// A real avcC (x264, High profile, 320x240) and AudioSpecificConfig (AAC LC, 44.1 kHz).
const AVCC: &str =
    "0164000dffe100196764000dacd94141fb0110000003001000000303c0f142996001000668ebe3cb22c0fdf8f800";
const ASC: &[u8] = &[0x12, 0x08, 0x56, 0xe5, 0x00];

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Edits of a valid input: a valid record with a few bytes changed, cut short or extended
/// reaches far deeper into a parser than random bytes do.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let n = base.len();
    (
        proptest::collection::vec((0..n, any::<u8>()), 0..6),
        0..=n + 8,
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(move |(edits, cut, tail)| {
            let mut b = base.clone();
            for (at, v) in edits {
                b[at] = v;
            }
            b.extend(tail);
            b.truncate(cut);
            b
        })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_avc_configs_never_crash_our_parser_or_ffmpeg(avcc in mutated(hex(AVCC))) {
        let _ = codecs::avc1_from_avcc(&avcc);
        let _ = codecs::avc1_from_annexb(&avcc);
        av::init();
        // FFmpeg parses the SPS/PPS inside: it must refuse or accept, never crash
        let _ = av::open_h264_decoder(&avcc);
    }

    #[test]
    fn mutated_aac_configs_never_crash_our_parser_or_ffmpeg(asc in mutated(ASC.to_vec())) {
        let _ = codecs::mp4a_from_asc(&asc);
        if let Some((rate, ch)) = codecs::asc_sample_rate_channels(&asc) {
            prop_assert!(rate > 0 && (1..=8).contains(&ch), "{rate} Hz {ch} channels");
        }
        av::init();
        let _ = av::aac_parameters(&asc);
    }

    #[test]
    fn playlists_parse_back_to_what_was_listed(
        durations in proptest::collection::vec(50u32..12_000, 1..40),
        breaks in proptest::collection::vec(any::<bool>(), 40),
        window in 3usize..8,
        first in 0u64..1_000_000,
    ) {
        let mut w = MediaWindow::new(window, 2);
        let t0: chrono::DateTime<chrono::Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        let mut at = t0;
        for (i, ms) in durations.iter().enumerate() {
            w.push(SegmentEntry {
                sequence: first + i as u64,
                uri: format!("seg_{:05}.ts", first + i as u64),
                duration_secs: *ms as f64 / 1000.0,
                program_date_time: at,
                size_bytes: 1000,
                discontinuity: breaks[i] && i > 0,
                init: None,
            });
            at += chrono::Duration::milliseconds(*ms as i64);
        }
        let all = w.segments().to_vec();
        for (text, from) in [(w.render_vod(), 0), (w.render_live(), all.len().saturating_sub(window))] {
            let back = parse_media(text.as_bytes()).unwrap();
            prop_assert_eq!(back.len(), all.len() - from);
            for (b, a) in back.iter().zip(&all[from..]) {
                prop_assert_eq!(&b.uri, &a.uri);
                prop_assert_eq!(b.discontinuity, a.discontinuity);
                prop_assert_eq!(b.program_date_time, a.program_date_time);
                prop_assert!((b.duration_secs - a.duration_secs).abs() < 0.0006);
                prop_assert!(w.target_duration() as f64 + 0.5 >= b.duration_secs);
            }
            if from > 0 {
                prop_assert_eq!(back[0].sequence, all[from].sequence);
                let slid = all[..from].iter().filter(|s| s.discontinuity).count();
                let line = format!("#EXT-X-DISCONTINUITY-SEQUENCE:{slid}\n");
                prop_assert!(slid == 0 || text.contains(&line), "{}", text);
            }
        }
    }
}
