#!/usr/bin/env bash
# Upload benchmarks (figures, not tests): what a creator waits for after uploading a file, and
# what uploads cost the platform. See bench/README.md, "Upload benchmarks".
#
#   bash bench/upload.sh
#
# Starts the whole platform (scripts/platform.sh: MariaDB, SecantusDB, s3s-fs, NATS, every
# service from target/debug, one transcode worker; monitoring off) on free loopback ports with
# its data in .caudal/bench-upload-<pid>/, uploads with curl over tus as the demo creator,
# prints the figures and stops everything (the folder is removed; on a failure its logs are
# kept). About 3 minutes on 2 cores.
#
#   1. time to playable and to ready after the last byte of a 60 s 720p30 H.264/AAC upload
#   2. the worker's speed on that file (x realtime) vs one ffmpeg CLI process making the same ladder
#   3. 4 uploads of a 30 s 720p file: time until all are ready with 1 worker, then with 2
#   4. upload throughput through bff (one PATCH of 1 GiB of random bytes) vs a plain PUT to
#      s3s-fs, and bff's memory during it
#
# Environment (all optional):
#   CAUDAL_BENCH_PARTS="1 2 3 4"   which parts to run (2 uses the uploads of 1: it implies 1)
#   CAUDAL_BENCH_SECS=60           length of the file of parts 1 and 2, seconds
#   CAUDAL_BENCH_RUNS=2            uploads of that file (part 1)
#   CAUDAL_BENCH_SHORT_SECS=30     length of the file of part 3, seconds
#   CAUDAL_BENCH_COPIES=4          uploads per round of part 3
#   CAUDAL_BENCH_UPLOAD_MIB=1024   size of the random file of part 4, MiB
#   CAUDAL_BENCH_RUNG=360p         the rung whose playlist counts as "playable" (the lowest)
#   CAUDAL_BENCH_CLI_TUNES="none zerolatency"  ffmpeg CLI runs of part 2 (x264 tune)
#   CAUDAL_BENCH_TIMEOUT=300       longest wait for one video to be ready, seconds
#   CAUDAL_BENCH_KEEP=1            keep .caudal/bench-upload-<pid>/ (logs, storage) at the end
# Binaries are used as built in target/debug; only a missing one makes it run
# `cargo build --workspace --bins --locked`. Inputs are made once in .caudal/bench-inputs/.
set -euo pipefail
export LC_ALL=C
source "$(dirname "$0")/../scripts/lib.sh"
source "$CAUDAL_ROOT/scripts/platform.sh"
cd "$CAUDAL_ROOT"

PARTS=" ${CAUDAL_BENCH_PARTS:-1 2 3 4} "
PARTS=${PARTS//,/ }
SECS=${CAUDAL_BENCH_SECS:-60}
RUNS=${CAUDAL_BENCH_RUNS:-2}
SHORT_SECS=${CAUDAL_BENCH_SHORT_SECS:-30}
COPIES=${CAUDAL_BENCH_COPIES:-4}
UPLOAD_MIB=${CAUDAL_BENCH_UPLOAD_MIB:-1024}
RUNG=${CAUDAL_BENCH_RUNG:-360p}
CLI_TUNES=${CAUDAL_BENCH_CLI_TUNES:-none zerolatency}
TIMEOUT=${CAUDAL_BENCH_TIMEOUT:-300}
KEEP=${CAUDAL_BENCH_KEEP:-0}
for v in SECS RUNS SHORT_SECS COPIES UPLOAD_MIB TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "CAUDAL_BENCH_$v must be a positive whole number (got '${!v}')"
done
want() { [[ "$PARTS" == *" $1 "* ]]; }
want 2 && PARTS+="1 "

INPUTS="$CAUDAL_ROOT/.caudal/bench-inputs"
STATE="$CAUDAL_ROOT/.caudal/bench-upload-$$"
BIN="$CAUDAL_ROOT/target/debug"
PART_BYTES=${CAUDAL_BFF_UPLOADS__PART_BYTES:-8388608}
BG_PIDS=()

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_all
  if [ "$KEEP" = 1 ]; then
    log "kept $STATE"
  elif [ "$rc" = 0 ]; then
    rm -rf "$STATE"
  else
    # keep the logs, which explain the failure, not the data
    find "$STATE" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null || true
    log "failed (exit $rc): logs kept in $STATE/logs"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- small helpers --------------------------------------------------------------------------

# f OP A B: float arithmetic, 2 decimals (e.g. f - "$t1" "$t0")
f() { awk -v a="$2" -v b="$3" "BEGIN { printf \"%.2f\", a $1 b }"; }
now() { printf '%s' "$EPOCHREALTIME"; }
# since T0: seconds since T0 (an $EPOCHREALTIME), 2 decimals
since() { f - "$(now)" "$1"; }

# cpu_secs PID: user+system CPU seconds of a process so far
cpu_secs() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / t }' <<<"$s"
}

# pid_of NAME: the pid of the first process named NAME (target/debug/NAME, s3s-fs, ...) among
# the ones this script started
pid_of() {
  local p a
  for p in "${CAUDAL_PIDS[@]}"; do
    a=$(tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | head -1) || true
    [ "${a##*/}" = "$1" ] && { echo "$p"; return 0; }
  done
  die "no $1 process among the ones started (${CAUDAL_PIDS[*]})"
}

# status_kib PID FIELD: a field of /proc/PID/status in KiB (VmRSS, VmHWM)
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

check_tools() {
  local missing=() b
  for b in ffmpeg ffprobe curl python3 mariadbd secantusd-py base64 awk; do
    command -v "$b" >/dev/null || missing+=("$b")
  done
  export PATH="$HOME/.cargo/bin:$PATH"
  command -v s3s-fs >/dev/null || missing+=(s3s-fs)
  if ! command -v nats-server >/dev/null; then
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    command -v nats-server >/dev/null || missing+=(nats-server)
  fi
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]}: run 'bash scripts/up.sh' once (it installs them)"
  for b in user-svc metadata-svc ingest-rtmp bff transcoder; do
    if [ ! -x "$BIN/$b" ]; then
      log "$BIN/$b is missing: building the workspace"
      cargo build --workspace --bins --locked -q || die "cargo build failed"
      break
    fi
  done
}

# make_input SECS -> prints the path of a SECS-second 720p30 H.264/AAC MP4 (testsrc2 + sine,
# libx264 veryfast, 2 s GOP, 4 Mbit/s), made once. The 60 s one is bench/run.sh's input.
make_input() {
  local secs=$1 out="$INPUTS/src720p30_${1}s.mp4"
  mkdir -p "$INPUTS"
  if [ ! -s "$out" ]; then
    log "making $out"
    ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
      -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$secs" \
      -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -g 60 -keyint_min 60 -sc_threshold 0 \
      -b:v 4000k -maxrate 4800k -bufsize 8000k -c:a aac -b:a 128k -ac 2 -movflags +faststart \
      "$INPUTS/.src$$.mp4" || die "ffmpeg could not make $out"
    mv "$INPUTS/.src$$.mp4" "$out"
  fi
  echo "$out"
}

# --- the API --------------------------------------------------------------------------------

login() {
  local body
  body=$(curl -sS -m 10 "$BFF/v1/auth/login" -H 'Content-Type: application/json' \
    -d '{"email":"demo@caudal.local","password":"demo-password-123"}') || die "login failed"
  TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$body" 2>/dev/null) ||
    die "login as the demo creator failed: $body"
}

# upload FILE TITLE [FILETYPE]: creates a tus upload and sends the whole file in one PATCH.
# Sets UP_ID, UP_LAST (epoch seconds when the PATCH returned: the last byte is stored),
# UP_SECS (the PATCH's time, curl's time_total), UP_BYTES.
upload() {
  local file=$1 title=$2 type=${3:-video/mp4} size hdrs code loc meta out
  size=$(stat -c %s "$file")
  meta="title $(printf '%s' "$title" | base64 -w0),filetype $(printf '%s' "$type" | base64 -w0)"
  hdrs=$(curl -sS -m 30 -o /dev/null -D - -X POST "$BFF/v1/uploads" -H "Authorization: Bearer $TOKEN" \
    -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" -H "Upload-Metadata: $meta" | tr -d '\r') ||
    die "POST /v1/uploads failed"
  code=$(awk 'NR == 1 { print $2 }' <<<"$hdrs")
  [ "$code" = 201 ] || die "POST /v1/uploads answered $code"
  loc=$(awk 'tolower($1) == "location:" { print $2 }' <<<"$hdrs")
  [ -n "$loc" ] || die "POST /v1/uploads gave no Location"
  [[ "$loc" == http* ]] || loc="$BFF$loc"
  UP_ID=${loc##*/}
  # Expect: (none) so curl does not wait for a 100 Continue before sending
  out=$(curl -sS -o "$STATE/patch.out" -w '%{http_code} %{time_total} %{size_upload}' -X PATCH "$loc" \
    -T "$file" -H "Authorization: Bearer $TOKEN" -H 'Tus-Resumable: 1.0.0' -H 'Expect:' \
    -H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0') || die "PATCH $loc failed"
  UP_LAST=$(now)
  read -r code UP_SECS UP_BYTES <<<"$out"
  [ "$code" = 204 ] || die "PATCH $loc answered $code: $(head -c 300 "$STATE/patch.out")"
}

# video_status ID: sets STATUS (unknown when the API did not answer) and FAILURE (the reason
# of a failed video)
video_status() {
  local body
  STATUS=unknown FAILURE=""
  body=$(curl -sS -m 10 -H "Authorization: Bearer $TOKEN" "$BFF/v1/studio/videos/$1" 2>/dev/null) || return 0
  [[ $body =~ \"failure\":\"([^\"]*)\" ]] && FAILURE=${BASH_REMATCH[1]}
  [[ $body =~ \"status\":\"([a-z_]+)\" ]] && STATUS=${BASH_REMATCH[1]}
  return 0
}

# worker_secs LOG ID MESSAGE: the secs= field of the worker's last MESSAGE line about video ID
worker_secs() {
  { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -F "$3" | grep -F "$2" | grep -o ' secs=[0-9.]*' | tail -1 | cut -d= -f2; } || true
}

# worker_at LOG ID MESSAGE: epoch seconds of the worker's first MESSAGE line about video ID
worker_at() {
  local ts
  ts=$({ sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -F "$3" | grep -F "$2" | head -1 | awk '{ print $1 }'; } || true)
  [ -z "$ts" ] || date -d "$ts" +%s.%N
}

# --- 1. time to playable and to ready -------------------------------------------------------

# watch ID T0: polls storage (on disk: s3s-fs writes a temp file and renames it) and the
# studio API from the last byte (T0, an $EPOCHREALTIME) until the video is ready, about every
# 50 ms plus the time one GET takes. Sets, as seconds after T0: W_PLAY (the rung's live
# playlist lists a segment; W_PLAY_SEGS: how many then), W_MASTER (master.m3u8 stored: every
# rung has a segment), W_VOD (vod.m3u8 stored: every VOD playlist is written, the ladder is
# done), W_READY (status ready). W_SEQ: the live playlist's last EXT-X-MEDIA-SEQUENCE seen,
# W_SEGS_MAX: the most segments it listed.
watch() {
  local id=$1 t0=$2 dir="$STATE/s3/data/media/vod/$1" pl t seq n play="" master="" vod="" ready=""
  pl="$dir/$RUNG/index.m3u8"
  W_PLAY_SEGS="" W_SEQ=0 W_SEGS_MAX=0
  while :; do
    t=$EPOCHREALTIME
    if [ -z "$vod" ] && [ -f "$pl" ]; then
      n=$(grep -c '^#EXTINF' "$pl" || true)
      if ((n > 0)); then
        [ -n "$play" ] || { play=$t; W_PLAY_SEGS=$n; }
        ((n <= W_SEGS_MAX)) || W_SEGS_MAX=$n
        seq=$(sed -n 's/^#EXT-X-MEDIA-SEQUENCE://p' "$pl")
        ((${seq:-0} <= W_SEQ)) || W_SEQ=$seq
      fi
    fi
    [ -n "$master" ] || [ ! -f "$dir/master.m3u8" ] || master=$t
    [ -n "$vod" ] || [ ! -f "$dir/vod.m3u8" ] || vod=$t
    video_status "$id"
    case "$STATUS" in
      ready) ready=$EPOCHREALTIME; break ;;
      failed) die "video $id failed: $FAILURE (see $STATE/logs/worker.log)" ;;
    esac
    ((${EPOCHREALTIME%.*} - ${t0%.*} < TIMEOUT)) || die "video $id not ready after ${TIMEOUT}s (status $STATUS; see $STATE/logs/worker.log)"
    sleep 0.05
  done
  W_PLAY=$(f - "${play:-$ready}" "$t0") W_MASTER=$(f - "${master:-$ready}" "$t0")
  W_VOD=$(f - "${vod:-$ready}" "$t0") W_READY=$(f - "$ready" "$t0")
  [ -n "$play" ] || log "video $id: $RUNG never listed a segment before ready (is $RUNG in the ladder?)"
}

PART1_IDS=()
bench_playable() {
  local file i size wpid cpu0 cpu1 started wsecs
  file=$(make_input "$SECS")
  size=$(stat -c %s "$file")
  wpid=$(pid_of transcoder)
  login
  echo
  echo "== 1. time to playable / ready after the last byte: ${SECS} s 720p30 H.264/AAC upload ($(f / "$size" 1000000) MB), runs: $RUNS"
  echo "   playable = vod/<id>/$RUNG/index.m3u8 stored with >= 1 segment; ready = GET /v1/studio/videos/<id> says ready (goal: playable <= 5 s)"
  for ((i = 1; i <= RUNS; i++)); do
    cpu0=$(cpu_secs "$wpid")
    upload "$file" "bench upload $i"
    PART1_IDS+=("$UP_ID")
    watch "$UP_ID" "$UP_LAST"
    cpu1=$(cpu_secs "$wpid")
    started=$(worker_at "$STATE/logs/worker.log" "$UP_ID" "transcoding an upload")
    wsecs=$(worker_secs "$STATE/logs/worker.log" "$UP_ID" "upload ready")
    echo "run $i (video $UP_ID): upload $(f + "$UP_SECS" 0) s ($(f / "$UP_BYTES" "$UP_SECS" | awk '{ printf "%.0f", $1 / 1e6 }') MB/s)"
    echo "   time to playable: ${W_PLAY} s   time to ready: ${W_READY} s   (seconds after the last byte)"
    echo "   along the way: worker copied + probed the original by +$(f - "${started:-$UP_LAST}" "$UP_LAST") s, $RUNG listed its first segment +${W_PLAY} s (${W_PLAY_SEGS} in the playlist), master.m3u8 +${W_MASTER:-?} s, vod.m3u8 +${W_VOD:-?} s, ready +${W_READY} s"
    echo "   $RUNG live playlist while transcoding: at most ${W_SEGS_MAX} segments, media sequence up to ${W_SEQ} before the VOD playlists; worker 'upload ready' secs=${wsecs:-?}, worker CPU $(f - "$cpu1" "$cpu0") s"
  done
}

# --- 2. worker throughput vs the ffmpeg CLI -------------------------------------------------

# cli_ladder TUNE OUT: the default ladder for a 720p source in one ffmpeg process, as
# transcoder/examples/bench_transcode.rs runs it (decode once, split=3, scale, 3x libx264
# veryfast with Caudal's bitrates, maxrate 1.2x, bufsize 2x, 2 s GOP, AAC copied, 2 s TS
# segments); TUNE none = x264's defaults. Sets CLI_WALL, CLI_CPU.
cli_ladder() {
  local tune=$1 out=$2 targs=() u s
  [ "$tune" = none ] || targs=(-tune "$tune")
  rm -rf "$out" && mkdir -p "$out"
  local TIMEFORMAT='%R %U %S'
  if ! { time ffmpeg -hide_banner -loglevel error -nostdin -y -i "$INPUT_MAIN" \
    -filter_complex '[0:v]split=3[a][b][c];[b]scale=854:480[b480];[c]scale=640:360[c360]' \
    -map '[a]' -map '[b480]' -map '[c360]' -map 0:a -map 0:a -map 0:a \
    -c:v:0 libx264 -b:v:0 2800k -maxrate:v:0 3360k -bufsize:v:0 5600k \
    -c:v:1 libx264 -b:v:1 1400k -maxrate:v:1 1680k -bufsize:v:1 2800k \
    -c:v:2 libx264 -b:v:2 800k -maxrate:v:2 960k -bufsize:v:2 1600k \
    -preset veryfast "${targs[@]}" -g 60 -keyint_min 60 -sc_threshold 0 -c:a copy \
    -f hls -hls_time 2 -hls_list_size 0 -hls_segment_type mpegts \
    -var_stream_map 'v:0,a:0,name:720p v:1,a:1,name:480p v:2,a:2,name:360p' \
    -hls_segment_filename "$out/%v/seg_%05d.ts" "$out/%v/index.m3u8" 2>"$out/ffmpeg.log"; } 2>"$out/time"; then
    die "the ffmpeg CLI ladder failed: $(tail -3 "$out/ffmpeg.log")"
  fi
  read -r CLI_WALL u s <"$out/time"
  CLI_CPU=$(f + "$u" "$s")
}

bench_throughput() {
  local id w art sum=0 artsum=0 n=0 tune worker_x ladder_x cli_x segs
  echo
  echo "== 2. worker throughput on the ${SECS} s file vs the ffmpeg CLI making the same ladder (720p 2800k, 480p 1400k, 360p 800k, libx264 veryfast)"
  for id in "${PART1_IDS[@]}"; do
    w=$(worker_secs "$STATE/logs/worker.log" "$id" "upload ready")
    art=$(worker_secs "$STATE/logs/worker.log" "vod/$id" "poster and storyboard stored")
    [ -n "$w" ] || die "no 'upload ready' line for $id in $STATE/logs/worker.log"
    echo "worker, video $id: upload ready secs=$(f + "$w" 0) ($(f / "$SECS" "$w")x realtime); of which poster + storyboard $(f + "${art:-0}" 0) s, ladder $(f - "$w" "${art:-0}") s ($(f / "$SECS" "$(f - "$w" "${art:-0}")")x)"
    sum=$(f + "$sum" "$w") artsum=$(f + "$artsum" "${art:-0}") n=$((n + 1))
  done
  worker_x=$(f / "$SECS" "$(f / "$sum" "$n")")
  ladder_x=$(f / "$SECS" "$(f / "$(f - "$sum" "$artsum")" "$n")")
  echo "worker (x264 tune zerolatency, its default), mean of $n: $(f / "$sum" "$n") s = ${worker_x}x realtime (ladder alone ${ladder_x}x)"
  for tune in $CLI_TUNES; do
    cli_ladder "$tune" "$STATE/cli/$tune"
    cli_x=$(f / "$SECS" "$CLI_WALL")
    segs=$(for r in 720p 480p 360p; do find "$STATE/cli/$tune/$r" -name '*.ts' | wc -l; done | paste -sd/)
    echo "ffmpeg CLI, tune $tune: ${CLI_WALL} s = ${cli_x}x realtime, CPU ${CLI_CPU} s, segments per rung $segs"
    echo "   ratio worker/CLI (x realtime): $(awk -v a="$worker_x" -v b="$cli_x" 'BEGIN { printf "%.2f", a / b }') (ladder alone $(awk -v a="$ladder_x" -v b="$cli_x" 'BEGIN { printf "%.2f", a / b }'))"
  done
  rm -rf "$STATE/cli"
}

# --- 3. one worker vs two -------------------------------------------------------------------

# round LABEL: uploads COPIES copies of the short file one after the other (each its own
# upload and video), then waits until every one is ready. Sets ROUND_SECS (the last byte of
# the last upload -> all ready).
round() {
  local label=$1 ids=() at=() i t0 left readies=""
  login
  for ((i = 1; i <= COPIES; i++)); do
    upload "$INPUT_SHORT" "bench $label copy $i"
    ids+=("$UP_ID")
    at+=("")
  done
  t0=$UP_LAST
  left=$COPIES
  while :; do
    for i in "${!ids[@]}"; do
      [ -z "${at[i]}" ] || continue
      video_status "${ids[i]}"
      case "$STATUS" in
        ready) at[i]=$EPOCHREALTIME; left=$((left - 1)) ;;
        failed) die "video ${ids[i]} failed: $FAILURE" ;;
      esac
    done
    ((left > 0)) || break
    ((${EPOCHREALTIME%.*} - ${t0%.*} < TIMEOUT * COPIES)) || die "round '$label' not done after $((TIMEOUT * COPIES))s"
    sleep 0.1
  done
  ROUND_SECS=0
  for i in "${!ids[@]}"; do
    at[i]=$(f - "${at[i]}" "$t0")
    readies+="${at[i]} "
    ROUND_SECS=$(awk -v a="$ROUND_SECS" -v b="${at[i]}" 'BEGIN { printf "%.2f", (b > a ? b : a) }')
  done
  echo "$label: all $COPIES ready ${ROUND_SECS} s after the last byte (each, in upload order: ${readies% } s)"
}

bench_workers() {
  local one two port
  INPUT_SHORT=$(make_input "$SHORT_SECS")
  echo
  echo "== 3. $COPIES uploads of a ${SHORT_SECS} s 720p30 file ($(f / "$(stat -c %s "$INPUT_SHORT")" 1000000) MB each), $(nproc) cores: 1 worker vs 2"
  round "1 worker"
  one=$ROUND_SECS
  # a second worker process: the same CAUDAL_WORKER_* as the platform's, its own metrics port,
  # work dir and spool
  port=$(free_port)
  CAUDAL_WORKER_METRICS_LISTEN="127.0.0.1:$port" CAUDAL_WORKER_WORK_DIR="$STATE/worker2" \
    CAUDAL_WORKER_TRANSCODE__SPOOL_DIR="$STATE/worker2-spool" \
    start_bg worker2 "$STATE/logs/worker2.log" "$BIN/transcoder" worker
  wait_port 127.0.0.1 "$port" 60 "the second transcoder worker"
  round "2 workers"
  two=$ROUND_SECS
  echo "ratio 1 worker / 2 workers: $(f / "$one" "$two") (jobs taken by the second worker: $(sed 's/\x1b\[[0-9;]*m//g' "$STATE/logs/worker2.log" | grep -c 'upload ready' || true) of $COPIES)"
}

# --- 4. upload throughput and bff's memory --------------------------------------------------

bench_bytes() {
  local file="$STATE/random.bin" bytes out code secs bff s3 hwm0 hwm1 rss0 rssmax sampler t0 st c0 c1 s0 s1
  echo
  echo "== 4. upload throughput: ${UPLOAD_MIB} MiB of random bytes, one PATCH through bff vs one PUT to s3s-fs (MB = 10^6 bytes)"
  log "writing $UPLOAD_MIB MiB of random bytes"
  head -c "$((UPLOAD_MIB << 20))" /dev/urandom >"$file"
  bytes=$(stat -c %s "$file")
  cat "$file" >/dev/null # in the page cache for both
  bff=$(pid_of bff) s3=$(pid_of s3s-fs)
  s0=$(cpu_secs "$s3")
  # (curl sends Expect: 100-continue; s3s-fs answers it at once. An empty Expect: header
  # would break curl's signature.)
  out=$(curl -sS -o "$STATE/put.out" -w '%{http_code} %{time_total}' -T "$file" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$CAUDAL_S3_ACCESS_KEY:$CAUDAL_S3_SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$CAUDAL_S3_ENDPOINT/media/bench/plain") || die "PUT to s3s-fs failed"
  read -r code secs <<<"$out"
  [[ "$code" == 2* ]] || die "PUT to s3s-fs answered $code: $(head -c 300 "$STATE/put.out")"
  s1=$(cpu_secs "$s3")
  rm -f "$STATE/s3/data/media/bench/plain"
  local plain=$secs
  echo "plain PUT to s3s-fs: $(f + "$secs" 0) s, $(f / "$bytes" "$secs" | awk '{ printf "%.0f", $1 / 1e6 }') MB/s (s3s-fs CPU $(f - "$s1" "$s0") s)"

  login
  # VmHWM is the peak since start (earlier uploads included): reset it to the current RSS
  # (clear_refs 5, Linux >= 4.0) so the growth is this upload's
  echo 5 >"/proc/$bff/clear_refs" 2>/dev/null || log "could not reset bff's VmHWM: the figure includes earlier peaks"
  hwm0=$(status_kib "$bff" VmHWM) rss0=$(status_kib "$bff" VmRSS)
  (while kill -0 "$bff" 2>/dev/null; do status_kib "$bff" VmRSS || true; sleep 0.2; done) >"$STATE/bff-rss.txt" 2>/dev/null &
  sampler=$!
  BG_PIDS+=("$sampler")
  # when s3s-fs has stored the last part (bff's parts are part_bytes, 8 MiB by default;
  # s3s-fs keeps part N as .upload_id-<uuid>.part-N until the parts are joined)
  local nparts=$(((bytes + PART_BYTES - 1) / PART_BYTES)) watcher lastpart
  (while :; do
    for p in "$STATE"/s3/data/.upload_id-*.part-"$nparts"; do [ -e "$p" ] && { echo "$EPOCHREALTIME"; exit 0; }; done
    sleep 0.02
  done) >"$STATE/lastpart.txt" &
  watcher=$!
  BG_PIDS+=("$watcher")
  c0=$(cpu_secs "$bff") s0=$(cpu_secs "$s3")
  upload "$file" "bench random bytes" application/octet-stream
  c1=$(cpu_secs "$bff") s1=$(cpu_secs "$s3")
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  lastpart=$(cat "$STATE/lastpart.txt")
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  hwm1=$(status_kib "$bff" VmHWM)
  rssmax=$(sort -n "$STATE/bff-rss.txt" | tail -1)
  echo "PATCH through bff: $(f + "$UP_SECS" 0) s, $(f / "$UP_BYTES" "$UP_SECS" | awk '{ printf "%.0f", $1 / 1e6 }') MB/s ($(f / "$plain" "$UP_SECS") of the plain PUT's rate; bff CPU $(f - "$c1" "$c0") s, s3s-fs CPU $(f - "$s1" "$s0") s)"
  [ -z "$lastpart" ] ||
    echo "   of which receiving and storing the $nparts parts $(f - "$(f - "$lastpart" "$UP_LAST")" "-$UP_SECS") s, then joining them into uploads/<id>/source (CompleteMultipartUpload) and queueing the job $(f - "$UP_LAST" "$lastpart") s"
  echo "bff memory: VmHWM $((hwm0 / 1024)) -> $((hwm1 / 1024)) MiB, growth $(f / "$((hwm1 - hwm0))" 1024) MiB (goal < 64 MiB); VmRSS $((rss0 / 1024)) MiB before, max $(f / "${rssmax:-0}" 1024) MiB sampled every 0.2 s ($(wc -l <"$STATE/bff-rss.txt") samples)"
  # the worker copies the original and refuses it
  t0=$UP_LAST
  while :; do
    video_status "$UP_ID"
    st=$STATUS
    [ "$st" = failed ] || [ "$st" = ready ] && break
    ((${EPOCHREALTIME%.*} - ${t0%.*} < TIMEOUT)) || { st="still $st"; break; }
    sleep 0.5
  done
  echo "the upload then ended $st $(since "$t0") s after its last byte${FAILURE:+: $FAILURE}"
  rm -f "$file"
}

# --- main -----------------------------------------------------------------------------------

check_tools
[ ! -e "$STATE" ] || die "$STATE exists already"
mkdir -p "$STATE"
want 1 && INPUT_MAIN=$(make_input "$SECS")
want 3 && make_input "$SHORT_SECS" >/dev/null

log "starting the platform in $STATE (free ports, s3 storage, monitoring off)"
platform_free_ports
export CAUDAL_MONITORING=off CAUDAL_STORAGE=s3
start_platform "$STATE"
BFF="http://127.0.0.1:$CAUDAL_BFF_PORT"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg); $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- '*.rs' 2>/dev/null || echo ' + uncommitted Rust changes'), binaries built: bff $(date -r "$BIN/bff" '+%F %T'), transcoder $(date -r "$BIN/transcoder" '+%F %T'); storage s3 (s3s-fs), ladder: the worker's default"
T_START=$(now)
want 1 && bench_playable
want 2 && bench_throughput
want 3 && bench_workers
want 4 && bench_bytes
echo
echo "done in $(since "$T_START") s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
