//! Property tests over what hostile publishers control: FLV tag bodies, the AVC and AAC
//! configuration records (parsed by us and by FFmpeg), RTMP timestamps; and over what we
//! write: playlists must parse back to what was listed. Bounded
//! (10,000 cases each) so they run in every test run; `PROPTEST_CASES` changes it.

use bytes::Bytes;
use proptest::prelude::*;
use transcoder::flv::{parse_audio, parse_video, AudioTag, Timeline, VideoTag};
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
    fn any_video_tag_parses_or_is_refused(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let b = Bytes::from(body.clone());
        match parse_video(&b) {
            Ok(VideoTag::Frame { data, .. }) => {
                prop_assert_eq!(&data[..], &body[5..]);
                prop_assert_eq!(body[0] & 0x0f, 7);
            }
            Ok(VideoTag::SequenceHeader(avcc)) => prop_assert!(avcc.len() >= 7),
            Ok(_) | Err(_) => {}
        }
    }

    #[test]
    fn avc_frames_round_trip(key in any::<bool>(), cts in -(1i32 << 23)..(1i32 << 23),
                             nal in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1];
        body.extend_from_slice(&cts.to_be_bytes()[1..]);
        body.extend_from_slice(&nal);
        let parsed = parse_video(&Bytes::from(body)).unwrap();
        prop_assert_eq!(parsed, VideoTag::Frame { keyframe: key, cts_ms: cts, data: Bytes::from(nal) });
    }

    #[test]
    fn any_audio_tag_parses_or_is_refused(body in proptest::collection::vec(any::<u8>(), 0..32)) {
        if let Ok(AudioTag::Frame(f)) = parse_audio(&Bytes::from(body.clone())) {
            prop_assert_eq!(&f[..], &body[2..]);
            prop_assert_eq!(body[0] >> 4, 10);
        }
    }

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
    fn timestamps_survive_wraps_and_small_reorders(start in any::<u32>(),
                                                   steps in proptest::collection::vec(-200i64..2000, 1..200)) {
        let mut t = Timeline::new();
        prop_assert_eq!(t.map(start), 0);
        let mut expect = 0i64;
        let mut raw = start;
        for s in steps {
            raw = raw.wrapping_add(s as i32 as u32);
            expect += s;
            prop_assert_eq!(t.map(raw), expect);
        }
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
