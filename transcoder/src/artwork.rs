//! Pictures of a video file: a poster (a representative frame, never a black one when the
//! video has anything else) and a storyboard (one thumbnail every `interval_secs`, packed into
//! JPEG sprite sheets, with a WebVTT track whose cues point at `sheet#xywh=x,y,w,h`). Players
//! show the poster before play and the storyboard while scrubbing. Blocking (libav): run it on
//! a blocking thread.

use std::path::Path;

use ff::format::Pixel;
use ff::{codec, media, Rational};
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::av::{self, AvError, Ctx};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ArtworkConfig {
    /// Seconds between storyboard thumbnails (one cue each).
    pub interval_secs: f64,
    /// Width of one thumbnail; the height follows the picture's shape.
    pub thumb_width: u32,
    /// Thumbnails per sprite sheet, across and down.
    pub columns: u32,
    pub rows: u32,
    /// The poster's height at most (never upscaled).
    pub poster_height: u32,
    /// JPEG quantiser, 2 (best) to 31.
    pub jpeg_quality: u32,
}

impl Default for ArtworkConfig {
    fn default() -> Self {
        Self {
            interval_secs: 5.0,
            thumb_width: 160,
            columns: 10,
            rows: 10,
            poster_height: 720,
            jpeg_quality: 4,
        }
    }
}

/// What [`make`] returns: JPEG bytes and the WebVTT text.
#[derive(Debug, Clone)]
pub struct Artwork {
    pub poster: Vec<u8>,
    pub poster_size: (u32, u32),
    /// Sprite sheets in order; the VTT names them with the `sheet_name` given to [`make`].
    pub sheets: Vec<Vec<u8>>,
    pub thumb_size: (u32, u32),
    pub vtt: String,
    pub cues: usize,
}

/// Number of storyboard cues for a video of `duration_secs`.
pub fn cue_count(duration_secs: f64, interval_secs: f64) -> usize {
    if duration_secs <= 0.0 || interval_secs <= 0.0 {
        return 1;
    }
    ((duration_secs / interval_secs).ceil() as usize).max(1)
}

fn even(v: f64) -> u32 {
    ((v / 2.0).round() as u32 * 2).max(2)
}

fn vtt_time(secs: f64) -> String {
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// How good a thumbnail is as a poster: the spread of its brightness, with dark, washed-out
/// and flat pictures (fades, slates, black frames) ranked last.
fn poster_score(f: &ff::frame::Video) -> f64 {
    let (w, h) = (f.width() as usize, f.height() as usize);
    let stride = f.stride(0);
    let y = f.data(0);
    let (mut sum, mut sq, mut n) = (0f64, 0f64, 0f64);
    for row in 0..h {
        for &v in &y[row * stride..row * stride + w] {
            let v = f64::from(v);
            sum += v;
            sq += v * v;
            n += 1.0;
        }
    }
    if n == 0.0 {
        return f64::MIN;
    }
    let mean = sum / n;
    let sd = (sq / n - mean * mean).max(0.0).sqrt();
    let exposure = if (40.0..=215.0).contains(&mean) {
        0.0
    } else {
        100.0
    };
    sd - exposure
}

fn jpeg(frame: &ff::frame::Video, quality: u32) -> Result<Vec<u8>, AvError> {
    let codec = ff::encoder::find(codec::Id::MJPEG)
        .ok_or_else(|| AvError::Other("no JPEG encoder in this FFmpeg build".into()))?;
    let mut enc = codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .ctx("creating the JPEG encoder")?;
    enc.set_width(frame.width());
    enc.set_height(frame.height());
    enc.set_format(Pixel::YUVJ420P);
    enc.set_time_base(Rational(1, 25));
    let q = quality.clamp(2, 31) as i32;
    // Safety: plain fields of the encoder context we own, before it is opened.
    unsafe {
        let c = enc.as_mut_ptr();
        (*c).flags |= ff::ffi::AV_CODEC_FLAG_QSCALE as i32;
        (*c).global_quality = q * ff::ffi::FF_QP2LAMBDA;
    }
    let mut enc = enc
        .open_with(ff::Dictionary::new())
        .ctx("opening the JPEG encoder")?;
    let mut f = av::frame_ref(frame);
    f.set_pts(Some(0));
    // Safety: `quality` is a plain field of the frame we own; the encoder reads it with QSCALE.
    unsafe {
        (*f.as_mut_ptr()).quality = q * ff::ffi::FF_QP2LAMBDA;
    }
    enc.send_frame(&f).ctx("encoding a JPEG")?;
    enc.send_eof().ctx("finishing a JPEG")?;
    let mut out = Vec::new();
    let mut p = ff::Packet::empty();
    while enc.receive_packet(&mut p).is_ok() {
        if let Some(d) = p.data() {
            out.extend_from_slice(d);
        }
    }
    if out.is_empty() {
        return Err(AvError::Other("the JPEG encoder wrote nothing".into()));
    }
    Ok(out)
}

/// Copies `thumb` (YUVJ420P, even size) into `sheet` at thumbnail cell (`col`, `row`).
fn paste(sheet: &mut ff::frame::Video, thumb: &ff::frame::Video, col: u32, row: u32) {
    let (tw, th) = (thumb.width() as usize, thumb.height() as usize);
    for plane in 0..3 {
        let (div, x0, y0) = if plane == 0 {
            (1, col as usize * tw, row as usize * th)
        } else {
            (2, col as usize * tw / 2, row as usize * th / 2)
        };
        let (w, h) = (tw / div, th / div);
        let (ss, ts) = (sheet.stride(plane), thumb.stride(plane));
        for y in 0..h {
            let src = thumb.data(plane)[y * ts..y * ts + w].to_vec();
            let at = (y0 + y) * ss + x0;
            sheet.data_mut(plane)[at..at + w].copy_from_slice(&src);
        }
    }
}

/// A frame of `w`x`h` in `fmt` painted black (limited or full range alike: Y=16, U=V=128).
fn black(fmt: Pixel, w: u32, h: u32) -> ff::frame::Video {
    let mut f = ff::frame::Video::new(fmt, w, h);
    for (plane, v) in [(0, 0u8), (1, 128), (2, 128)] {
        f.data_mut(plane).fill(v);
    }
    f
}

/// Decodes the frames of `path` at every storyboard time and returns the poster, sheets and
/// track. `sheet_name(i)` is how the VTT names sheet `i` (relative to the VTT's own URL).
pub fn make(
    path: &Path,
    duration_secs: f64,
    cfg: &ArtworkConfig,
    sheet_name: impl Fn(usize) -> String,
) -> Result<Artwork, AvError> {
    av::init();
    let mut ictx = ff::format::input(&path).ctx("opening the file for pictures")?;
    let stream = ictx
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| AvError::Refused("the file has no video".into()))?;
    let (vi, tb) = (stream.index(), stream.time_base());
    // times are counted from the video's first timestamp (an MPEG-TS recording starts where
    // its broadcast's clock was, an MP4 usually at 0)
    let first = stream.start_time();
    let t0 = if first == ff::ffi::AV_NOPTS_VALUE {
        0.0
    } else {
        first as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator())
    };
    let mut ctx =
        codec::Context::from_parameters(stream.parameters()).ctx("reading video parameters")?;
    // Safety: a plain field of the context we own, before it is opened.
    unsafe {
        (*ctx.as_mut_ptr()).thread_count = 2;
    }
    let mut dec = ctx.decoder().video().ctx("opening the video decoder")?;
    let (w, h) = (dec.width(), dec.height());
    if w == 0 || h == 0 {
        return Err(AvError::Refused("the video has no picture size".into()));
    }
    let interval = if cfg.interval_secs > 0.0 {
        cfg.interval_secs
    } else {
        5.0
    };
    let cues = cue_count(duration_secs, interval);
    let tw = even(f64::from(cfg.thumb_width.max(16)));
    let th = even(f64::from(tw) * f64::from(h) / f64::from(w));
    let ph = cfg.poster_height.max(16).min(h);
    let ph = even(f64::from(ph));
    let pw = even(f64::from(ph) * f64::from(w) / f64::from(h));
    let (cols, rows) = (cfg.columns.max(1), cfg.rows.max(1));
    let per_sheet = (cols * rows) as usize;

    type Scaler = Option<((Pixel, u32, u32), ff::software::scaling::Context)>;
    let mut to_thumb: Scaler = None;
    let mut to_poster: Scaler = None;
    let scaler = |slot: &mut Scaler,
                  src: &ff::frame::Video,
                  dw: u32,
                  dh: u32|
     -> Result<ff::frame::Video, AvError> {
        // a new scaler when the source's picture changes (format or size mid-stream)
        let shape = (src.format(), src.width(), src.height());
        if slot.as_ref().map(|(s, _)| *s) != Some(shape) {
            let sws = ff::software::scaling::Context::get(
                src.format(),
                src.width(),
                src.height(),
                Pixel::YUVJ420P,
                dw,
                dh,
                ff::software::scaling::Flags::BICUBIC,
            )
            .ctx("creating a scaler")?;
            *slot = Some((shape, sws));
        }
        let mut out = ff::frame::Video::empty();
        let (_, sws) = slot.as_mut().expect("just set");
        sws.run(src, &mut out).ctx("scaling a picture")?;
        Ok(out)
    };

    let secs = |ts: i64| ts as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator()) - t0;
    let mut sheets = Vec::new();
    let mut sheet = black(Pixel::YUVJ420P, tw * cols, th * rows);
    let mut best: Option<(f64, ff::frame::Video)> = None;
    let mut last: Option<ff::frame::Video> = None;
    let mut pos = f64::NEG_INFINITY; // time of the last decoded frame
    let mut vtt = String::from("WEBVTT\n\n");
    let mut frame = ff::frame::Video::empty();
    let mut eof = false;
    for i in 0..cues {
        let start = i as f64 * interval;
        // a frame a little into each window: the very first frame is often black
        let target = if i == 0 {
            (interval / 2.0).min(duration_secs / 2.0).min(1.0)
        } else {
            start
        };
        // from the start, decoding forwards is the way (and seeking a single MPEG-TS segment
        // that starts far from 0 can land past its end)
        let from = if pos.is_finite() { pos } else { 0.0 };
        if target < from || target - from > 10.0 {
            let ts = ((target + t0) * f64::from(ff::ffi::AV_TIME_BASE)) as i64;
            // backwards to the keyframe at or before `target`, then decode forwards
            if ictx.seek(ts, ..ts).is_ok() {
                dec.flush();
                eof = false;
            }
        }
        let mut got: Option<ff::frame::Video> = None;
        'decode: while !eof {
            match ictx.packets().next() {
                Some((s, packet)) => {
                    if s.index() != vi {
                        continue;
                    }
                    // a damaged packet is dropped (the next keyframe recovers); the frames
                    // already decoded are taken below either way
                    let _ = dec.send_packet(&packet);
                }
                None => {
                    let _ = dec.send_eof();
                    eof = true;
                }
            }
            while dec.receive_frame(&mut frame).is_ok() {
                let t = frame.timestamp().map(secs).unwrap_or(pos.max(0.0));
                pos = t;
                let f = av::frame_ref(&frame);
                if t + 0.001 >= target {
                    got = Some(f);
                    break 'decode;
                }
                last = Some(f);
            }
        }
        let Some(picture) = got.or_else(|| last.take()) else {
            if i == 0 {
                return Err(AvError::Refused(
                    "no picture could be decoded from the file".into(),
                ));
            }
            break; // the file ends before its stated duration: fewer cues
        };
        let thumb = scaler(&mut to_thumb, &picture, tw, th)?;
        let score = poster_score(&thumb);
        if best.as_ref().is_none_or(|(s, _)| score > *s + 1.0) {
            best = Some((score, scaler(&mut to_poster, &picture, pw, ph)?));
        }
        last = Some(picture);
        let cell = i % per_sheet;
        let (col, row) = (cell as u32 % cols, cell as u32 / cols);
        paste(&mut sheet, &thumb, col, row);
        let end = if i + 1 == cues {
            duration_secs.max(start + 0.001)
        } else {
            start + interval
        };
        vtt.push_str(&format!(
            "{} --> {}\n{}#xywh={},{},{},{}\n\n",
            vtt_time(start),
            vtt_time(end),
            sheet_name(sheets.len()),
            col * tw,
            row * th,
            tw,
            th
        ));
        if cell + 1 == per_sheet {
            sheets.push(jpeg(&sheet, cfg.jpeg_quality)?);
            sheet = black(Pixel::YUVJ420P, tw * cols, th * rows);
        }
    }
    let written = vtt.matches("#xywh=").count();
    if written % per_sheet != 0 {
        // the last sheet keeps its full size: cues address cells, so the layout never moves
        sheets.push(jpeg(&sheet, cfg.jpeg_quality)?);
    }
    let (_, poster) =
        best.ok_or_else(|| AvError::Refused("no picture could be decoded from the file".into()))?;
    Ok(Artwork {
        poster: jpeg(&poster, cfg.jpeg_quality)?,
        poster_size: (pw, ph),
        sheets,
        thumb_size: (tw, th),
        vtt,
        cues: written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cue_times_and_counts() {
        assert_eq!(vtt_time(0.0), "00:00:00.000");
        assert_eq!(vtt_time(3725.5), "01:02:05.500");
        assert_eq!(cue_count(30.0, 5.0), 6);
        assert_eq!(cue_count(30.1, 5.0), 7);
        assert_eq!(cue_count(0.0, 5.0), 1);
        assert_eq!(even(91.3), 92);
        assert_eq!(even(0.2), 2);
    }
}
