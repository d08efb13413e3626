#!/usr/bin/env bash
# Low-latency HLS at scale (a benchmark: figures, no assertions). Starts the whole platform
# (scripts/platform.sh: ingest's live origin behind the nginx edge, parts of CAUDAL_LL_PART_SECS),
# publishes one 640x360 stream (one rung) with ffmpeg and runs bench/edge/ll_viewers.py:
# BENCH_VIEWERS (1000) simulated hls.js viewers in lowLatencyMode for BENCH_SECS (60) through
# the edge. Prints blocking-reload and part fetch times, how far apart viewers got each part,
# failed requests and the live origin's requests per part. About 3 minutes.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$CAUDAL_ROOT/scripts/platform.sh"
cd "$CAUDAL_ROOT"

VIEWERS=${BENCH_VIEWERS:-1000}
SECS=${BENCH_SECS:-60}
STATE=$(mktemp -d "${TMPDIR:-/tmp}/caudal-bench-ll.XXXXXX")
cleanup() { stop_all; rm -rf "$STATE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

install_deps
log "building"
cargo build --workspace --bins --locked -q
export CAUDAL_MONITORING=off
platform_free_ports
export CAUDAL_BFF_PLAYBACK__TOKEN_TTL_SECS=7200
start_platform "$STATE"

log "publishing a 640x360 stream for $((SECS + 60)) s"
ffmpeg -hide_banner -loglevel error -nostdin -re \
  -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$((SECS + 60))" \
  -c:v libx264 -preset ultrafast -tune zerolatency -g 60 -pix_fmt yuv420p -c:a aac \
  -f flv "rtmp://127.0.0.1:$CAUDAL_RTMP_PORT/live/$DEMO_KEY" >"$STATE/logs/ffmpeg.log" 2>&1 &
CAUDAL_PIDS+=($!)

id=""
for _ in $(seq 1 60); do
  id=$(curl -fsS "http://127.0.0.1:$CAUDAL_INGEST_HTTP_PORT/v1/streams" | python3 -c 'import json,sys; l=json.load(sys.stdin); print(l[0]["video_id"] if l else "")')
  [ -n "$id" ] && curl -fsS -o /dev/null "http://127.0.0.1:$CAUDAL_INGEST_HTTP_PORT/live/$id/ll.m3u8" && break
  sleep 1
done
[ -n "$id" ] || die "the stream did not go live"
sleep 5 # a few segments in the window
log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 bench/edge/ll_viewers.py --edge-port "$CAUDAL_EDGE_PORT" --key "live/$id/ll.m3u8" \
  --keys-file "$STATE/playback-keys" --metrics "http://127.0.0.1:$((CAUDAL_METRICS_BASE + 1))/metrics" \
  --viewers "$VIEWERS" --duration "$SECS"
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
