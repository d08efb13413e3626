#!/usr/bin/env bash
# Scale-out benchmarks (issue 14), on the local cluster (CAUDAL_CLUSTER=on) on free ports:
#
# 1. bff's video detail (GET /v1/videos/{id}: identity, catalog, access decision, a signed
#    playback URL) and playback-token issuance (GET /v1/videos/{id}/playback) for a viewer who
#    bought the video, through the balancer with 1 and with 2 instances of bff, user-svc and
#    metadata-svc behind it (the same processes; the balancer's upstreams are cut to the first
#    instance and reloaded): the most requests per second (wrk, closed loop) and the latency at
#    one offered load (hey, BENCH_RATE requests/s in all).
# 2. Segment writes and reads (1 MiB objects, 8 in flight) on the Garage cluster (through the
#    balancer, and at one node) and on s3s-fs, with the services' own S3 client
#    (crates/storage/examples/bench_store.rs).
#
# Everything shares this machine's cores: the load generator, nginx, the services and the
# databases. BENCH_SECS (per run, default 10), BENCH_CONNS (default 16), BENCH_RATE (default 400).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$CAUDAL_ROOT/scripts/platform.sh"
cd "$CAUDAL_ROOT"
SECS=${BENCH_SECS:-10} CONNS=${BENCH_CONNS:-16} RATE=${BENCH_RATE:-400}

install_deps
install_garage
for tool in wrk hey; do
  command -v "$tool" >/dev/null || { log "installing $tool"; apt-get install -y -qq --no-install-recommends "$tool" >/dev/null; }
done
cargo build --workspace --bins --examples --locked -q

export STATE
STATE=$(mktemp -d "${TMPDIR:-/tmp}/caudal-bench-cluster.XXXXXX")
cleanup() { stop_all; pkill -f "$STATE/garage/" 2>/dev/null || true; rm -rf "$STATE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

platform_free_ports
export CAUDAL_CLUSTER=on CAUDAL_MONITORING=off
export CAUDAL_BFF_RATE_LIMIT__AUTH_BURST=100000 CAUDAL_USER_RATE_LIMIT__SIGNUP_ADDRESS_BURST=100000
start_platform "$STATE" 2>"$STATE/start.log"
BFF="http://127.0.0.1:$CAUDAL_BFF_PORT"

# a recorded broadcast of the demo creator, sold; a viewer who bought it
log "recording a 10 s broadcast"
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30:duration=10 \
  -f lavfi -i sine=duration=10 -c:v libx264 -preset veryfast -g 60 -c:a aac -f flv \
  "rtmp://127.0.0.1:$CAUDAL_RTMP_PORT/live/$DEMO_KEY"
read -r VIDEO TOKEN < <(BFF=$BFF python3 - <<'PY'
import json, os, time, urllib.request, uuid
BFF = os.environ["BFF"]
def call(method, path, token=None, body=None, headers=None):
    h = dict(headers or {})
    if token: h["Authorization"] = "Bearer " + token
    data = json.dumps(body).encode() if body is not None else None
    if data: h["Content-Type"] = "application/json"
    with urllib.request.urlopen(urllib.request.Request(BFF + path, data=data, method=method, headers=h)) as r:
        return json.loads(r.read() or b"null")
demo = call("POST", "/v1/auth/login", body={"email": "demo@caudal.local", "password": "demo-password-123"})
for _ in range(120):
    items = call("GET", "/v1/studio/videos", demo["access_token"])["items"]
    done = [v for v in items if v["status"] == "recorded"]
    if done: break
    time.sleep(1)
v = done[0]
call("PATCH", f"/v1/studio/videos/{v['id']}", demo["access_token"],
     {"expected_version": v["version"], "access": {"policy": "purchase", "price_minor": 300, "currency": "EUR"}})
viewer = call("POST", "/v1/auth/signup", body={"email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
              "password": "correct horse battery staple", "display_name": "Bench"})
call("POST", "/v1/purchases", viewer["access_token"], {"video_id": v["id"]}, {"Idempotency-Key": uuid.uuid4().hex})
d = call("GET", f"/v1/videos/{v['id']}", viewer["access_token"])
assert d["playback"], d
print(v["id"], viewer["access_token"])
PY
)

CONF="$STATE/balancer/nginx.conf"
cp "$CONF" "$CONF.two"
# one instance: every HTTP upstream of the services keeps its first server
awk '/upstream (bff|user_svc|metadata_svc) \{/ {u=1; n=0} u && /server / {n++; if (n>1) next} /\}/ {u=0} {print}' "$CONF.two" >"$CONF.one"

wrk_run() { # URL -> "rps p99ms"
  wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" "$1" 2>&1 |
    awk '/Requests\/sec/ {rps=$2} /^ +99%/ {v=$2; if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /us$/) {sub("us","",v); v=v/1000} else {sub("s","",v); v=v*1000}; p=v}
         /Non-2xx/ {bad=$NF} END {printf "%.0f %.1f %s\n", rps, p, bad+0}'
}
hey_run() { # URL -> "rps p99ms errors"
  hey -z "${SECS}s" -c "$CONNS" -q $((RATE / CONNS)) -H "Authorization: Bearer $TOKEN" "$1" 2>&1 |
    awk '/Requests\/sec/ {rps=$2} /99% in/ {p=$3*1000} /\[2[0-9][0-9]\]/ {ok+=$2} /\[[345][0-9][0-9]\]/ {bad+=$2} /Error distribution/ {e=1} e && /\[[0-9]+\]/ {bad+=$1}
         END {printf "%.0f %.1f %d\n", rps, p, bad}'
}

declare -A R
for n in one two; do
  cp "$CONF.$n" "$CONF"
  nginx -p "$STATE/balancer" -c "$CONF" -s reload 2>/dev/null
  sleep 2
  for ep in detail playback; do
    url="$BFF/v1/videos/$VIDEO"
    [ "$ep" = detail ] || url+="/playback"
    hey -z 2s -c 4 -H "Authorization: Bearer $TOKEN" "$url" >/dev/null 2>&1 # warm the caches
    R[$n.$ep.max]=$(wrk_run "$url")
    R[$n.$ep.rate]=$(hey_run "$url")
  done
done

echo
echo "bff through the balancer, $CONNS connections, $SECS s per run ($(nproc) cores shared by everything)"
printf '%-22s | %-34s | %-34s\n' "" "1 instance of each service" "2 instances of each service"
printf '%-22s | %-34s | %-34s\n' "" "max req/s, p99 ms (non-2xx)" "max req/s, p99 ms (non-2xx)"
for ep in detail playback; do
  read -r a1 a2 a3 <<<"${R[one.$ep.max]}"; read -r b1 b2 b3 <<<"${R[two.$ep.max]}"
  printf '%-22s | %-34s | %-34s\n' "$ep (wrk)" "$a1 req/s, p99 $a2 ms ($a3)" "$b1 req/s, p99 $b2 ms ($b3)"
  read -r a1 a2 a3 <<<"${R[one.$ep.rate]}"; read -r b1 b2 b3 <<<"${R[two.$ep.rate]}"
  printf '%-22s | %-34s | %-34s\n' "$ep (hey, $RATE/s)" "$a1 req/s, p99 $a2 ms ($a3 errors)" "$b1 req/s, p99 $b2 ms ($b3 errors)"
done

echo
echo "segment writes and reads, 1 MiB objects, 8 in flight"
BS="$CAUDAL_ROOT/target/debug/examples/bench_store"
echo "Garage, 3 nodes (replication 3), through the balancer:"
"$BS" "http://127.0.0.1:$CAUDAL_S3_PORT" "$CAUDAL_GARAGE_ACCESS_KEY" "$CAUDAL_GARAGE_SECRET_KEY"
echo "Garage, 3 nodes (replication 3), at node 1:"
"$BS" "http://127.0.0.1:${CLUSTER_GARAGE_S3[0]}" "$CAUDAL_GARAGE_ACCESS_KEY" "$CAUDAL_GARAGE_SECRET_KEY"
start_s3 "$STATE/s3s" "$(free_port)" 2>/dev/null
echo "s3s-fs (one process, files on this disk):"
"$BS" "$CAUDAL_S3_ENDPOINT" "$CAUDAL_S3_ACCESS_KEY" "$CAUDAL_S3_SECRET_KEY"
