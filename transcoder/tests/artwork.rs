//! Posters and storyboards from a real file: ffmpeg makes a video that opens on 3 s of black,
//! the artwork module picks a poster and packs the storyboard, and the JPEGs are decoded back
//! with ffprobe/ffmpeg to check what they show.

use std::path::Path;
use std::process::Command;

use transcoder::artwork::{make, ArtworkConfig};

fn make_source(out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "color=c=black:s=320x180:r=25:d=3"])
        .args(["-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=9"])
        .args(["-filter_complex", "[0][1]concat=n=2:v=1:a=0,format=yuv420p"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "50"])
        .arg(out)
        .status()
        .expect("ffmpeg must be installed (scripts/test.sh installs it)");
    assert!(status.success(), "ffmpeg could not make the source file");
}

/// Width, height, mean and standard deviation of the luma of a JPEG.
fn luma_stats(jpeg: &[u8], dir: &Path) -> (u32, u32, f64, f64) {
    let path = dir.join("probe.jpg");
    std::fs::write(&path, jpeg).unwrap();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    let f: Vec<&str> = line.split(',').collect();
    assert_eq!(f[0], "mjpeg", "{line}");
    let (w, h): (u32, u32) = (f[1].parse().unwrap(), f[2].parse().unwrap());
    let gray = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(gray.status.success());
    let px = &gray.stdout;
    assert_eq!(px.len(), (w * h) as usize);
    let n = px.len() as f64;
    let mean = px.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = px
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (w, h, mean, var.sqrt())
}

#[test]
fn poster_skips_the_black_opening_and_the_storyboard_covers_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.mp4");
    make_source(&src);
    let cfg = ArtworkConfig {
        interval_secs: 2.0,
        thumb_width: 96,
        columns: 4,
        rows: 1,
        poster_height: 720,
        jpeg_quality: 4,
    };
    let art = make(&src, 12.0, &cfg, |i| format!("sheet-{i}.jpg")).expect("artwork");

    // 12 s every 2 s: six cues, four to a sheet, so two sheets of the same size
    assert_eq!(art.cues, 6);
    assert_eq!(art.thumb_size, (96, 54));
    assert_eq!(art.sheets.len(), 2);
    let lines: Vec<&str> = art.vtt.lines().collect();
    assert_eq!(lines[0], "WEBVTT");
    let cues: Vec<(&str, &str)> = lines
        .windows(2)
        .filter(|w| w[0].contains(" --> "))
        .map(|w| (w[0], w[1]))
        .collect();
    assert_eq!(cues.len(), 6, "{}", art.vtt);
    assert_eq!(
        cues[0],
        (
            "00:00:00.000 --> 00:00:02.000",
            "sheet-0.jpg#xywh=0,0,96,54"
        )
    );
    assert_eq!(cues[3].1, "sheet-0.jpg#xywh=288,0,96,54");
    assert_eq!(
        cues[4],
        (
            "00:00:08.000 --> 00:00:10.000",
            "sheet-1.jpg#xywh=0,0,96,54"
        )
    );
    assert_eq!(cues[5].0, "00:00:10.000 --> 00:00:12.000");

    for sheet in &art.sheets {
        let (w, h, _, _) = luma_stats(sheet, dir.path());
        assert_eq!((w, h), (4 * 96, 54));
    }
    // the first sheet opens on black thumbnails (0-3 s), then the test pattern
    let (_, _, mean0, _) = luma_stats(&art.sheets[0], dir.path());
    let (_, _, mean1, sd1) = luma_stats(&art.sheets[1], dir.path());
    assert!(mean0 > 10.0 && sd1 > 20.0, "{mean0} {mean1} {sd1}");

    // the poster: full size (never upscaled) and a picture, not the black opening
    let (w, h, mean, sd) = luma_stats(&art.poster, dir.path());
    assert_eq!((w, h), art.poster_size);
    assert_eq!((w, h), (320, 180));
    assert!(
        mean > 40.0 && sd > 30.0,
        "a black or flat poster: mean {mean} sd {sd}"
    );
}

#[test]
fn a_file_that_is_not_a_video_makes_no_artwork() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.mp4");
    std::fs::write(&path, b"not a video at all\n".repeat(100)).unwrap();
    assert!(make(&path, 10.0, &ArtworkConfig::default(), |i| i.to_string()).is_err());
}

/// One live segment: MPEG-TS, 2 s, one keyframe, timestamps far from 0 (the broadcast's
/// clock), as the worker reads it for a live broadcast's poster.
#[test]
fn one_live_segment_makes_a_poster() {
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("seg-00012.ts");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=s=854x480:r=30:d=2"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "60"])
        .args([
            "-pix_fmt",
            "yuv420p",
            "-output_ts_offset",
            "1234.5",
            "-f",
            "mpegts",
        ])
        .arg(&seg)
        .status()
        .expect("ffmpeg must be installed");
    assert!(status.success());
    let art = make(&seg, 2.0, &ArtworkConfig::default(), |i| i.to_string())
        .expect("a poster from one segment");
    let (w, h, _, spread) = luma_stats(&art.poster, dir.path());
    assert!(w > 0 && h > 0);
    assert!(spread > 10.0, "a picture, not a flat frame: {spread}");
}
