//! Files as input: an uploaded MP4/MOV/MKV/FLV with H.264 video (and AAC audio) is read with
//! libavformat and fed through the same pipeline as a live stream, as fast as the CPU allows.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ff::{codec, media, Rational};
use ffmpeg_next as ff;
use storage::DynStore;

use crate::av::{self, AvError, Ctx};
use crate::{LiveConfig, LiveStream, LiveSummary, MediaInput, TranscodeError};

fn extradata(params: &codec::Parameters) -> Bytes {
    // Safety: reading the extradata pointer/size of parameters owned by the open input;
    // the bytes are copied before the input is closed.
    unsafe {
        let p = params.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            return Bytes::new();
        }
        Bytes::copy_from_slice(std::slice::from_raw_parts(
            (*p).extradata,
            (*p).extradata_size as usize,
        ))
    }
}

/// Reads `path` and sends every packet to `tx`. Blocking: call it from a blocking thread.
pub fn feed(path: &Path, tx: &std::sync::mpsc::SyncSender<MediaInput>) -> Result<(), AvError> {
    feed_counting(path, tx, &AtomicI64::new(0))
}

/// [`feed`], storing in `fed_ms` the decode time of the last video packet handed over (the
/// pipeline's queue is bounded, so this follows the encoders closely).
pub fn feed_counting(
    path: &Path,
    tx: &std::sync::mpsc::SyncSender<MediaInput>,
    fed_ms: &AtomicI64,
) -> Result<(), AvError> {
    av::init();
    let mut ictx = ff::format::input(&path).ctx("opening the input file")?;
    let video = ictx
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| AvError::Other("the file has no video stream".into()))?;
    if video.parameters().id() != codec::Id::H264 {
        return Err(AvError::Other(format!(
            "unsupported video codec {:?}: only H.264 is accepted",
            video.parameters().id()
        )));
    }
    let avcc = extradata(&video.parameters());
    if avcc.first() != Some(&1) {
        return Err(AvError::Other(
            "the H.264 stream has no avcC configuration (use MP4, MOV, MKV or FLV)".into(),
        ));
    }
    let (vi, vtb) = (video.index(), video.time_base());
    let fr = video.avg_frame_rate();
    let frame_rate = (fr.denominator() != 0 && fr.numerator() > 0).then(|| f64::from(fr));
    let audio = ictx
        .streams()
        .best(media::Type::Audio)
        .filter(|a| a.parameters().id() == codec::Id::AAC)
        .map(|a| (a.index(), a.time_base(), extradata(&a.parameters())));
    let send = |m: MediaInput| {
        tx.send(m)
            .map_err(|_| AvError::Other("the pipeline stopped".into()))
    };
    send(MediaInput::SourceInfo { frame_rate })?;
    send(MediaInput::VideoConfig(avcc))?;
    if let Some((_, _, asc)) = &audio {
        send(MediaInput::AudioConfig(asc.clone()))?;
    }
    let to_ms = |ts: i64, tb: Rational| -> i64 {
        ts.saturating_mul(1000) * tb.numerator() as i64 / tb.denominator().max(1) as i64
    };
    for (stream, packet) in ictx.packets() {
        let Some(data) = packet.data() else { continue };
        let data = Bytes::copy_from_slice(data);
        if stream.index() == vi {
            let dts = packet.dts().or(packet.pts()).unwrap_or(0);
            let pts = packet.pts().unwrap_or(dts);
            let dts_ms = to_ms(dts, vtb);
            fed_ms.store(dts_ms, Ordering::Relaxed);
            send(MediaInput::Video {
                dts_ms,
                cts_ms: (to_ms(pts, vtb) - dts_ms) as i32,
                keyframe: packet.is_key(),
                data,
            })?;
        } else if let Some((ai, atb, _)) = &audio {
            if stream.index() == *ai {
                send(MediaInput::Audio {
                    pts_ms: to_ms(packet.pts().unwrap_or(0), *atb),
                    data,
                })?;
            }
        }
    }
    Ok(())
}

/// Transcodes a file into an HLS ladder under `prefix`, returning what was stored.
pub async fn transcode_file(
    cfg: Arc<LiveConfig>,
    store: DynStore,
    prefix: String,
    path: &Path,
) -> Result<LiveSummary, TranscodeError> {
    transcode_file_counting(cfg, store, prefix, path, Arc::new(AtomicI64::new(0)), None).await
}

/// [`transcode_file`], with the source position reached (ms) kept in `fed_ms` for progress,
/// and the pipeline's events (the master playlist stored: playable) sent to `events`.
pub async fn transcode_file_counting(
    cfg: Arc<LiveConfig>,
    store: DynStore,
    prefix: String,
    path: &Path,
    fed_ms: Arc<AtomicI64>,
    events: Option<tokio::sync::mpsc::Sender<crate::LiveEvent>>,
) -> Result<LiveSummary, TranscodeError> {
    let stream = LiveStream::start(cfg, store, prefix, events).await?;
    let tx = stream.sender().ok_or(TranscodeError::Stopped)?;
    let path = path.to_path_buf();
    let fed = tokio::task::spawn_blocking(move || feed_counting(&path, &tx, &fed_ms))
        .await
        .map_err(|_| TranscodeError::Stopped)?;
    let summary = stream.finish().await?;
    fed?;
    Ok(summary)
}
