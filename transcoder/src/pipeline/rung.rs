//! A rung's thread: scales each picture to the rung's size and encodes it with libx264
//! (keyframes where the decode thread forces them), or copies the source's packets
//! (passthrough); either way its packets go to the rung's segmenter.

use std::sync::mpsc::Receiver;

use ff::{codec, software::scaling, Packet, Rational};
use ffmpeg_next as ff;

use super::segmenter::Segmenter;
use super::RungMsg;
use crate::av::{self, AvError, X264Settings};
use crate::ladder::RungDesc;
use crate::LiveConfig;

pub(super) fn rung_thread(
    plan: RungDesc,
    cfg: std::sync::Arc<LiveConfig>,
    fps: f64,
    mut seg: Segmenter,
    rx: Receiver<RungMsg>,
) -> Result<(), AvError> {
    let mut encoder: Option<ff::encoder::Video> = None;
    let mut scaler: Option<(ff::format::Pixel, u32, u32, scaling::Context)> = None;
    let fps_rational = Rational(((fps * 1000.0).round() as i32).max(1000), 1000);
    let segment_frames = ((cfg.segment_secs * fps).ceil() as u32).max(1);
    let drain = |enc: &mut ff::encoder::Video, seg: &mut Segmenter| -> Result<(), AvError> {
        loop {
            let mut pkt = Packet::empty();
            if enc.receive_packet(&mut pkt).is_err() {
                return Ok(());
            }
            seg.video(pkt)?;
        }
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            RungMsg::AudioParams(p, c) => {
                seg.audio_params = Some(p);
                seg.audio_codec = Some(c);
            }
            RungMsg::Audio(p) => seg.audio(p),
            RungMsg::VideoParams(p, name) => {
                seg.video_params = Some(p);
                if name.is_some() {
                    seg.video_codec = name;
                }
            }
            RungMsg::Packet(p) => seg.video(p)?,
            RungMsg::Frame { frame, force_key } => {
                let needs_scale = frame.width() != plan.width
                    || frame.height() != plan.height
                    || frame.format() != ff::format::Pixel::YUV420P;
                let mut picture = if needs_scale {
                    let stale = scaler.as_ref().is_none_or(|(f, w, h, _)| {
                        (*f, *w, *h) != (frame.format(), frame.width(), frame.height())
                    });
                    if stale {
                        let ctx = scaling::Context::get(
                            frame.format(),
                            frame.width(),
                            frame.height(),
                            ff::format::Pixel::YUV420P,
                            plan.width,
                            plan.height,
                            scaling::Flags::BILINEAR,
                        )
                        .map_err(|source| AvError::Ffmpeg {
                            what: "creating the scaler",
                            source,
                        })?;
                        scaler = Some((frame.format(), frame.width(), frame.height(), ctx));
                    }
                    let (_, _, _, ctx) = scaler.as_mut().expect("scaler was just created");
                    let mut out =
                        ff::frame::Video::new(ff::format::Pixel::YUV420P, plan.width, plan.height);
                    ctx.run(&frame, &mut out)
                        .map_err(|source| AvError::Ffmpeg {
                            what: "scaling",
                            source,
                        })?;
                    out.set_pts(frame.pts());
                    out
                } else {
                    frame
                };
                if encoder.is_none() {
                    if plan.passthrough {
                        continue;
                    }
                    let video_kbps = plan.video_kbps;
                    let enc = av::open_x264(&X264Settings {
                        width: plan.width,
                        height: plan.height,
                        kbps: video_kbps,
                        frame_rate: fps_rational,
                        keyint: segment_frames * 2,
                        preset: cfg.x264_preset.clone(),
                        tune: cfg.x264_tune.clone().filter(|t| !t.is_empty()),
                        threads: cfg.x264_threads,
                    })?;
                    seg.video_params = Some(codec::Parameters::from(&enc));
                    encoder = Some(enc);
                }
                let enc = encoder.as_mut().expect("encoder was just opened");
                picture.set_kind(if force_key {
                    ff::picture::Type::I
                } else {
                    ff::picture::Type::None
                });
                enc.send_frame(&picture).map_err(|source| AvError::Ffmpeg {
                    what: "encoding",
                    source,
                })?;
                drain(enc, &mut seg)?;
            }
        }
    }
    if let Some(enc) = encoder.as_mut() {
        let _ = enc.send_eof();
        drain(enc, &mut seg)?;
    }
    seg.finish()
}
