#!/usr/bin/env bash
# Renders the live tier (Varnish, cdn-config/live.vcl.template) into OUT_DIR/live.vcl and
# checks that it compiles. Run it with
#   varnishd -F -j none -n OUT_DIR/varnish -a 127.0.0.1:PORT -f OUT_DIR/live.vcl -s malloc,256m
# and render the edge with CAUDAL_EDGE_LIVE_COLLAPSE=varnish CAUDAL_EDGE_LIVE_ORIGIN=127.0.0.1:PORT.
#
# usage: render-live.sh OUT_DIR ORIGIN_HOST:PORT   (ORIGIN: ingest's HTTP listener, the live origin)
set -euo pipefail

die() { printf 'render-live.sh: error: %s\n' "$*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: render-live.sh OUT_DIR ORIGIN_HOST:PORT"
OUT_DIR=$1 ORIGIN=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ "$ORIGIN" =~ ^([A-Za-z0-9.-]+):([0-9]{1,5})$ ]] || die "ORIGIN must be HOST:PORT, got '$ORIGIN'"
HOST=${BASH_REMATCH[1]} PORT=${BASH_REMATCH[2]}
command -v varnishd >/dev/null || die "varnishd is not installed (apt-get install varnish)"
mkdir -p "$OUT_DIR"
sed -e "s/{{ORIGIN_HOST}}/$HOST/g" -e "s/{{ORIGIN_PORT}}/$PORT/g" "$HERE/live.vcl.template" >"$OUT_DIR/live.vcl.new"
if grep -q '{{' "$OUT_DIR/live.vcl.new"; then die "unknown placeholder left in live.vcl"; fi
# -C compiles the VCL to C and prints it: a syntax or type error fails here, not at start
varnishd -C -j none -n "$OUT_DIR/varnish-check" -f "$OUT_DIR/live.vcl.new" >/dev/null 2>"$OUT_DIR/vcl-check.log" ||
  die "the rendered VCL does not compile: $(tail -n 5 "$OUT_DIR/vcl-check.log")"
rm -rf "$OUT_DIR/varnish-check" "$OUT_DIR/vcl-check.log"
mv "$OUT_DIR/live.vcl.new" "$OUT_DIR/live.vcl"
echo "render-live.sh: live tier -> live origin $HOST:$PORT; config $OUT_DIR/live.vcl" >&2
