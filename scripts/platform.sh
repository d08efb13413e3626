# shellcheck shell=bash
# start_platform STATE: starts the servers (MariaDB, SecantusDB, s3s-fs, NATS) and every Caudal
# service from target/debug (the transcode worker included) on the ports in the CAUDAL_*_PORT
# variables (defaults below), data under STATE. Sets DEMO_KEY, MEDIA_AT. Used by scripts/up.sh
# and by the browser and cluster tests. With CAUDAL_CLUSTER=on, the cluster (scripts/cluster.sh).

source "$CAUDAL_ROOT/scripts/cluster.sh"

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
  # (cluster mode, below: off unless asked for, since it scrapes the first instances only)
  [ "${CAUDAL_CLUSTER:-off}" != on ] || : "${CAUDAL_MONITORING:=off}"
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
  # cluster mode (scripts/cluster.sh): two instances of bff, user-svc, metadata-svc and ingest
  # behind an nginx balancer on the public ports above, a 3-node Garage cluster, a MariaDB
  # replica, three NATS servers and Redis for shared state. The instances' own ports are
  # CAUDAL_CLUSTER_PORT_BASE +0 to +33. Monitoring scrapes single instances, so it is off by
  # default there.
  : "${CAUDAL_CLUSTER:=off}" "${CAUDAL_CLUSTER_PORT_BASE:=18100}"
  : "${CAUDAL_MYSQL_REPLICA_PORT:=13307}" "${CAUDAL_REDIS_PORT:=16379}"
  export CAUDAL_CLUSTER CAUDAL_CLUSTER_PORT_BASE CAUDAL_MYSQL_REPLICA_PORT CAUDAL_REDIS_PORT
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
  # exporter and mtail, then the transcode worker), and the cluster's 34: blocks of free ports
  # that none of the ports above (handed out, not listening yet) falls into
  CAUDAL_METRICS_BASE=$(free_block 8)
  CAUDAL_EDGE_STATUS_PORT=$((CAUDAL_METRICS_BASE + 4)) CAUDAL_EDGE_EXPORTER_PORT=$((CAUDAL_METRICS_BASE + 5))
  CAUDAL_EDGE_MTAIL_PORT=$((CAUDAL_METRICS_BASE + 6))
  CAUDAL_MYSQL_REPLICA_PORT=$(free_port) CAUDAL_REDIS_PORT=$(free_port)
  CAUDAL_CLUSTER_PORT_BASE=$(free_block 34)
  platform_defaults
}

start_platform() {
  local STATE=$1 i n=1
  platform_defaults
  mkdir -p "$STATE/logs"
  if [ "$CAUDAL_CLUSTER" = on ]; then
    n=2
    cluster_ports
    # the primary writes a binary log from its first start; the replica replays it by GTID
    start_mariadb "$STATE/mysql" "$CAUDAL_MYSQL_PORT" 1
    start_mariadb_replica "$STATE/mysql-replica" "$CAUDAL_MYSQL_REPLICA_PORT" "$CAUDAL_MYSQL_PORT" "$CAUDAL_MYSQL_ROOT_SOCKET"
    start_redis "$STATE/redis" "$CAUDAL_REDIS_PORT"
    start_garage_cluster "$STATE/garage" "${CLUSTER_GARAGE_S3[@]}" "$CLUSTER_GARAGE_RPC_BASE"
    # every client of the store goes through the balancer, which passes over a lost node
    export CAUDAL_S3_ENDPOINT="http://127.0.0.1:$CAUDAL_S3_PORT"
    export CAUDAL_S3_ACCESS_KEY=$CAUDAL_GARAGE_ACCESS_KEY CAUDAL_S3_SECRET_KEY=$CAUDAL_GARAGE_SECRET_KEY
    CAUDAL_STORAGE=s3
    start_balancer "$STATE/balancer"
  else
    start_mariadb "$STATE/mysql" "$CAUDAL_MYSQL_PORT"
    start_s3 "$STATE/s3" "$CAUDAL_S3_PORT"
    mkdir -p "$STATE/s3/data/media"
  fi
  start_mongo "$STATE/mongo" "$CAUDAL_MONGO_PORT"
  # the transcode job queue (bff enqueues finished uploads, the worker pulls them); its
  # JetStream store in STATE/nats/js is kept between runs. In a cluster, three servers keep
  # three replicas of every job (STATE/nats-cluster).
  if [ "$CAUDAL_CLUSTER" = on ]; then
    start_nats_cluster "$STATE/nats-cluster" "$CAUDAL_NATS_PORT" "${CLUSTER_NATS_PORTS[@]}" "$CLUSTER_NATS_ROUTE_BASE"
    export CAUDAL_INGEST_JOBS__REPLICAS=3 CAUDAL_BFF_UPLOADS__JOBS__REPLICAS=3 CAUDAL_WORKER_JOBS__REPLICAS=3
  else
    start_nats "$STATE/nats" "$CAUDAL_NATS_PORT"
  fi

  # secrets made once and kept
  [ -s "$STATE/jwt-secret" ] || head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$STATE/jwt-secret"
  [ -s "$STATE/demo-stream-key" ] || echo "live_demo_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/demo-stream-key"
  DEMO_KEY=$(cat "$STATE/demo-stream-key")
  # playback-token keys shared by bff (signs) and the edge (verifies): kid=secret
  [ -s "$STATE/playback-keys" ] || (umask 077 && echo "k1=$(head -c 36 /dev/urandom | base64 | tr -d '\n/+=')" >"$STATE/playback-keys")
  export CAUDAL_PLAYBACK_KEYS_FILE="$STATE/playback-keys"
  BIN="$CAUDAL_ROOT/target/debug"
  # services reach each other at the public ports: the instance itself alone, the balancer
  # in a cluster
  local user_url="http://127.0.0.1:$CAUDAL_USER_PORT" metadata_url="http://127.0.0.1:$CAUDAL_METADATA_PORT"

  export CAUDAL_USER_DATABASE_URL="$CAUDAL_MYSQL_URL" CAUDAL_USER_JWT_SECRET_FILE="$STATE/jwt-secret"
  # the local payment provider (no real money) is for this development stack only; its test
  # cards (the checkout's 4000 0000 0000 0002 declines) work here as in a provider's test mode
  export CAUDAL_USER_PAYMENT__LOCAL_ENABLED=true CAUDAL_USER_PAYMENT__TEST_TOKENS="${CAUDAL_USER_PAYMENT__TEST_TOKENS:-true}"
  export CAUDAL_USER_DEMO__ENABLED=true CAUDAL_USER_DEMO__EMAIL=demo@caudal.local CAUDAL_USER_DEMO__PASSWORD=demo-password-123
  export CAUDAL_USER_DEMO__DISPLAY_NAME="Demo Creator" CAUDAL_USER_DEMO__STREAM_KEY="$DEMO_KEY"
  if [ "$n" = 2 ]; then
    # lag-tolerant reads on the replica; rate limits and read-your-writes marks in Redis;
    # bff's X-Forwarded-For comes through the balancer, which appends one more address
    export CAUDAL_USER_REPLICA_DATABASE_URL="$CAUDAL_MYSQL_REPLICA_URL" CAUDAL_USER_SHARED_STATE_URL="$CAUDAL_REDIS_URL"
    export CAUDAL_USER_RATE_LIMIT__FORWARDED_HOPS=2
  fi
  for ((i = 1; i <= n; i++)); do
    CAUDAL_USER_LISTEN="127.0.0.1:$(instance_port USER "$i")" CAUDAL_USER_METRICS_LISTEN="127.0.0.1:$(instance_metrics 2 "$i")" \
      start_bg "user-svc$(suffix "$i")" "$STATE/logs/user-svc$(suffix "$i").log" "$BIN/user-svc"
    # the first instance runs the migrations alone
    wait_port 127.0.0.1 "$(instance_port USER "$i")" 60 "user-svc$(suffix "$i")"
  done

  export CAUDAL_METADATA_MONGO_URL="$CAUDAL_MONGO_URL"
  [ "$n" = 1 ] || export CAUDAL_METADATA_SHARED_STATE_URL="$CAUDAL_REDIS_URL"
  for ((i = 1; i <= n; i++)); do
    CAUDAL_METADATA_LISTEN="127.0.0.1:$(instance_port METADATA "$i")" CAUDAL_METADATA_METRICS_LISTEN="127.0.0.1:$(instance_metrics 3 "$i")" \
      start_bg "metadata-svc$(suffix "$i")" "$STATE/logs/metadata-svc$(suffix "$i").log" "$BIN/metadata-svc"
  done
  for ((i = 1; i <= n; i++)); do wait_port 127.0.0.1 "$(instance_port METADATA "$i")" 60 "metadata-svc$(suffix "$i")"; done

  export CAUDAL_INGEST_USER_SVC_URL="$user_url" CAUDAL_INGEST_METADATA_SVC_URL="$metadata_url"
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
    MEDIA_AT="s3://media on $CAUDAL_S3_ENDPOINT"
    if [ "$n" = 2 ]; then MEDIA_AT+=" (Garage, 3 nodes, data under $STATE/garage)"; else MEDIA_AT+=" (files under $STATE/s3/data/media)"; fi
  else
    for store in CAUDAL_INGEST_STORAGE CAUDAL_BFF_UPLOADS__STORAGE CAUDAL_WORKER_STORAGE; do
      export "${store}__BACKEND=local" "${store}__ROOT=$STATE/media"
    done
    MEDIA_AT="$STATE/media"
  fi
  # a recorded broadcast queues its poster and storyboard job for the worker
  export CAUDAL_INGEST_JOBS__URL="$CAUDAL_NATS_URL"
  # key leases, heartbeats and live origins shared in Redis: one publisher per key across
  # instances, and any instance answers for any broadcast's live edge
  # The rule for a second publisher of a live key must not depend on which instance the
  # balancer picked: alone, a newer publisher takes over (an encoder reconnecting before its
  # old connection timed out); in a cluster it is refused everywhere, and a reconnecting
  # encoder gets in once its old connection is gone (OBS keeps retrying), continuing the video.
  [ "$n" = 1 ] || export CAUDAL_INGEST_SHARED_STATE_URL="$CAUDAL_REDIS_URL" CAUDAL_INGEST_TAKEOVER=false
  local ingest_urls="" port
  for ((i = 1; i <= n; i++)); do
    port=$(instance_port INGEST_HTTP "$i")
    ingest_urls+="${ingest_urls:+,}\"http://127.0.0.1:$port\""
    CAUDAL_INGEST_RTMP_LISTEN="127.0.0.1:$(instance_port RTMP "$i")" CAUDAL_INGEST_HTTP_LISTEN="127.0.0.1:$port" \
      CAUDAL_INGEST_METRICS_LISTEN="127.0.0.1:$(instance_metrics 1 "$i")" CAUDAL_INGEST_TRANSCODE__SPOOL_DIR="$STATE/spool$(suffix "$i")" \
      CAUDAL_INGEST_INSTANCE_ID="ingest$i" CAUDAL_INGEST_ORIGIN_URL="http://127.0.0.1:$port" \
      start_bg "ingest-rtmp$(suffix "$i")" "$STATE/logs/ingest-rtmp$(suffix "$i").log" "$BIN/ingest-rtmp"
  done
  for ((i = 1; i <= n; i++)); do wait_port 127.0.0.1 "$(instance_port RTMP "$i")" 60 "ingest-rtmp$(suffix "$i")"; done

  if [ -x "$BIN/bff" ]; then
    export CAUDAL_BFF_USER_SVC_URL="$user_url" CAUDAL_BFF_METADATA_SVC_URL="$metadata_url"
    export CAUDAL_BFF_EDGE_URL="http://127.0.0.1:$CAUDAL_EDGE_PORT" CAUDAL_BFF_PLAYBACK__KEYS_FILE="$STATE/playback-keys"
    export CAUDAL_BFF_INGEST_URLS="[$ingest_urls]"
    # resumable uploads (tus, /v1/uploads): on once the job queue's URL is set
    export CAUDAL_BFF_UPLOADS__JOBS__URL="$CAUDAL_NATS_URL"
    if [ "$n" = 2 ]; then
      # an upload's state lives in the store, so a tus PATCH may reach either instance
      export CAUDAL_BFF_SHARED_STATE_URL="$CAUDAL_REDIS_URL" CAUDAL_BFF_RATE_LIMIT__FORWARDED_HOPS=1
    fi
    for ((i = 1; i <= n; i++)); do
      CAUDAL_BFF_LISTEN="127.0.0.1:$(instance_port BFF "$i")" CAUDAL_BFF_METRICS_LISTEN="127.0.0.1:$(instance_metrics 0 "$i")" \
        start_bg "bff$(suffix "$i")" "$STATE/logs/bff$(suffix "$i").log" "$BIN/bff"
    done
    for ((i = 1; i <= n; i++)); do wait_port 127.0.0.1 "$(instance_port BFF "$i")" 60 "bff$(suffix "$i")"; done
  fi
  if [ -x "$BIN/transcoder" ]; then
    # the transcode worker: pulls upload jobs from NATS, writes vod/<id>/, marks the video
    # ready (or failed with a reason) in metadata-svc
    export CAUDAL_WORKER_METRICS_LISTEN="127.0.0.1:$((CAUDAL_METRICS_BASE + 7))"
    export CAUDAL_WORKER_METADATA_SVC_URL="$metadata_url"
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

# suffix I: "" for a single instance, "-I" in a cluster (log and process names)
suffix() { [ "$CAUDAL_CLUSTER" = on ] && echo "-$1" || true; }

# instance_port SERVICE I: where instance I of SERVICE (BFF, USER, METADATA, INGEST_HTTP, RTMP)
# listens: the public port alone, its own port behind the balancer in a cluster
instance_port() {
  local var="CAUDAL_${1}_PORT"
  if [ "$CAUDAL_CLUSTER" != on ]; then echo "${!var}"; return; fi
  local -A offset=([BFF]=0 [USER]=2 [METADATA]=4 [INGEST_HTTP]=6 [RTMP]=8)
  echo $((CAUDAL_CLUSTER_PORT_BASE + ${offset[$1]} + $2 - 1))
}

# instance_metrics K I: the metrics port of instance I of the service at offset K from the
# metrics base (bff 0, ingest 1, user-svc 2, metadata-svc 3); second instances after the cluster's
# instance ports
instance_metrics() {
  if [ "$2" = 1 ]; then echo $((CAUDAL_METRICS_BASE + $1)); else echo $((CAUDAL_CLUSTER_PORT_BASE + 10 + $1)); fi
}

# cluster_ports: the balancer's upstreams, the Garage nodes' and the NATS servers' ports, from
# CAUDAL_CLUSTER_PORT_BASE (instances +0..+9, second instances' metrics +10..+13, Garage S3
# +20..+22, RPC +23..+25, admin +26..+28; NATS servers 2 and 3 +29/+30, the three's routes
# +31..+33; NATS server 1 is on CAUDAL_NATS_PORT)
cluster_ports() {
  local s i
  for s in BFF USER METADATA INGEST_HTTP RTMP; do
    local ups=""
    for i in 1 2; do ups+="${ups:+ }127.0.0.1:$(instance_port "$s" "$i")"; done
    export "CLUSTER_${s}_UPSTREAMS=$ups"
  done
  CLUSTER_GARAGE_S3=($((CAUDAL_CLUSTER_PORT_BASE + 20)) $((CAUDAL_CLUSTER_PORT_BASE + 21)) $((CAUDAL_CLUSTER_PORT_BASE + 22)))
  CLUSTER_GARAGE_RPC_BASE=$((CAUDAL_CLUSTER_PORT_BASE + 23))
  export CLUSTER_S3_UPSTREAMS="127.0.0.1:${CLUSTER_GARAGE_S3[0]} 127.0.0.1:${CLUSTER_GARAGE_S3[1]} 127.0.0.1:${CLUSTER_GARAGE_S3[2]}"
  CLUSTER_NATS_PORTS=($((CAUDAL_CLUSTER_PORT_BASE + 29)) $((CAUDAL_CLUSTER_PORT_BASE + 30)))
  CLUSTER_NATS_ROUTE_BASE=$((CAUDAL_CLUSTER_PORT_BASE + 31))
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
