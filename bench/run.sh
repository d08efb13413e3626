#!/usr/bin/env bash
# The live-spine benchmarks. Each one builds what it needs, starts what it needs on free
# loopback ports under a temp dir, prints its figures and cleans up.
#
#   bash bench/run.sh transcode   # 1. transcode throughput, Caudal vs one ffmpeg CLI process
#   bash bench/run.sh latency     # 2. segment availability latency, Caudal vs nginx-rtmp
#   bash bench/run.sh cpu         # 3. CPU per stream, 10 passthrough publishers, Caudal vs nginx-rtmp
#   bash bench/run.sh all
#
# Environment: BENCH_REPEAT (transcode rounds, default 1), BENCH_STREAMS (cpu, default 10),
# BENCH_SECS (cpu measuring window, default 30), BENCH_S3=0 (latency: skip the run on the
# S3-compatible server, s3s-fs). Inputs are made once in .caudal/bench-inputs/.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$CAUDAL_ROOT"

WHAT="${1:-}"
case "$WHAT" in
  transcode | latency | cpu | all) ;;
  *) echo "usage: bash bench/run.sh transcode|latency|cpu|all" >&2; exit 2 ;;
esac

INPUTS="$CAUDAL_ROOT/.caudal/bench-inputs"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/caudal-bench.XXXXXX")
cleanup() { stop_all; rm -rf "$STATE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

NGINX_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so

check_tools() {
  local missing=()
  command -v ffmpeg >/dev/null || missing+=(ffmpeg)
  command -v nginx >/dev/null || missing+=(nginx)
  [ -f "$NGINX_MODULE" ] || missing+=(libnginx-mod-rtmp)
  if [ "$WHAT" != transcode ]; then
    command -v mariadbd >/dev/null || missing+=(mariadb-server mariadb-client)
  fi
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install failed"
  fi
  if [ "$WHAT" != transcode ] && ! command -v secantusd-py >/dev/null; then
    pip install -q secantusdb >/dev/null 2>&1 || die "pip install secantusdb failed"
    hash -r
  fi
}

# The inputs, made once: a 60 s 720p30 H.264/AAC MP4 (transcode) and a 40 s 720p30 FLV with a
# keyframe every 2 s and no B-frames (published by the latency and CPU benchmarks).
make_inputs() {
  mkdir -p "$INPUTS"
  if [ ! -s "$INPUTS/src720p30_60s.mp4" ]; then
    log "making $INPUTS/src720p30_60s.mp4"
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
      -f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 \
      -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -g 60 -keyint_min 60 -sc_threshold 0 \
      -b:v 4000k -maxrate 4800k -bufsize 8000k -c:a aac -b:a 128k -ac 2 -movflags +faststart \
      "$INPUTS/.src.mp4" && mv "$INPUTS/.src.mp4" "$INPUTS/src720p30_60s.mp4"
  fi
  if [ ! -s "$INPUTS/pub720p30_40s.flv" ]; then
    log "making $INPUTS/pub720p30_40s.flv"
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
      -f lavfi -i sine=frequency=440:sample_rate=48000 -t 40 \
      -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -g 60 -keyint_min 60 -sc_threshold 0 -bf 0 \
      -b:v 3000k -maxrate 3600k -bufsize 6000k -c:a aac -b:a 128k -ac 2 -f flv \
      "$INPUTS/.pub.flv" && mv "$INPUTS/.pub.flv" "$INPUTS/pub720p30_40s.flv"
  fi
}

# start_nginx_rtmp: Debian's nginx with libnginx-mod-rtmp, HLS into $STATE/nginx/hls.
# Sets NGINX_RTMP (host:port), NGINX_HLS, NGINX_PID (the master).
start_nginx_rtmp() {
  local dir="$STATE/nginx" port
  port=$(free_port)
  mkdir -p "$dir/hls" "$dir/logs"
  cat >"$dir/nginx.conf" <<EOF
load_module $NGINX_MODULE;
daemon off;
master_process on;
worker_processes 1;
user root;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:$port;
    chunk_size 4096;
    application live {
      live on;
      record off;
      hls on;
      hls_path $dir/hls;
      hls_fragment 2s;
      hls_playlist_length 12s;
    }
  }
}
EOF
  nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" || die "nginx config test failed"
  start_bg nginx-rtmp "$dir/logs/stdout.log" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  NGINX_PID=${CAUDAL_PIDS[-1]}
  wait_port 127.0.0.1 "$port" 20 nginx-rtmp
  NGINX_RTMP="127.0.0.1:$port"
  NGINX_HLS="$dir/hls"
}

# MariaDB and the MongoDB-compatible server for the in-process stack (test-stack).
start_services() {
  [ -n "${SERVICES_UP:-}" ] && return 0
  start_mariadb "$STATE/mysql" "$(free_port)"
  start_mongo "$STATE/mongo" "$(free_port)"
  export DATABASE_URL="$CAUDAL_MYSQL_URL" CAUDAL_MONGO_URL
  SERVICES_UP=1
}

bench_transcode() {
  log "building transcoder examples"
  cargo build -q -p transcoder --examples
  log "benchmark 1: transcode throughput (a few minutes)"
  "$CAUDAL_ROOT/target/debug/examples/bench_transcode" "$INPUTS/src720p30_60s.mp4" "$STATE/transcode" \
    "--repeat=${BENCH_REPEAT:-1}" --tunes=none,zerolatency --formats=ts,fmp4,parts
}

bench_latency() {
  log "building ingest-rtmp examples"
  cargo build -q -p ingest-rtmp --examples
  start_services
  [ -n "${NGINX_RTMP:-}" ] || start_nginx_rtmp
  local s3=()
  if [ "${BENCH_S3:-1}" = 1 ] && { command -v s3s-fs >/dev/null || [ -x "$HOME/.cargo/bin/s3s-fs" ]; }; then
    export PATH="$HOME/.cargo/bin:$PATH"
    start_s3 "$STATE/s3" "$(free_port)"
    export CAUDAL_TEST_S3_ENDPOINT="$CAUDAL_S3_ENDPOINT" CAUDAL_TEST_S3_ACCESS_KEY="$CAUDAL_S3_ACCESS_KEY" \
      CAUDAL_TEST_S3_SECRET_KEY="$CAUDAL_S3_SECRET_KEY" CAUDAL_TEST_S3_REGION=us-east-1
    s3=(--s3)
  else
    log "s3s-fs not found (or BENCH_S3=0): skipping the S3 run"
  fi
  log "benchmark 2: segment availability latency (about 4 minutes)"
  RUST_LOG="${RUST_LOG:-warn,sqlx=error}" "$CAUDAL_ROOT/target/debug/examples/bench_live" latency \
    --flv "$INPUTS/pub720p30_40s.flv" --nginx-rtmp "$NGINX_RTMP" --nginx-hls "$NGINX_HLS" "${s3[@]}"
}

bench_cpu() {
  log "building ingest-rtmp examples"
  cargo build -q -p ingest-rtmp --examples
  start_services
  [ -n "${NGINX_RTMP:-}" ] || start_nginx_rtmp
  log "benchmark 3: CPU per stream (about 2 minutes)"
  RUST_LOG="${RUST_LOG:-warn,sqlx=error}" "$CAUDAL_ROOT/target/debug/examples/bench_live" cpu \
    --flv "$INPUTS/pub720p30_40s.flv" --nginx-rtmp "$NGINX_RTMP" --nginx-pid "$NGINX_PID" \
    --streams "${BENCH_STREAMS:-10}" --secs "${BENCH_SECS:-30}"
}

check_tools
make_inputs
log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
case "$WHAT" in
  transcode) bench_transcode ;;
  latency) bench_latency ;;
  cpu) bench_cpu ;;
  all) bench_transcode; bench_latency; bench_cpu ;;
esac
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
