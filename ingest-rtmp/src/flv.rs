//! FLV tag bodies as RTMP carries them (video type 9, audio type 8), and RTMP timestamps.

use bytes::Bytes;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("empty {0} tag")]
    Empty(&'static str),
    #[error("truncated {0} tag")]
    Truncated(&'static str),
    #[error("unsupported video codec {0} (only H.264/AVC is accepted)")]
    UnsupportedVideoCodec(String),
    #[error("unsupported audio format {0} (only AAC is accepted)")]
    UnsupportedAudioFormat(u8),
}

/// A parsed video tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// AVCDecoderConfigurationRecord (`avcC`): SPS/PPS and the NAL length size.
    SequenceHeader(Bytes),
    /// One access unit of length-prefixed NAL units. `cts_ms` = pts - dts.
    Frame {
        keyframe: bool,
        cts_ms: i32,
        data: Bytes,
    },
    /// AVC end of sequence: nothing to decode.
    EndOfSequence,
    /// Video info/command frame (frame type 5): carries no picture.
    Command,
}

/// A parsed audio tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// AudioSpecificConfig.
    SequenceHeader(Bytes),
    /// One raw AAC frame.
    Frame(Bytes),
}

const VIDEO: &str = "video";
const AUDIO: &str = "audio";

/// Parses a legacy FLV video tag body. Enhanced RTMP (HEVC, AV1, VP9, multitrack) is refused
/// with a clear error rather than misread.
pub fn parse_video(data: &Bytes) -> Result<VideoTag, FlvError> {
    let first = *data.first().ok_or(FlvError::Empty(VIDEO))?;
    if first & 0x80 != 0 {
        // E-RTMP: IsExHeader set; the FourCC follows the first byte.
        let fourcc = data
            .get(1..5)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        return Err(FlvError::UnsupportedVideoCodec(format!(
            "enhanced-rtmp fourcc {fourcc:?}"
        )));
    }
    let frame_type = first >> 4;
    let codec_id = first & 0x0f;
    if frame_type == 5 {
        return Ok(VideoTag::Command);
    }
    if codec_id != 7 {
        let name = match codec_id {
            2 => "Sorenson H.263",
            3 => "screen video",
            4 => "VP6",
            5 => "VP6 alpha",
            6 => "screen video v2",
            12 => "HEVC (legacy id 12)",
            _ => "unknown",
        };
        return Err(FlvError::UnsupportedVideoCodec(format!(
            "{name} (codec id {codec_id})"
        )));
    }
    if data.len() < 5 {
        return Err(FlvError::Truncated(VIDEO));
    }
    let packet_type = data[1];
    // composition time: signed 24-bit big endian
    let raw = ((data[2] as u32) << 16) | ((data[3] as u32) << 8) | data[4] as u32;
    let cts_ms = ((raw << 8) as i32) >> 8;
    let payload = data.slice(5..);
    match packet_type {
        0 => {
            if payload.len() < 7 {
                return Err(FlvError::Truncated(VIDEO));
            }
            Ok(VideoTag::SequenceHeader(payload))
        }
        1 => Ok(VideoTag::Frame {
            keyframe: frame_type == 1,
            cts_ms,
            data: payload,
        }),
        2 => Ok(VideoTag::EndOfSequence),
        _ => Err(FlvError::Truncated(VIDEO)),
    }
}

/// Parses an FLV audio tag body; only AAC (sound format 10) is accepted.
pub fn parse_audio(data: &Bytes) -> Result<AudioTag, FlvError> {
    let first = *data.first().ok_or(FlvError::Empty(AUDIO))?;
    let format = first >> 4;
    if format != 10 {
        return Err(FlvError::UnsupportedAudioFormat(format));
    }
    if data.len() < 2 {
        return Err(FlvError::Truncated(AUDIO));
    }
    let payload = data.slice(2..);
    match data[1] {
        0 => {
            if payload.len() < 2 {
                return Err(FlvError::Truncated(AUDIO));
            }
            Ok(AudioTag::SequenceHeader(payload))
        }
        _ => Ok(AudioTag::Frame(payload)),
    }
}

/// Turns 32-bit RTMP millisecond timestamps into a monotonic-ish 64-bit timeline that
/// starts at 0 with the first tag, surviving the wrap after ~49.7 days.
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    first: i64,
    last: Option<u32>,
    extended: i64,
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps a raw RTMP timestamp to milliseconds since the first tag. Each step is taken as
    /// the signed 32-bit difference from the previous tag, so a wrap reads as a small step
    /// forwards and audio/video interleaving slightly out of order reads as a small step back.
    pub fn map(&mut self, raw: u32) -> i64 {
        match self.last {
            None => {
                self.first = raw as i64;
                self.extended = raw as i64;
            }
            Some(last) => self.extended += raw.wrapping_sub(last) as i32 as i64,
        }
        self.last = Some(raw);
        self.extended - self.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_frames_and_headers() {
        let sh = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0]);
        assert!(matches!(parse_video(&sh).unwrap(), VideoTag::SequenceHeader(b) if b[1] == 0x64));
        let key = Bytes::from_static(&[0x17, 1, 0, 0, 0x42, 0, 0, 0, 1, 0x65]);
        assert_eq!(
            parse_video(&key).unwrap(),
            VideoTag::Frame {
                keyframe: true,
                cts_ms: 0x42,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65])
            }
        );
        let inter_neg = Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xfe, 9]);
        assert!(matches!(
            parse_video(&inter_neg).unwrap(),
            VideoTag::Frame {
                keyframe: false,
                cts_ms: -2,
                ..
            }
        ));
    }

    #[test]
    fn unsupported_video_is_refused_clearly() {
        let hevc_ex = Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 0]);
        let err = parse_video(&hevc_ex).unwrap_err();
        assert!(err.to_string().contains("hvc1"), "{err}");
        let vp6 = Bytes::from_static(&[0x14, 0, 0]);
        assert!(matches!(
            parse_video(&vp6),
            Err(FlvError::UnsupportedVideoCodec(_))
        ));
        assert_eq!(parse_video(&Bytes::new()), Err(FlvError::Empty("video")));
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x17, 1])),
            Err(FlvError::Truncated("video"))
        );
    }

    #[test]
    fn aac_only() {
        let asc = Bytes::from_static(&[0xaf, 0, 0x11, 0x90]);
        assert_eq!(
            parse_audio(&asc).unwrap(),
            AudioTag::SequenceHeader(Bytes::from_static(&[0x11, 0x90]))
        );
        let frame = Bytes::from_static(&[0xaf, 1, 1, 2, 3]);
        assert_eq!(
            parse_audio(&frame).unwrap(),
            AudioTag::Frame(Bytes::from_static(&[1, 2, 3]))
        );
        let mp3 = Bytes::from_static(&[0x2f, 1, 2]);
        assert_eq!(parse_audio(&mp3), Err(FlvError::UnsupportedAudioFormat(2)));
    }

    #[test]
    fn timeline_starts_at_zero_and_survives_wrap() {
        let mut t = Timeline::new();
        assert_eq!(t.map(5000), 0);
        assert_eq!(t.map(5033), 33);
        let mut w = Timeline::new();
        assert_eq!(w.map(u32::MAX - 10), 0);
        assert_eq!(w.map(u32::MAX), 10);
        assert_eq!(w.map(5), 16);
        assert_eq!(w.map(40), 51);
    }
}
