//! Thin helpers over ffmpeg-next: codec contexts with extradata, the x264 encoder, and an
//! MPEG-TS segment muxer. Everything here runs on media threads, never in async code.

use std::path::Path;

use bytes::Bytes;
use ff::{codec, format, Dictionary, Packet, Rational};
use ffmpeg_next as ff;

/// Milliseconds: the time base of every packet and frame inside the pipeline.
pub const MS: Rational = Rational(1, 1000);

#[derive(Debug, thiserror::Error)]
pub enum AvError {
    #[error("{what}: {source}")]
    Ffmpeg {
        what: &'static str,
        source: ff::Error,
    },
    #[error("{0}")]
    Other(String),
    /// The source breaks a limit (e.g. larger than 4K): refused, not a fault.
    #[error("source refused: {0}")]
    Refused(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub(crate) trait Ctx<T> {
    fn ctx(self, what: &'static str) -> Result<T, AvError>;
}
impl<T> Ctx<T> for Result<T, ff::Error> {
    fn ctx(self, what: &'static str) -> Result<T, AvError> {
        self.map_err(|source| AvError::Ffmpeg { what, source })
    }
}

/// Initialises libav once and quiets its logging to errors.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        ff::init().expect("libav initialises");
        ff::util::log::set_level(ff::util::log::Level::Error);
    });
}

/// Copies `data` into the codec context's extradata (padded, owned by libav).
fn set_extradata(ctx: &mut codec::Context, data: &[u8]) {
    // Safety: `as_mut_ptr` is the live AVCodecContext owned by `ctx`; extradata is allocated
    // with av_mallocz including the padding libav requires and is freed by avcodec_free_context.
    // Any previous extradata is freed first so nothing leaks.
    unsafe {
        let raw = ctx.as_mut_ptr();
        if !(*raw).extradata.is_null() {
            ff::ffi::av_freep(&mut (*raw).extradata as *mut *mut u8 as *mut std::ffi::c_void);
        }
        let pad = ff::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
        let buf = ff::ffi::av_mallocz(data.len() + pad) as *mut u8;
        assert!(!buf.is_null(), "av_mallocz failed");
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        (*raw).extradata = buf;
        (*raw).extradata_size = data.len() as i32;
    }
}

/// An H.264 decoder for AVCC (length-prefixed) access units described by `avcc`.
pub fn open_h264_decoder(avcc: &[u8]) -> Result<ff::decoder::Video, AvError> {
    let codec = ff::decoder::find(codec::Id::H264)
        .ok_or_else(|| AvError::Other("no H.264 decoder".into()))?;
    let mut ctx = codec::Context::new_with_codec(codec);
    set_extradata(&mut ctx, avcc);
    // Safety: setting plain fields on the not-yet-opened context we own.
    unsafe {
        (*ctx.as_mut_ptr()).pkt_timebase = MS.into();
        (*ctx.as_mut_ptr()).thread_count = 1;
    }
    ctx.decoder().video().ctx("opening the H.264 decoder")
}

/// Stream parameters for AAC copied from the source, described by its AudioSpecificConfig.
pub fn aac_parameters(asc: &[u8]) -> Result<codec::Parameters, AvError> {
    let codec =
        ff::decoder::find(codec::Id::AAC).ok_or_else(|| AvError::Other("no AAC decoder".into()))?;
    let mut ctx = codec::Context::new_with_codec(codec);
    set_extradata(&mut ctx, asc);
    let dec = ctx
        .decoder()
        .audio()
        .ctx("reading the AAC AudioSpecificConfig")?;
    let mut params = codec::Parameters::from(&dec);
    let (rate, channels) = crate::codecs::asc_sample_rate_channels(asc)
        .ok_or_else(|| AvError::Other("unreadable AAC AudioSpecificConfig".into()))?;
    // Safety: plain fields of parameters we own; av_channel_layout_default only writes the
    // layout struct it is given.
    unsafe {
        let p = params.as_mut_ptr();
        if (*p).sample_rate <= 0 {
            (*p).sample_rate = rate as i32;
        }
        if (*p).ch_layout.nb_channels <= 0 {
            ff::ffi::av_channel_layout_default(&mut (*p).ch_layout, channels.max(1) as i32);
        }
        if (*p).frame_size <= 0 {
            (*p).frame_size = 1024;
        }
    }
    Ok(params)
}

/// x264 settings for one rung.
#[derive(Debug, Clone)]
pub struct X264Settings {
    pub width: u32,
    pub height: u32,
    pub kbps: u32,
    pub frame_rate: Rational,
    /// Maximum frames between keyframes (a safety net; segment cuts are forced).
    pub keyint: u32,
    pub preset: String,
    pub tune: Option<String>,
    pub threads: u32,
}

pub fn open_x264(s: &X264Settings) -> Result<ff::encoder::Video, AvError> {
    let codec = ff::encoder::find_by_name("libx264")
        .ok_or_else(|| AvError::Other("libx264 is not available in this FFmpeg build".into()))?;
    let mut enc = codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .ctx("creating the x264 encoder")?;
    enc.set_width(s.width);
    enc.set_height(s.height);
    enc.set_format(ff::format::Pixel::YUV420P);
    enc.set_time_base(MS);
    enc.set_frame_rate(Some(s.frame_rate));
    enc.set_bit_rate(s.kbps as usize * 1000);
    enc.set_max_bit_rate(s.kbps as usize * 1200);
    enc.set_gop(s.keyint);
    // Safety: plain fields of the encoder context we own, before it is opened.
    unsafe {
        (*enc.as_mut_ptr()).rc_buffer_size = (s.kbps * 2000) as i32;
    }
    let mut opts = Dictionary::new();
    opts.set("preset", &s.preset);
    if let Some(t) = &s.tune {
        opts.set("tune", t);
    }
    opts.set("forced-idr", "1");
    opts.set("threads", &s.threads.to_string());
    opts.set(
        "x264-params",
        &format!("scenecut=0:open-gop=0:min-keyint={}", s.keyint),
    );
    enc.open_with(opts).ctx("opening libx264")
}

/// Writes one MPEG-TS segment holding `video` and `audio` (packets in ms). Returns its size.
pub fn write_ts_segment(
    path: &Path,
    video_params: &codec::Parameters,
    audio_params: Option<&codec::Parameters>,
    video: Vec<Packet>,
    audio: Vec<Packet>,
) -> Result<u64, AvError> {
    let octx = format::output_as(path, "mpegts").ctx("creating the MPEG-TS muxer")?;
    mux(
        octx,
        Dictionary::new(),
        video_params,
        None,
        audio_params,
        video,
        audio,
    )?;
    Ok(std::fs::metadata(path)?.len())
}

/// One fragmented-MP4 (CMAF) segment: the initialization section (`ftyp` + `moov`, the
/// same for every segment of a rung while its codec parameters stay) and the media (`moof`
/// + `mdat`, with decode times that continue the stream's: `tfdt` is the first packet's).
#[derive(Debug, Clone, PartialEq)]
pub struct Fmp4Segment {
    pub init: Vec<u8>,
    pub media: Vec<u8>,
}

/// Writes `video` and `audio` (packets in ms) as one CMAF fragment through libavformat's MP4
/// muxer (a scratch file at `scratch`, removed), split into its init and media sections.
pub fn fmp4_segment(
    scratch: &Path,
    video_params: &codec::Parameters,
    audio_params: Option<&codec::Parameters>,
    video: Vec<Packet>,
    audio: Vec<Packet>,
) -> Result<Fmp4Segment, AvError> {
    fmp4_fragment(scratch, video_params, audio_params, None, video, audio)
}

/// [`fmp4_segment`] for packets that may hold no keyframe (a low-latency part): the H.264
/// parameter sets (Annex B) for the init section's avcC, when the stream's parameters have
/// none, come from `parameter_sets` or else from a keyframe among the packets.
pub fn fmp4_fragment(
    scratch: &Path,
    video_params: &codec::Parameters,
    audio_params: Option<&codec::Parameters>,
    parameter_sets: Option<&[u8]>,
    video: Vec<Packet>,
    audio: Vec<Packet>,
) -> Result<Fmp4Segment, AvError> {
    let octx = format::output_as(scratch, "mp4").ctx("creating the MP4 muxer")?;
    let mut opts = Dictionary::new();
    // an empty moov first, one fragment for everything, decode times kept as they are
    // (frag_discont: tfdt is the first packet's time, not 0), no index or trailer boxes
    opts.set(
        "movflags",
        "+empty_moov+default_base_moof+frag_custom+frag_discont+skip_sidx+skip_trailer",
    );
    opts.set("use_editlist", "0");
    opts.set("avoid_negative_ts", "disabled");
    // x264 without a global header (what MPEG-TS wants) repeats SPS/PPS in every keyframe and
    // leaves extradata empty; MP4 needs them in its avcC (the muxer then also rewrites the
    // Annex B packets as length-prefixed)
    let sets = if extradata_len(video_params) == 0 {
        parameter_sets.map(<[u8]>::to_vec).or_else(|| {
            video
                .iter()
                .find(|p| p.is_key())
                .and_then(|p| p.data())
                .and_then(annexb_parameter_sets)
        })
    } else {
        None
    };
    let written = mux(
        octx,
        opts,
        video_params,
        sets.as_deref(),
        audio_params,
        video,
        audio,
    )
    .and_then(|()| Ok(std::fs::read(scratch)?));
    let _ = std::fs::remove_file(scratch);
    let bytes = written?;
    let (init, media) = split_fmp4(&bytes)
        .ok_or_else(|| AvError::Other("the MP4 muxer wrote no moov/moof".into()))?;
    Ok(Fmp4Segment {
        init: init.to_vec(),
        media: media.to_vec(),
    })
}

/// Splits a fragmented MP4 at its first `moof` (or `styp`): what comes before is the init
/// section. None unless both parts are there and every box is whole.
pub fn split_fmp4(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut at = 0usize;
    let mut saw_moov = false;
    let mut split = None;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().ok()?) as usize;
        let kind = &bytes[at + 4..at + 8];
        let size = match size {
            1 if at + 16 <= bytes.len() => {
                u64::from_be_bytes(bytes[at + 8..at + 16].try_into().ok()?) as usize
            }
            0 => bytes.len() - at,
            n => n,
        };
        if size < 8 || at + size > bytes.len() {
            return None;
        }
        match kind {
            b"moov" => saw_moov = true,
            b"moof" | b"styp" if saw_moov && split.is_none() => split = Some(at),
            _ => {}
        }
        at += size;
    }
    // every box whole, to the last byte
    let split = split.filter(|_| at == bytes.len())?;
    Some((&bytes[..split], &bytes[split..]))
}

/// Numbers the fragments of `media` (each `moof`'s `mfhd` sequence number) from `first` on:
/// fragments muxed one call at a time all start at 1, and a segment made of several of them
/// needs increasing numbers (ISO/IEC 14496-12 8.8.5). Returns the next number.
pub fn renumber_fragments(media: &mut [u8], first: u32) -> u32 {
    let mut next = first;
    let mut at = 0usize;
    while at + 8 <= media.len() {
        let size = u32::from_be_bytes(media[at..at + 4].try_into().expect("4 bytes")) as usize;
        if size < 8 || at + size > media.len() {
            break;
        }
        if &media[at + 4..at + 8] == b"moof" {
            // mfhd: the moof's first child; size, type, version+flags, then the number
            let child = at + 8;
            if child + 16 <= at + size && &media[child + 4..child + 8] == b"mfhd" {
                media[child + 12..child + 16].copy_from_slice(&next.to_be_bytes());
                next = next.wrapping_add(1);
            }
        }
        at += size;
    }
    next
}

fn extradata_len(params: &codec::Parameters) -> i32 {
    // Safety: reading a plain field of parameters we hold a reference to.
    unsafe { (*params.as_ptr()).extradata_size }
}

/// The SPS and PPS NAL units of an Annex B access unit, with their start codes: H.264
/// extradata in the form libavformat's MP4 muxer turns into an avcC.
pub fn annexb_parameter_sets(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    let mut starts = Vec::new();
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    for (n, &start) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |next| next - 3);
        // a four-byte start code leaves a zero behind the NAL before it
        while end > start && data[end - 1] == 0 && starts.get(n + 1).is_some() {
            end -= 1;
        }
        if start >= end {
            continue;
        }
        if matches!(data[start] & 0x1f, 7 | 8) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&data[start..end]);
        }
    }
    (!out.is_empty()).then_some(out)
}

fn mux(
    mut octx: format::context::Output,
    options: Dictionary,
    video_params: &codec::Parameters,
    video_extradata: Option<&[u8]>,
    audio_params: Option<&codec::Parameters>,
    video: Vec<Packet>,
    audio: Vec<Packet>,
) -> Result<(), AvError> {
    let add = |octx: &mut format::context::Output,
               params: &codec::Parameters|
     -> Result<usize, AvError> {
        let mut st = octx
            .add_stream(ff::encoder::find(codec::Id::None))
            .ctx("adding a stream")?;
        st.set_parameters(params.clone());
        // Safety: the stream's codecpar belongs to the muxer; clearing codec_tag lets the
        // muxer choose its own tag for the codec.
        unsafe {
            (*st.parameters().as_mut_ptr()).codec_tag = 0;
        }
        // ms in, so the muxer's own time base (and MP4 timescale) derives from it
        st.set_time_base(MS);
        Ok(st.index())
    };
    let vi = add(&mut octx, video_params)?;
    if let (Some(data), Some(mut st)) = (video_extradata, octx.stream_mut(vi)) {
        // Safety: the stream's codecpar belongs to the muxer and frees its extradata; the
        // buffer is allocated with the padding libav requires, any previous one freed first.
        unsafe {
            let par = st.parameters().as_mut_ptr();
            if !(*par).extradata.is_null() {
                ff::ffi::av_freep(&mut (*par).extradata as *mut *mut u8 as *mut std::ffi::c_void);
            }
            let pad = ff::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
            let buf = ff::ffi::av_mallocz(data.len() + pad) as *mut u8;
            if buf.is_null() {
                return Err(AvError::Other("out of memory for extradata".into()));
            }
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
            (*par).extradata = buf;
            (*par).extradata_size = data.len() as i32;
        }
        let _ = &mut st;
    }
    let ai = match audio_params {
        Some(p) => Some(add(&mut octx, p)?),
        None => None,
    };
    octx.write_header_with(options)
        .ctx("writing the segment header")?;
    let vtb = octx
        .stream(vi)
        .map(|s| s.time_base())
        .unwrap_or(Rational(1, 90000));
    let atb = ai
        .and_then(|i| octx.stream(i))
        .map(|s| s.time_base())
        .unwrap_or(Rational(1, 90000));
    let mut all: Vec<(i64, usize, Packet)> = Vec::with_capacity(video.len() + audio.len());
    for p in video {
        all.push((p.dts().or(p.pts()).unwrap_or(0), vi, p));
    }
    if let Some(ai) = ai {
        for p in audio {
            all.push((p.dts().or(p.pts()).unwrap_or(0), ai, p));
        }
    }
    all.sort_by_key(|(dts, idx, _)| (*dts, *idx));
    for (_, idx, mut p) in all {
        p.set_stream(idx);
        p.set_position(-1);
        p.rescale_ts(MS, if idx == vi { vtb } else { atb });
        p.write_interleaved(&mut octx).ctx("writing a packet")?;
    }
    octx.write_trailer().ctx("finishing the segment")?;
    Ok(())
}

/// A packet in milliseconds holding a copy of `data`.
pub fn packet(data: &Bytes, pts: i64, dts: i64, key: bool) -> Packet {
    let mut p = Packet::copy(data);
    p.set_pts(Some(pts));
    p.set_dts(Some(dts));
    if key {
        p.set_flags(ff::packet::Flags::KEY);
    }
    p
}

/// A new reference to the same picture buffers (no pixel copy).
pub fn frame_ref(src: &ff::frame::Video) -> ff::frame::Video {
    let mut f = ff::frame::Video::empty();
    // Safety: both pointers are valid AVFrames; av_frame_ref adds a reference to the
    // refcounted buffers of `src` (decoder output is always refcounted) and copies its
    // properties. The buffers are only read afterwards (scaled or encoded), never written,
    // so sharing them across threads is sound.
    let r = unsafe { ff::ffi::av_frame_ref(f.as_mut_ptr(), src.as_ptr()) };
    assert!(r >= 0, "av_frame_ref failed: {r}");
    f
}

#[cfg(test)]
mod fmp4_tests {
    use super::*;

    #[test]
    fn parameter_sets_are_taken_from_an_annexb_keyframe() {
        let unit = [
            &[0, 0, 0, 1, 0x09, 0xf0][..],
            &[0, 0, 0, 1, 0x67, 1, 2, 3],
            &[0, 0, 1, 0x68, 4, 5],
            &[0, 0, 0, 1, 0x65, 9, 9],
        ]
        .concat();
        assert_eq!(
            annexb_parameter_sets(&unit).unwrap(),
            [0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 0, 1, 0x68, 4, 5]
        );
        assert_eq!(annexb_parameter_sets(&[0, 0, 0, 1, 0x65, 1]), None);
        assert_eq!(annexb_parameter_sets(&[]), None);
    }

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn fragments_are_numbered_in_order() {
        let mfhd = |n: u32| mp4_box(b"mfhd", &[&[0, 0, 0, 0][..], &n.to_be_bytes()].concat());
        let frag = |n: u32| {
            [
                mp4_box(b"moof", &[mfhd(n), mp4_box(b"traf", &[5; 6])].concat()),
                mp4_box(b"mdat", &[2; 9]),
            ]
            .concat()
        };
        let mut media = [frag(1), frag(1)].concat();
        assert_eq!(renumber_fragments(&mut media, 7), 9);
        assert_eq!(media, [frag(7), frag(8)].concat());
        // a truncated box stops the walk; nothing past it is touched
        let mut cut = frag(1)[..20].to_vec();
        let before = cut.clone();
        assert_eq!(renumber_fragments(&mut cut, 3), 3);
        assert_eq!(cut, before);
    }

    #[test]
    fn a_fragment_splits_at_its_first_moof() {
        let init = [mp4_box(b"ftyp", b"iso5"), mp4_box(b"moov", &[7; 3])].concat();
        let media = [mp4_box(b"moof", &[1; 4]), mp4_box(b"mdat", &[2; 9])].concat();
        let all = [init.clone(), media.clone()].concat();
        assert_eq!(split_fmp4(&all), Some((&init[..], &media[..])));
        // no moov, a truncated box, or no fragment: not a CMAF segment
        assert_eq!(split_fmp4(&media), None);
        assert_eq!(split_fmp4(&all[..all.len() - 1]), None);
        assert_eq!(split_fmp4(&init), None);
    }
}
