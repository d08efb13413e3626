//! Property tests over what a hostile publisher controls in FLV: video and audio tag bodies
//! and RTMP timestamps. Bounded (10,000 cases each) so they run in every test run;
//! `PROPTEST_CASES` changes it.

use bytes::Bytes;
use ingest_rtmp::flv::{parse_audio, parse_video, AudioTag, Timeline, VideoTag};
use proptest::prelude::*;

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
}
