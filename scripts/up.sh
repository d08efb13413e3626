#!/usr/bin/env bash
# Command 1: installs whatever is missing, builds what is not built, and runs the whole
# platform on loopback until Ctrl-C. Data lives in .caudal/run/ and survives restarts.
# Every port can be changed with the environment variables below.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CAUDAL_ROOT"

: "${CAUDAL_MYSQL_PORT:=13306}" "${CAUDAL_MONGO_PORT:=27018}" "${CAUDAL_S3_PORT:=19000}"
: "${CAUDAL_RTMP_PORT:=1935}" "${CAUDAL_INGEST_HTTP_PORT:=8081}" "${CAUDAL_USER_PORT:=8082}"
: "${CAUDAL_METADATA_PORT:=8083}" "${CAUDAL_BFF_PORT:=8080}" "${CAUDAL_EDGE_PORT:=8090}"
: "${CAUDAL_METRICS_BASE:=9080}"
: "${CAUDAL_STORAGE:=s3}" # s3 (the S3-compatible server) or local (a folder)

install_deps
log "building"
cargo build --workspace --bins --locked

STATE="$CAUDAL_ROOT/.caudal/run"
mkdir -p "$STATE/logs"
trap 'log "stopping"; stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

start_mariadb "$STATE/mysql" "$CAUDAL_MYSQL_PORT"
start_mongo "$STATE/mongo" "$CAUDAL_MONGO_PORT"
start_s3 "$STATE/s3" "$CAUDAL_S3_PORT"
mkdir -p "$STATE/s3/data/media"

# secrets made once and kept
[ -s "$STATE/jwt-secret" ] || head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$STATE/jwt-secret"
[ -s "$STATE/demo-stream-key" ] || echo "live_demo_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/demo-stream-key"
DEMO_KEY=$(cat "$STATE/demo-stream-key")
BIN="$CAUDAL_ROOT/target/debug"

export CAUDAL_USER_LISTEN="127.0.0.1:$CAUDAL_USER_PORT" CAUDAL_USER_METRICS_LISTEN="127.0.0.1:$((CAUDAL_METRICS_BASE + 2))"
export CAUDAL_USER_DATABASE_URL="$CAUDAL_MYSQL_URL" CAUDAL_USER_JWT_SECRET_FILE="$STATE/jwt-secret"
export CAUDAL_USER_DEMO__ENABLED=true CAUDAL_USER_DEMO__EMAIL=demo@caudal.local CAUDAL_USER_DEMO__PASSWORD=demo-password-123
export CAUDAL_USER_DEMO__DISPLAY_NAME="Demo Creator" CAUDAL_USER_DEMO__STREAM_KEY="$DEMO_KEY"
start_bg user-svc "$STATE/logs/user-svc.log" "$BIN/user-svc"
wait_port 127.0.0.1 "$CAUDAL_USER_PORT" 60 user-svc

export CAUDAL_METADATA_LISTEN="127.0.0.1:$CAUDAL_METADATA_PORT" CAUDAL_METADATA_METRICS_LISTEN="127.0.0.1:$((CAUDAL_METRICS_BASE + 3))"
export CAUDAL_METADATA_MONGO_URL="$CAUDAL_MONGO_URL"
start_bg metadata-svc "$STATE/logs/metadata-svc.log" "$BIN/metadata-svc"
wait_port 127.0.0.1 "$CAUDAL_METADATA_PORT" 60 metadata-svc

export CAUDAL_INGEST_RTMP_LISTEN="127.0.0.1:$CAUDAL_RTMP_PORT" CAUDAL_INGEST_HTTP_LISTEN="127.0.0.1:$CAUDAL_INGEST_HTTP_PORT"
export CAUDAL_INGEST_METRICS_LISTEN="127.0.0.1:$((CAUDAL_METRICS_BASE + 1))"
export CAUDAL_INGEST_USER_SVC_URL="http://127.0.0.1:$CAUDAL_USER_PORT" CAUDAL_INGEST_METADATA_SVC_URL="http://127.0.0.1:$CAUDAL_METADATA_PORT"
export CAUDAL_INGEST_TRANSCODE__SPOOL_DIR="$STATE/spool"
if [ "$CAUDAL_STORAGE" = s3 ]; then
  export CAUDAL_INGEST_STORAGE__BACKEND=s3 CAUDAL_INGEST_STORAGE__ENDPOINT="$CAUDAL_S3_ENDPOINT"
  export CAUDAL_INGEST_STORAGE__REGION=us-east-1 CAUDAL_INGEST_STORAGE__BUCKET=media CAUDAL_INGEST_STORAGE__PATH_STYLE=true
  export CAUDAL_INGEST_STORAGE__ACCESS_KEY_ID="$CAUDAL_S3_ACCESS_KEY" CAUDAL_INGEST_STORAGE__SECRET_ACCESS_KEY="$CAUDAL_S3_SECRET_KEY"
  export CAUDAL_INGEST_STORAGE__CREATE_BUCKET=true
  MEDIA_AT="s3://media on $CAUDAL_S3_ENDPOINT (files under $STATE/s3/data/media)"
else
  export CAUDAL_INGEST_STORAGE__BACKEND=local CAUDAL_INGEST_STORAGE__ROOT="$STATE/media"
  MEDIA_AT="$STATE/media"
fi
start_bg ingest-rtmp "$STATE/logs/ingest-rtmp.log" "$BIN/ingest-rtmp"
wait_port 127.0.0.1 "$CAUDAL_RTMP_PORT" 60 ingest-rtmp

if [ -x "$BIN/bff" ]; then
  export CAUDAL_BFF_LISTEN="127.0.0.1:$CAUDAL_BFF_PORT" CAUDAL_BFF_METRICS_LISTEN="127.0.0.1:$CAUDAL_METRICS_BASE"
  export CAUDAL_BFF_USER_SVC_URL="http://127.0.0.1:$CAUDAL_USER_PORT" CAUDAL_BFF_METADATA_SVC_URL="http://127.0.0.1:$CAUDAL_METADATA_PORT"
  export CAUDAL_BFF_EDGE_URL="http://127.0.0.1:$CAUDAL_EDGE_PORT"
  start_bg bff "$STATE/logs/bff.log" "$BIN/bff"
  wait_port 127.0.0.1 "$CAUDAL_BFF_PORT" 60 bff
fi
if [ -f "$CAUDAL_ROOT/cdn-config/render.sh" ]; then
  bash "$CAUDAL_ROOT/cdn-config/render.sh" "$STATE/edge" "$CAUDAL_EDGE_PORT" "$CAUDAL_STORAGE" >"$STATE/logs/edge-render.log" 2>&1
  start_bg edge "$STATE/logs/edge.log" nginx -p "$STATE/edge" -c "$STATE/edge/nginx.conf" -g 'daemon off;'
  wait_port 127.0.0.1 "$CAUDAL_EDGE_PORT" 30 edge
fi

cat <<INFO

  Caudal is running. Ctrl-C stops everything.

  Publish (OBS: Settings > Stream > Custom):
    Server      rtmp://127.0.0.1:$CAUDAL_RTMP_PORT/live
    Stream key  $DEMO_KEY        (demo account demo@caudal.local / demo-password-123)
  or with ffmpeg:
    ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine -c:v libx264 -preset veryfast \\
      -g 60 -c:a aac -f flv rtmp://127.0.0.1:$CAUDAL_RTMP_PORT/live/$DEMO_KEY

  HLS output:  $MEDIA_AT
               live/<video id>/master.m3u8 (live), live/<video id>/vod.m3u8 (after the broadcast)
  Live now:    http://127.0.0.1:$CAUDAL_INGEST_HTTP_PORT/v1/streams
  Watch pages: http://127.0.0.1:$CAUDAL_BFF_PORT/    (through the edge at http://127.0.0.1:$CAUDAL_EDGE_PORT/)
  Logs:        $STATE/logs/
INFO
wait
