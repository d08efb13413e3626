//! Benchmark 1 (transcode throughput): Caudal's file pipeline against one ffmpeg CLI process
//! making the same ladder, side by side in one run. Prints figures; asserts nothing.
//!
//! ```text
//! cargo run -p transcoder --example bench_transcode -- INPUT.mp4 WORK_DIR [--repeat=N] [--tunes=none,zerolatency] [--x264-threads=N] [--formats=ts,fmp4,parts]
//! ```
//! `--formats`: segment packaging of the Caudal runs (MPEG-TS, CMAF); each run prints the bytes
//! it stored, so the two packagings' overhead compares on the same encode.
//! ```text
//! ```
//! Normally started by `bash bench/run.sh transcode`, which makes the input once.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use storage::{LocalStore, ObjectStore};
use transcoder::{file::transcode_file, LiveConfig, SegmentFormat};

/// CPU seconds (user + system) of this process, all threads, from /proc/self/stat.
fn self_cpu_secs() -> f64 {
    proc_cpu_secs("self").unwrap_or(0.0)
}

fn proc_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command name (which may contain spaces) start at field 3
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    out.and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn media_secs(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ffprobe prints the duration")
}

struct Run {
    name: String,
    wall: f64,
    cpu: f64,
    detail: String,
}

/// The same ladder as Caudal's default for a 720p source, in one ffmpeg process:
/// decode once, split=3, scale, 3 x libx264 veryfast, AAC copied, 2 s MPEG-TS HLS segments.
fn run_cli(input: &Path, out: &Path) -> Run {
    std::fs::create_dir_all(out).unwrap();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(input);
    cmd.args([
        "-filter_complex",
        "[0:v]split=3[a][b][c];[b]scale=854:480[b480];[c]scale=640:360[c360]",
        "-map",
        "[a]",
        "-map",
        "[b480]",
        "-map",
        "[c360]",
        "-map",
        "0:a",
        "-map",
        "0:a",
        "-map",
        "0:a",
    ]);
    for (i, kbps) in [(0, 2800), (1, 1400), (2, 800)] {
        cmd.args([
            format!("-c:v:{i}"),
            "libx264".into(),
            format!("-b:v:{i}"),
            format!("{kbps}k"),
            format!("-maxrate:v:{i}"),
            format!("{}k", kbps * 12 / 10),
            format!("-bufsize:v:{i}"),
            format!("{}k", kbps * 2),
        ]);
    }
    cmd.args([
        "-preset",
        "veryfast",
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-sc_threshold",
        "0",
        "-c:a",
        "copy",
    ]);
    cmd.args([
        "-f",
        "hls",
        "-hls_time",
        "2",
        "-hls_list_size",
        "0",
        "-hls_segment_type",
        "mpegts",
    ]);
    cmd.args([
        "-var_stream_map",
        "v:0,a:0,name:720p v:1,a:1,name:480p v:2,a:2,name:360p",
    ]);
    cmd.arg("-hls_segment_filename")
        .arg(out.join("%v/seg_%05d.ts"));
    cmd.arg(out.join("%v/index.m3u8"));
    let t = Instant::now();
    let before = children_cpu_secs();
    let status = cmd.status().expect("ffmpeg runs");
    let wall = t.elapsed().as_secs_f64();
    let cpu = children_cpu_secs() - before;
    assert!(status.success(), "the ffmpeg CLI ladder failed");
    let segs = ["720p", "480p", "360p"]
        .iter()
        .map(|r| {
            std::fs::read_dir(out.join(r))
                .map(|d| {
                    d.filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ts"))
                    })
                    .count()
                })
                .unwrap_or(0)
        })
        .collect::<Vec<_>>();
    Run {
        name: "ffmpeg CLI (split=3, 3x libx264 veryfast)".into(),
        wall,
        cpu,
        detail: format!("segments per rung {segs:?}"),
    }
}

/// CPU seconds of reaped children (the ffmpeg CLI), from getrusage via /proc/self/stat's
/// cutime + cstime fields.
fn children_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(i) = stat.rfind(')') else { return 0.0 };
    let f: Vec<&str> = stat[i + 2..].split_whitespace().collect();
    let get = |n: usize| f.get(n).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (get(13) + get(14)) / clock_ticks()
}

async fn run_caudal(
    input: &Path,
    out: &Path,
    tune: Option<String>,
    threads: u32,
    format: Packaging,
) -> Run {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let cfg = LiveConfig {
        x264_preset: "veryfast".into(),
        x264_tune: tune.clone(),
        x264_threads: threads,
        passthrough: false,
        segment_format: format.format,
        // low-latency HLS: every segment cut into 0.5 s parts as it grows (the live edge holds them)
        part_secs: if format.parts { 0.5 } else { 0.0 },
        spool_dir: out.join("spool"),
        ..LiveConfig::default()
    };
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalStore::new(out.join("media")).expect("local store"));
    let cpu0 = self_cpu_secs();
    let t = Instant::now();
    let summary = transcode_file(Arc::new(cfg), store, "bench".into(), input)
        .await
        .expect("transcode succeeds");
    let wall = t.elapsed().as_secs_f64();
    let cpu = self_cpu_secs() - cpu0;
    let stored: u64 = walk_bytes(&out.join("media"));
    let rungs: Vec<String> = summary
        .renditions
        .iter()
        .map(|r| format!("{}:{}x{}", r.name, r.width, r.height))
        .collect();
    Run {
        name: caudal_name(&tune, threads, format),
        wall,
        cpu,
        detail: format!(
            "{} segments, {:.2} MB stored, rungs {}",
            summary.segments,
            stored as f64 / 1e6,
            rungs.join(" ")
        ),
    }
}

/// How the Caudal runs package their segments: `ts`, `fmp4` (CMAF) or `parts` (CMAF cut into
/// low-latency parts of 0.5 s).
#[derive(Debug, Clone, Copy)]
struct Packaging {
    format: SegmentFormat,
    parts: bool,
}

fn caudal_name(tune: &Option<String>, threads: u32, format: Packaging) -> String {
    format!(
        "Caudal {}{} (tune {})",
        format.format.extension(),
        if format.parts { "+parts" } else { "" },
        tune.as_deref().unwrap_or("none")
    ) + &(if threads > 0 {
        format!(" x264 threads {threads}")
    } else {
        String::new()
    })
}

/// Bytes of every file under `dir`.
fn walk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk_bytes(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let (Some(input), Some(work)) = (positional.first(), positional.get(1)) else {
        eprintln!("usage: bench_transcode INPUT WORK_DIR [--repeat=N] [--tunes=none,zerolatency] [--x264-threads=N] [--formats=ts,fmp4,parts]");
        std::process::exit(2);
    };
    let opt = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string))
    };
    let repeat: usize = opt("repeat").and_then(|v| v.parse().ok()).unwrap_or(1);
    let tunes: Vec<Option<String>> = opt("tunes")
        .unwrap_or_else(|| "none,zerolatency".into())
        .split(',')
        .map(|t| {
            if t == "none" {
                None
            } else {
                Some(t.to_string())
            }
        })
        .collect();
    // LiveConfig::x264_threads for the Caudal runs (0 = x264's automatic count, the default)
    let threads: u32 = opt("x264-threads")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let formats: Vec<Packaging> = opt("formats")
        .unwrap_or_else(|| "ts".into())
        .split(',')
        .map(|f| match f {
            "fmp4" | "cmaf" => Packaging {
                format: SegmentFormat::Fmp4,
                parts: false,
            },
            "parts" | "ll" => Packaging {
                format: SegmentFormat::Fmp4,
                parts: true,
            },
            _ => Packaging {
                format: SegmentFormat::Ts,
                parts: false,
            },
        })
        .collect();
    let input = PathBuf::from(input);
    let work = PathBuf::from(work);
    let secs = media_secs(&input);
    eprintln!("input {} ({secs:.2} s), {repeat} round(s)", input.display());

    let mut runs: Vec<Run> = Vec::new();
    for round in 0..repeat {
        // alternate the order so neither side always runs on a warmer machine
        let cli_first = round % 2 == 0;
        if cli_first {
            eprintln!("round {}: ffmpeg CLI", round + 1);
            runs.push(run_cli(&input, &work.join("cli")));
        }
        for format in &formats {
            for tune in &tunes {
                eprintln!(
                    "round {}: {}",
                    round + 1,
                    caudal_name(tune, threads, *format)
                );
                runs.push(
                    run_caudal(&input, &work.join("caudal"), tune.clone(), threads, *format).await,
                );
            }
        }
        if !cli_first {
            eprintln!("round {}: ffmpeg CLI", round + 1);
            runs.push(run_cli(&input, &work.join("cli")));
        }
        let _ = std::fs::remove_dir_all(work.join("cli"));
    }

    println!();
    println!("Transcode throughput: {secs:.1} s 720p30 source -> 720p/480p/360p, libx264 veryfast, 2 s GOP, 2 s segments");
    println!(
        "{:<46} {:>8} {:>10} {:>9} {:>10}",
        "run", "wall s", "x realtime", "CPU s", "CPU/wall"
    );
    for r in &runs {
        println!(
            "{:<46} {:>8.2} {:>10.2} {:>9.1} {:>10.2}   {}",
            r.name,
            r.wall,
            secs / r.wall,
            r.cpu,
            r.cpu / r.wall,
            r.detail
        );
    }
    let median = |name_prefix: &str| -> Option<f64> {
        let mut v: Vec<f64> = runs
            .iter()
            .filter(|r| r.name.starts_with(name_prefix))
            .map(|r| secs / r.wall)
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Some(v[v.len() / 2])
    };
    // media seconds per CPU second: less sensitive than wall time to other load on the machine
    let median_cpu = |name_prefix: &str| -> Option<f64> {
        let mut v: Vec<f64> = runs
            .iter()
            .filter(|r| r.name.starts_with(name_prefix))
            .map(|r| secs / r.cpu)
            .collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v.get(v.len() / 2).copied()
    };
    let cli = median("ffmpeg CLI").expect("the CLI ran");
    let cli_cpu = median_cpu("ffmpeg CLI").expect("the CLI ran");
    println!();
    println!(
        "ffmpeg CLI: {cli:.2}x realtime, {cli_cpu:.2} media s per CPU s (medians of {repeat})"
    );
    for format in &formats {
        for tune in &tunes {
            let name = caudal_name(tune, threads, *format);
            if let (Some(c), Some(cc)) = (median(&name), median_cpu(&name)) {
                println!(
                    "{:<28} {c:.2}x realtime, {cc:.2} media s per CPU s; ratio Caudal/CLI = {:.2} by wall time (goal >= 1.0), {:.2} by CPU time",
                    format!("{name}:"),
                    c / cli,
                    cc / cli_cpu
                );
            }
        }
    }
}
