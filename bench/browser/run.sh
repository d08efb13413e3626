#!/usr/bin/env bash
# Browser benchmarks (figures, not tests): glass-to-glass latency Caudal vs nginx-rtmp, and time
# to first frame of live and recorded videos. See bench/browser/README.md.
#
#   bash bench/browser/run.sh
#
# Starts the whole platform (scripts/platform.sh) and nginx-rtmp on free loopback ports under a
# temp dir, plays both in headless Chromium, prints the figures and cleans up. About 4 minutes.
# Environment: BENCH_SECS (latency sampling window, default 30), BENCH_RUNS (time-to-first-frame
# runs, default 5), BENCH_OUT (also write the raw figures as JSON to this file).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
source "$CAUDAL_ROOT/scripts/platform.sh"
cd "$CAUDAL_ROOT"

NGINX_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
STATE=$(mktemp -d "${TMPDIR:-/tmp}/caudal-bench-browser.XXXXXX")
cleanup() { stop_all; rm -rf "$STATE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

install_deps
[ -f "$NGINX_MODULE" ] || die "$NGINX_MODULE is missing: apt-get install libnginx-mod-rtmp"
log "building"
cargo build --workspace --bins --locked -q

# nginx-rtmp as deployed: hls on, 2 s fragments, 12 s playlist; an http block serves its HLS
# folder with CORS (no cache) on one port and the benchmark page and hls.js on another.
start_nginx_rtmp() {
  local dir="$STATE/nginx" rtmp_port hls_port page_port
  rtmp_port=$(free_port) hls_port=$(free_port) page_port=$(free_port)
  mkdir -p "$dir/hls" "$dir/logs"
  cat >"$dir/nginx.conf" <<EOF
load_module $NGINX_MODULE;
daemon off;
master_process on;
worker_processes 1;
user $(id -un) $(id -gn);
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:$rtmp_port;
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
http {
  access_log off;
  sendfile on;
  types {
    text/html html;
    application/javascript js;
    application/vnd.apple.mpegurl m3u8;
    video/mp2t ts;
  }
  server {
    listen 127.0.0.1:$hls_port;
    location /hls/ {
      alias $dir/hls/;
      add_header Access-Control-Allow-Origin "*" always;
      add_header Cache-Control "no-cache" always;
    }
  }
  server {
    listen 127.0.0.1:$page_port;
    location = /player.html { root $CAUDAL_ROOT/bench/browser; }
    location = /hls.min.js { alias $CAUDAL_ROOT/web/node_modules/hls.js/dist/hls.min.js; }
  }
}
EOF
  nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" || die "nginx config test failed"
  start_bg nginx-rtmp "$dir/logs/stdout.log" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  wait_port 127.0.0.1 "$rtmp_port" 20 nginx-rtmp
  wait_port 127.0.0.1 "$page_port" 20 nginx-http
  export BENCH_NGINX_RTMP="127.0.0.1:$rtmp_port" BENCH_NGINX_HLS_URL="http://127.0.0.1:$hls_port/hls"
  export BENCH_PAGE_URL="http://127.0.0.1:$page_port/player.html"
}

platform_free_ports
# the bench page plays with hls.js alone (no token renewal): tokens outlast the run
export CAUDAL_BFF_PLAYBACK__TOKEN_TTL_SECS=${CAUDAL_BFF_PLAYBACK__TOKEN_TTL_SECS:-7200}
start_platform "$STATE/platform"
[ -f cdn-config/render.sh ] || die "cdn-config/render.sh is missing: Caudal has no edge to measure"
[ -x target/debug/bff ] || die "target/debug/bff is not built: playback URLs (signed) come from bff"
export BENCH_BFF_URL="http://127.0.0.1:$CAUDAL_BFF_PORT"
export DEMO_KEY CAUDAL_ROOT
start_nginx_rtmp

log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(chromium --version 2>/dev/null | tail -n1)"
node "$CAUDAL_ROOT/bench/browser/bench.mjs"
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
