#!/usr/bin/env bash
# Browser tests (run by scripts/test.sh, or alone: bash scripts/tests.d/browser.sh).
# Starts the whole platform on free ports (its own MariaDB, SecantusDB, s3s-fs, NATS, services,
# bff, the transcode worker and the edge), publishes a 720p30 test stream with ffmpeg over
# RTMP, and runs `node --test web/tests/`: headless Chromium (playwright-core,
# /usr/bin/chromium) plays the live stream and then its recording through the edge; then
# web/tests/protected.test.mjs: a subscribers-only broadcast watched with 20 s playback
# tokens; then web/tests/lowlatency.test.mjs: 60 s of low-latency HLS (parts, blocking reloads)
# through the edge, with the latency printed. Live broadcasts are low-latency HLS here, as in
# scripts/up.sh (CAUDAL_LL_PART_SECS). Prints `browser: N passed, M failed` last and exits
# non-zero on any failure. About 10 minutes.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$CAUDAL_ROOT/scripts/platform.sh"
cd "$CAUDAL_ROOT"

PUBLISH_SECS=${CAUDAL_TEST_PUBLISH_SECS:-40}
STATE="$CAUDAL_ROOT/.caudal/browser-$$"
rm -rf "$STATE" && mkdir -p "$STATE/logs"
status=1
summary="browser: 0 passed, 1 failed"
cleanup() {
  stop_all
  if [ "$status" -ne 0 ]; then
    for f in "$STATE"/logs/*.log; do
      [ -s "$f" ] || continue
      echo "----- last lines of $(basename "$f")"
      tail -n 15 "$f"
    done
  fi
  rm -rf "$STATE"
  echo "$summary"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

install_deps
[ -d web/node_modules/playwright-core ] || die "web/node_modules is incomplete: run (cd web && npm ci)"
cargo build --workspace --bins --locked -q
[ -x target/debug/bff ] || die "target/debug/bff was not built"
[ -f cdn-config/render.sh ] || die "cdn-config/render.sh is missing: no edge to test through"

# Prometheus and the edge's exporters are monitoring.sh's to test; here they would only add
# processes and ports (the edge's stub_status port is picked free, then bound later by nginx)
export CAUDAL_MONITORING=off
platform_free_ports
# every test signs people up and in from 127.0.0.1: the per-address limits would trip on the
# tests' own pace (the per-account limit on failed log-ins stays, and app.test.mjs trips it)
export CAUDAL_BFF_RATE_LIMIT__AUTH_BURST=500 CAUDAL_BFF_RATE_LIMIT__AUTH_PER_MINUTE=500
export CAUDAL_USER_RATE_LIMIT__LOGIN_ADDRESS_BURST=500 CAUDAL_USER_RATE_LIMIT__LOGIN_ADDRESS_PER_MINUTE=500
export CAUDAL_USER_RATE_LIMIT__SIGNUP_ADDRESS_BURST=500 CAUDAL_USER_RATE_LIMIT__SIGNUP_ADDRESS_PER_MINUTE=500
# short playback tokens: the tests watch long enough to see several renewals
export CAUDAL_BFF_PLAYBACK__TOKEN_TTL_SECS=${CAUDAL_TEST_TOKEN_TTL_SECS:-20}
# uploads are packaged as CMAF (init section + .m4s) here too (upload.test.mjs checks hls.js
# fetched them); live is CMAF with parts (the platform's default)
export CAUDAL_WORKER_TRANSCODE__SEGMENT_FORMAT=fmp4
start_platform "$STATE"

log "publishing a ${PUBLISH_SECS} s 720p30 test stream"
ffmpeg -hide_banner -loglevel warning -nostdin -re \
  -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$PUBLISH_SECS" \
  -c:v libx264 -preset ultrafast -tune zerolatency -g 60 -pix_fmt yuv420p -c:a aac \
  -f flv "rtmp://127.0.0.1:$CAUDAL_RTMP_PORT/live/$DEMO_KEY" >"$STATE/logs/ffmpeg.log" 2>&1 &
CAUDAL_PIDS+=($!)

export CAUDAL_BFF_URL="http://127.0.0.1:$CAUDAL_BFF_PORT" CAUDAL_EDGE_URL="http://127.0.0.1:$CAUDAL_EDGE_PORT"
export CAUDAL_TEST_PUBLISH_SECS="$PUBLISH_SECS" CAUDAL_TEST_TOKEN_TTL_SECS="$CAUDAL_BFF_PLAYBACK__TOKEN_TTL_SECS"
export CAUDAL_RTMP_URL="rtmp://127.0.0.1:$CAUDAL_RTMP_PORT/live"
passed=0 failed=0
# one file after the other: watch.test.mjs needs the demo broadcast started above, which
# protected.test.mjs (its own broadcast, about 4 minutes) would outlast
for file in ${CAUDAL_BROWSER_TESTS:-web/tests/watch.test.mjs web/tests/protected.test.mjs web/tests/lowlatency.test.mjs web/tests/upload.test.mjs web/tests/app.test.mjs}; do
  log "running the browser tests in $file"
  tap="$STATE/node-test-$(basename "$file").tap"
  node_status=0
  timeout 420 node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    "$file" || node_status=$?
  p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" 2>/dev/null | tail -n1)
  f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" 2>/dev/null | tail -n1)
  p=${p:-0} f=${f:-0}
  # node itself failing (a crash, the timeout) with no failed test counted is a failure too
  if [ "$node_status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)) failed=$((failed + f))
done
summary="browser: $passed passed, $failed failed"
if [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; then status=0; fi
exit "$status"
