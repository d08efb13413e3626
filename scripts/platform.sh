# shellcheck shell=bash
# start_platform STATE: starts the servers (MariaDB, SecantusDB, s3s-fs, NATS) and every Caudal
# service from target/debug (the transcode worker included) on the ports in the CAUDAL_*_PORT
# variables (defaults below), data under STATE. Sets DEMO_KEY, MEDIA_AT. Used by scripts/up.sh
# and by the browser tests.

platform_defaults() {
  : "${CAUDAL_MYSQL_PORT:=13306}" "${CAUDAL_MONGO_PORT:=27018}" "${CAUDAL_S3_PORT:=19000}"
  : "${CAUDAL_RTMP_PORT:=1935}" "${CAUDAL_INGEST_HTTP_PORT:=8081}" "${CAUDAL_USER_PORT:=8082}"
  : "${CAUDAL_METADATA_PORT:=8083}" "${CAUDAL_BFF_PORT:=8080}" "${CAUDAL_EDGE_PORT:=8090}"
  : "${CAUDAL_NATS_PORT:=4222}" # nats-server with JetStream: the transcode job queue
  # metrics ports from the base: bff +0, ingest-rtmp +1, user-svc +2, metadata-svc +3, the
  # edge's stub_status +4, nginx exporter +5 and mtail +6, the transcode worker +7
  : "${CAUDAL_METRICS_BASE:=9080}"
  # monitoring (infra/monitoring): Prometheus, and the edge's stub_status, nginx exporter and mtail
  # on the metrics ports after the services' four (+4 to +6)
  : "${CAUDAL_MONITORING:=on}" "${CAUDAL_PROMETHEUS_PORT:=9090}"
  : "${CAUDAL_EDGE_STATUS_PORT:=$((CAUDAL_METRICS_BASE + 4))}" "${CAUDAL_EDGE_EXPORTER_PORT:=$((CAUDAL_METRICS_BASE + 5))}"
  : "${CAUDAL_EDGE_MTAIL_PORT:=$((CAUDAL_METRICS_BASE + 6))}"
  : "${CAUDAL_STORAGE:=s3}" # s3 (the S3-compatible server) or local (a folder)
  # live broadcasts as low-latency HLS: CMAF segments cut into parts of this many seconds,
  # served by ingest's live origin through the edge (0: standard HLS, MPEG-TS segments)
  : "${CAUDAL_LL_PART_SECS:=0.5}"
  # who collapses a crowd's low-latency requests into one origin request: varnish (the live
  # tier, cdn-config/live.vcl.template, on CAUDAL_LIVE_CACHE_PORT) or nginx (its cache lock)
  : "${CAUDAL_EDGE_LIVE_COLLAPSE:=varnish}" "${CAUDAL_LIVE_CACHE_PORT:=8091}"
  export CAUDAL_MYSQL_PORT CAUDAL_MONGO_PORT CAUDAL_S3_PORT CAUDAL_RTMP_PORT CAUDAL_INGEST_HTTP_PORT \
    CAUDAL_USER_PORT CAUDAL_METADATA_PORT CAUDAL_BFF_PORT CAUDAL_EDGE_PORT CAUDAL_NATS_PORT CAUDAL_METRICS_BASE CAUDAL_STORAGE \
    CAUDAL_MONITORING CAUDAL_PROMETHEUS_PORT CAUDAL_EDGE_STATUS_PORT CAUDAL_EDGE_EXPORTER_PORT CAUDAL_EDGE_MTAIL_PORT CAUDAL_LL_PART_SECS \
    CAUDAL_EDGE_LIVE_COLLAPSE CAUDAL_LIVE_CACHE_PORT
}

# platform_free_ports: every port picked free (tests)
platform_free_ports() {
  CAUDAL_MYSQL_PORT=$(free_port) CAUDAL_MONGO_PORT=$(free_port) CAUDAL_S3_PORT=$(free_port)
  CAUDAL_RTMP_PORT=$(free_port) CAUDAL_INGEST_HTTP_PORT=$(free_port) CAUDAL_USER_PORT=$(free_port)
  CAUDAL_METADATA_PORT=$(free_port) CAUDAL_BFF_PORT=$(free_port) CAUDAL_EDGE_PORT=$(free_port)
  CAUDAL_PROMETHEUS_PORT=$(free_port) CAUDAL_NATS_PORT=$(free_port) CAUDAL_LIVE_CACHE_PORT=$(free_port)
  # eight metrics ports from the base (four services, then the edge's stub_status, nginx
  # exporter and mtail, then the transcode worker): free, and none of them one of the ports above
  local taken=" $CAUDAL_MYSQL_PORT $CAUDAL_MONGO_PORT $CAUDAL_S3_PORT $CAUDAL_RTMP_PORT $CAUDAL_INGEST_HTTP_PORT $CAUDAL_USER_PORT $CAUDAL_METADATA_PORT $CAUDAL_BFF_PORT $CAUDAL_EDGE_PORT $CAUDAL_PROMETHEUS_PORT $CAUDAL_NATS_PORT $CAUDAL_LIVE_CACHE_PORT " i ok
  while :; do
    CAUDAL_METRICS_BASE=$(( $(free_port) / 10 * 10 ))
    ok=1
    for i in 0 1 2 3 4 5 6 7; do
      [[ "$taken" == *" $((CAUDAL_METRICS_BASE + i)) "* ]] && ok=0
      (exec 3<>"/dev/tcp/127.0.0.1/$((CAUDAL_METRICS_BASE + i))") 2>/dev/null && ok=0
    done
    [ "$ok" = 1 ] && break
  done
  CAUDAL_EDGE_STATUS_PORT=$((CAUDAL_METRICS_BASE + 4)) CAUDAL_EDGE_EXPORTER_PORT=$((CAUDAL_METRICS_BASE + 5))
  CAUDAL_EDGE_MTAIL_PORT=$((CAUDAL_METRICS_BASE + 6))
  platform_defaults
}

start_platform() {
  local STATE=$1
  platform_defaults
  mkdir -p "$STATE/logs"
  start_mariadb "$STATE/mysql" "$CAUDAL_MYSQL_PORT"
  start_mongo "$STATE/mongo" "$CAUDAL_MONGO_PORT"
  start_s3 "$STATE/s3" "$CAUDAL_S3_PORT"
  mkdir -p "$STATE/s3/data/media"
  # the transcode job queue (bff enqueues finished uploads, the worker pulls them); its
  # JetStream store in STATE/nats/js is kept between runs
  start_nats "$STATE/nats" "$CAUDAL_NATS_PORT"

  # secrets made once and kept
  [ -s "$STATE/jwt-secret" ] || head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$STATE/jwt-secret"
  [ -s "$STATE/demo-stream-key" ] || echo "live_demo_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/demo-stream-key"
  DEMO_KEY=$(cat "$STATE/demo-stream-key")
  # playback-token keys shared by bff (signs) and the edge (verifies): kid=secret
  [ -s "$STATE/playback-keys" ] || (umask 077 && echo "k1=$(head -c 36 /dev/urandom | base64 | tr -d '\n/+=')" >"$STATE/playback-keys")
  export CAUDAL_PLAYBACK_KEYS_FILE="$STATE/playback-keys"
  BIN="$CAUDAL_ROOT/target/debug"

  export CAUDAL_USER_LISTEN="127.0.0.1:$CAUDAL_USER_PORT" CAUDAL_USER_METRICS_LISTEN="127.0.0.1:$((CAUDAL_METRICS_BASE + 2))"
  export CAUDAL_USER_DATABASE_URL="$CAUDAL_MYSQL_URL" CAUDAL_USER_JWT_SECRET_FILE="$STATE/jwt-secret"
  # the local payment provider (no real money) is for this development stack only; its test
  # cards (the checkout's 4000 0000 0000 0002 declines) work here as in a provider's test mode
  export CAUDAL_USER_PAYMENT__LOCAL_ENABLED=true CAUDAL_USER_PAYMENT__TEST_TOKENS="${CAUDAL_USER_PAYMENT__TEST_TOKENS:-true}"
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
  if [ "${CAUDAL_LL_PART_SECS:-0}" != 0 ]; then
    export CAUDAL_INGEST_TRANSCODE__SEGMENT_FORMAT=fmp4 CAUDAL_INGEST_TRANSCODE__PART_SECS="$CAUDAL_LL_PART_SECS"
  fi
  # bff (uploads) and the transcode worker use the same store as ingest: bff writes originals
  # to uploads/<id>/source (never served by the edge), the worker writes vod/<id>/
  local store
  if [ "$CAUDAL_STORAGE" = s3 ]; then
    for store in CAUDAL_INGEST_STORAGE CAUDAL_BFF_UPLOADS__STORAGE CAUDAL_WORKER_STORAGE; do
      export "${store}__BACKEND=s3" "${store}__ENDPOINT=$CAUDAL_S3_ENDPOINT"
      export "${store}__REGION=us-east-1" "${store}__BUCKET=media" "${store}__PATH_STYLE=true"
      export "${store}__ACCESS_KEY_ID=$CAUDAL_S3_ACCESS_KEY" "${store}__SECRET_ACCESS_KEY=$CAUDAL_S3_SECRET_KEY"
      export "${store}__CREATE_BUCKET=true"
    done
    MEDIA_AT="s3://media on $CAUDAL_S3_ENDPOINT (files under $STATE/s3/data/media)"
  else
    for store in CAUDAL_INGEST_STORAGE CAUDAL_BFF_UPLOADS__STORAGE CAUDAL_WORKER_STORAGE; do
      export "${store}__BACKEND=local" "${store}__ROOT=$STATE/media"
    done
    MEDIA_AT="$STATE/media"
  fi
  # a recorded broadcast queues its poster and storyboard job for the worker
  export CAUDAL_INGEST_JOBS__URL="$CAUDAL_NATS_URL"
  start_bg ingest-rtmp "$STATE/logs/ingest-rtmp.log" "$BIN/ingest-rtmp"
  wait_port 127.0.0.1 "$CAUDAL_RTMP_PORT" 60 ingest-rtmp

  if [ -x "$BIN/bff" ]; then
    export CAUDAL_BFF_LISTEN="127.0.0.1:$CAUDAL_BFF_PORT" CAUDAL_BFF_METRICS_LISTEN="127.0.0.1:$CAUDAL_METRICS_BASE"
    export CAUDAL_BFF_USER_SVC_URL="http://127.0.0.1:$CAUDAL_USER_PORT" CAUDAL_BFF_METADATA_SVC_URL="http://127.0.0.1:$CAUDAL_METADATA_PORT"
    export CAUDAL_BFF_EDGE_URL="http://127.0.0.1:$CAUDAL_EDGE_PORT" CAUDAL_BFF_PLAYBACK__KEYS_FILE="$STATE/playback-keys"
    export CAUDAL_BFF_INGEST_URLS="[\"http://127.0.0.1:$CAUDAL_INGEST_HTTP_PORT\"]"
    # resumable uploads (tus, /v1/uploads): on once the job queue's URL is set
    export CAUDAL_BFF_UPLOADS__JOBS__URL="$CAUDAL_NATS_URL"
    start_bg bff "$STATE/logs/bff.log" "$BIN/bff"
    wait_port 127.0.0.1 "$CAUDAL_BFF_PORT" 60 bff
  fi
  if [ -x "$BIN/transcoder" ]; then
    # the transcode worker: pulls upload jobs from NATS, writes vod/<id>/, marks the video
    # ready (or failed with a reason) in metadata-svc
    export CAUDAL_WORKER_METRICS_LISTEN="127.0.0.1:$((CAUDAL_METRICS_BASE + 7))"
    export CAUDAL_WORKER_METADATA_SVC_URL="http://127.0.0.1:$CAUDAL_METADATA_PORT"
    export CAUDAL_WORKER_JOBS__URL="$CAUDAL_NATS_URL" CAUDAL_WORKER_WORK_DIR="$STATE/worker"
    export CAUDAL_WORKER_TRANSCODE__SPOOL_DIR="$STATE/worker-spool"
    start_bg worker "$STATE/logs/worker.log" "$BIN/transcoder" worker
    wait_port 127.0.0.1 "$((CAUDAL_METRICS_BASE + 7))" 60 "transcoder worker"
  fi
  if [ -f "$CAUDAL_ROOT/cdn-config/render.sh" ]; then
    # with monitoring, the edge also serves its stub_status (loopback only) for the exporter
    local status_port=""
    [ "$CAUDAL_MONITORING" = off ] || status_port=$CAUDAL_EDGE_STATUS_PORT
    # low-latency HLS: ingest's live origin, behind the Varnish live tier unless nginx collapses
    local live_origin="127.0.0.1:$CAUDAL_INGEST_HTTP_PORT"
    if [ "$CAUDAL_EDGE_LIVE_COLLAPSE" = varnish ]; then
      bash "$CAUDAL_ROOT/cdn-config/render-live.sh" "$STATE/live-tier" "$live_origin" >"$STATE/logs/live-tier-render.log" 2>&1 ||
        die "cdn-config/render-live.sh failed: see $STATE/logs/live-tier-render.log"
      port_free "$CAUDAL_LIVE_CACHE_PORT" "the live tier (varnishd)"
      start_bg live-tier "$STATE/logs/live-tier.log" varnishd -F -j none -n "$STATE/live-tier/varnish" \
        -a "127.0.0.1:$CAUDAL_LIVE_CACHE_PORT" -f "$STATE/live-tier/live.vcl" -s malloc,256m
      wait_port 127.0.0.1 "$CAUDAL_LIVE_CACHE_PORT" 30 "live tier"
      live_origin="127.0.0.1:$CAUDAL_LIVE_CACHE_PORT"
    fi
    CAUDAL_EDGE_LIVE_ORIGIN=$live_origin CAUDAL_EDGE_LIVE_COLLAPSE=$CAUDAL_EDGE_LIVE_COLLAPSE \
      CAUDAL_EDGE_STATUS_PORT=$status_port bash "$CAUDAL_ROOT/cdn-config/render.sh" "$STATE/edge" "$CAUDAL_EDGE_PORT" "$CAUDAL_STORAGE" >"$STATE/logs/edge-render.log" 2>&1
    start_bg edge "$STATE/logs/edge.log" nginx -p "$STATE/edge" -c "$STATE/edge/nginx.conf" -g 'daemon off;'
    wait_port 127.0.0.1 "$CAUDAL_EDGE_PORT" 30 edge
  fi
  [ "$CAUDAL_MONITORING" = off ] || start_monitoring "$STATE"
}

# start_monitoring STATE: the edge's exporters and Prometheus, on loopback. Prometheus's config
# is rendered from infra/monitoring into STATE/prometheus (scraping every service's metrics
# port and the edge's exporters; rules from infra/monitoring/rules), its data in
# STATE/prometheus/data. CAUDAL_MONITORING=off skips all of it.
start_monitoring() {
  local STATE=$1
  if [ -f "$STATE/edge/nginx.conf" ]; then
    start_edge_metrics "$STATE/edge" "$CAUDAL_EDGE_STATUS_PORT" "$CAUDAL_EDGE_EXPORTER_PORT" "$CAUDAL_EDGE_MTAIL_PORT" "$STATE/logs"
  fi
  bash "$CAUDAL_ROOT/infra/monitoring/render.sh" "$STATE/prometheus" >"$STATE/logs/prometheus-render.log" 2>&1 ||
    die "infra/monitoring/render.sh failed: see $STATE/logs/prometheus-render.log"
  start_prometheus "$STATE/prometheus" "$CAUDAL_PROMETHEUS_PORT" "$STATE/prometheus/prometheus.yml" "$STATE/logs/prometheus.log"
  log "monitoring: Prometheus on http://127.0.0.1:$CAUDAL_PROMETHEUS_PORT/ (alerts: /alerts, targets: /targets)"
}
