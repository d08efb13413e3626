#!/usr/bin/env bash
# Monitoring tests (infra/monitoring, cdn-config/metrics): run by scripts/test.sh, or alone:
#   bash scripts/tests.d/monitoring.sh
# Static:
#   config      infra/monitoring/render.sh's Prometheus config passes `promtool check config`
#               (with and without an Alertmanager)
#   rules       `promtool check rules` on infra/monitoring/rules
#   coverage    every alert has a unit test where it fires and one where it stays quiet
#   unit        `promtool test rules` (infra/monitoring/tests/caudal.rules.test.yml)
#   dashboard   the Grafana dashboard is JSON with what an import needs, and every PromQL
#               expression in it parses (`promtool check rules` on them as recording rules)
#   names       every metric the rules and the dashboard use is exported by a service (Rust
#               sources), the edge's mtail program, prometheus-nginx-exporter or Prometheus
#   mtail       cdn-config/metrics/edge.mtail on sample edge log lines: the exact counters
# Live (about 10 s): a real edge (nginx, rendered with its stub_status) in front of a small
# origin (python3: 200, 404 and 500 answers, and ingest-rtmp's /metrics as captured, standing in
# for the services),
# prometheus-nginx-exporter, mtail and Prometheus (rendered config, 1 s scrapes) on free ports;
# through Prometheus's HTTP API: every target up, the origin's statuses counted, and
# CaudalEdgeOriginErrors active on the real series.
# Installs nothing (scripts/lib.sh install_deps does). Last line: "monitoring: N passed, M failed";
# exits non-zero on any failure. Work folder kept on failure (or with CAUDAL_MONITORING_KEEP=1).
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
MON="$CAUDAL_ROOT/infra/monitoring"
RULES="$MON/rules/caudal.rules.yml"
TESTS="$MON/tests/caudal.rules.test.yml"
DASHBOARD="$MON/dashboards/caudal.json"
MTAIL_PROG="$CAUDAL_ROOT/cdn-config/metrics/edge.mtail"

WORK=$(mktemp -d /tmp/caudal-mon.XXXXXX)
passed=0 failed=0
cleanup() {
  local rc=$?
  # a helper of scripts/lib.sh that dies (a server that did not start) ends the script here
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$failed" -eq 0 ]; then failed=1; echo "FAIL: stopped early (exit $rc), see the lines above"; fi
  stop_all
  if [ "$failed" -eq 0 ] && [ "${CAUDAL_MONITORING_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else echo "monitoring: work folder kept: $WORK" >&2; fi
  echo "monitoring: $passed passed, $failed failed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { passed=$((passed + 1)); echo "PASS: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; }
# check NAME CMD...: runs CMD, its output shown only when it fails
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name"; printf '%s\n' "$out" | tail -n 40 | sed 's/^/    /'; fi
}

# PyYAML for check.py: Debian's python3-yaml (APT_PACKAGES) is for /usr/bin/python3
PY=python3
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import yaml' 2>/dev/null && PY=/usr/bin/python3

missing=""
for tool in promtool prometheus prometheus-nginx-exporter mtail nginx curl; do
  command -v "$tool" >/dev/null || missing+=" $tool"
done
"$PY" -c 'import yaml' 2>/dev/null || missing+=" python3-yaml"
if [ -n "$missing" ]; then
  bad "tools:$missing missing: run scripts/test.sh (install_deps installs them), or apt-get install prometheus prometheus-nginx-exporter mtail python3-yaml"
  exit 1
fi

# ---------------------------------------------------------------------------------------------
# static checks

render_config() {
  local out=$1
  shift
  env "$@" bash "$MON/render.sh" "$out" && promtool check config "$out/prometheus.yml"
}
check "config: the local stack's Prometheus config (defaults) passes promtool check config" \
  render_config "$WORK/config-default"
check "config: with free ports, a wildcard listen address and an Alertmanager" \
  render_config "$WORK/config-am" CAUDAL_METRICS_BASE=20000 CAUDAL_INGEST_METRICS_LISTEN=0.0.0.0:20001 \
  CAUDAL_PROMETHEUS_PORT=20090 CAUDAL_PROMETHEUS_SCRAPE_INTERVAL=5s CAUDAL_ALERTMANAGER=127.0.0.1:9093
scrapes_all() {
  local f=$1 t
  for t in '"127.0.0.1:9080"' '"127.0.0.1:9081"' '"127.0.0.1:9082"' '"127.0.0.1:9083"' '"127.0.0.1:9085"' '"127.0.0.1:9086"' '"127.0.0.1:9087"' '"127.0.0.1:9090"'; do
    grep -q -- "- targets: \[$t\]" "$f" || { echo "no target $t in $f"; return 1; }
  done
  grep -q '127.0.0.1:20001' "$WORK/config-am/prometheus.yml" || { echo "0.0.0.0 listen address not scraped on 127.0.0.1"; return 1; }
  grep -q '127.0.0.1:9093' "$WORK/config-am/prometheus.yml" || { echo "no alertmanager"; return 1; }
}
check "config: targets bff 9080, ingest-rtmp 9081, user-svc 9082, metadata-svc 9083, edge 9085, edge-logs 9086, transcoder-worker 9087, prometheus 9090" \
  scrapes_all "$WORK/config-default/prometheus.yml"
check "config: render.sh refuses a bad address or port" \
  bash -c "! CAUDAL_BFF_METRICS_LISTEN=nonsense bash '$MON/render.sh' '$WORK/bad1' 2>/dev/null && ! CAUDAL_PROMETHEUS_PORT=99999 bash '$MON/render.sh' '$WORK/bad2' 2>/dev/null"

check "rules: promtool check rules" promtool check rules "$MON"/rules/*.yml
check "coverage: every alert tested firing and quiet" "$PY" "$MON/tests/check.py" coverage "$RULES" "$TESTS"
check "unit: promtool test rules" bash -c "cd '$MON/tests' && promtool test rules '$TESTS'"
check_dashboard() {
  "$PY" "$MON/tests/check.py" dashboard "$DASHBOARD" "$WORK/dashboard-exprs.yml" && promtool check rules "$WORK/dashboard-exprs.yml"
}
check "dashboard: Grafana JSON, every PromQL expression parses" check_dashboard
check "names: every metric in the rules and the dashboard is exported" \
  "$PY" "$MON/tests/check.py" names "$CAUDAL_ROOT" "$RULES" "$DASHBOARD" "$MTAIL_PROG"

mtail_sample() {
  mkdir -p "$WORK/mtail-sample"
  cp "$MON/tests/edge-logs/upstream.txt" "$WORK/mtail-sample/upstream.log"
  cp "$MON/tests/edge-logs/access.txt" "$WORK/mtail-sample/access.log"
  mtail --progs "$CAUDAL_ROOT/cdn-config/metrics" --logs "$WORK/mtail-sample/upstream.log,$WORK/mtail-sample/access.log" \
    --one_shot --one_shot_format prometheus --emit_prog_label=false --port 0 --address 127.0.0.1 \
    >"$WORK/mtail-sample/out.prom" 2>"$WORK/mtail-sample/mtail.log" || { cat "$WORK/mtail-sample/mtail.log"; return 1; }
  diff <(grep -v '^#' "$WORK/mtail-sample/out.prom" | sort) <(sort "$MON/tests/edge-logs/expected.prom")
}
check "mtail: edge.mtail on sample edge logs gives the expected counters (origin statuses, retries, times, cache statuses)" mtail_sample

# ---------------------------------------------------------------------------------------------
# live: edge + exporters + Prometheus

P_ORIGIN=$(free_port) P_EDGE=$(free_port) P_STATUS=$(free_port) P_EXPORTER=$(free_port) P_MTAIL=$(free_port) P_PROM=$(free_port)
mkdir -p "$WORK/logs"
# the helpers of scripts/lib.sh die (exit) when a server does not start: the EXIT trap counts it
live() {
  # the origin: an S3 stand-in (the edge signs its requests; this one does not check them)
  # and, for the scrape jobs of the four services and the transcode worker, a /metrics page:
  # ingest-rtmp's, as captured after a 16 s broadcast (tests/ingest-metrics.sample.txt)
  start_bg origin "$WORK/logs/origin.log" python3 -c '
import http.server, sys
METRICS = open(sys.argv[2], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/metrics":
            code, body = 200, METRICS
        elif self.path.endswith("/ok.ts"):
            code, body = 200, b"x" * 1000
        elif self.path.endswith("/bad.ts"):
            code, body = 500, b"boom"
        else:
            code, body = 404, b"<Error><Code>NoSuchKey</Code></Error>"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$P_ORIGIN" "$MON/tests/ingest-metrics.sample.txt"
  wait_port 127.0.0.1 "$P_ORIGIN" 10 origin
  CAUDAL_EDGE_TOKENS=off CAUDAL_EDGE_STATUS_PORT=$P_STATUS CAUDAL_EDGE_WORKERS=1 \
    bash "$CAUDAL_ROOT/cdn-config/render.sh" "$WORK/edge" "$P_EDGE" s3 "http://127.0.0.1:$P_ORIGIN" 2>"$WORK/logs/edge-render.log" ||
    { cat "$WORK/logs/edge-render.log"; return 1; }
  start_bg edge "$WORK/logs/edge.log" nginx -p "$WORK/edge" -c "$WORK/edge/nginx.conf" -g 'daemon off;'
  wait_port 127.0.0.1 "$P_EDGE" 10 edge
  start_edge_metrics "$WORK/edge" "$P_STATUS" "$P_EXPORTER" "$P_MTAIL" "$WORK/logs"
  CAUDAL_BFF_METRICS_LISTEN=127.0.0.1:$P_ORIGIN CAUDAL_INGEST_METRICS_LISTEN=127.0.0.1:$P_ORIGIN \
    CAUDAL_USER_METRICS_LISTEN=127.0.0.1:$P_ORIGIN CAUDAL_METADATA_METRICS_LISTEN=127.0.0.1:$P_ORIGIN \
    CAUDAL_WORKER_METRICS_LISTEN=127.0.0.1:$P_ORIGIN \
    CAUDAL_EDGE_EXPORTER_PORT=$P_EXPORTER CAUDAL_EDGE_MTAIL_PORT=$P_MTAIL CAUDAL_PROMETHEUS_PORT=$P_PROM \
    CAUDAL_PROMETHEUS_SCRAPE_INTERVAL=1s bash "$MON/render.sh" "$WORK/prometheus" 2>"$WORK/logs/prometheus-render.log" ||
    { cat "$WORK/logs/prometheus-render.log"; return 1; }
  start_prometheus "$WORK/prometheus" "$P_PROM" "$WORK/prometheus/prometheus.yml" "$WORK/logs/prometheus.log"
}
live_ok=1
if live; then
  ok "live: edge (stub_status on), prometheus-nginx-exporter, mtail and Prometheus started"
else
  bad "live: starting the edge, the exporters and Prometheus"
  live_ok=0
fi

# query EXPR: the instant vector's [labels, value] pairs, one per line (python3 reads the JSON)
query() {
  curl -fsS --get "http://127.0.0.1:$P_PROM/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); [print(json.dumps(r["metric"], sort_keys=True), r["value"][1]) for r in d["data"]["result"]]'
}
# wait_query EXPR N SECONDS: until EXPR returns at least N series
wait_query() {
  local i
  for ((i = 0; i < $3 * 4; i++)); do
    [ "$(query "$1" | wc -l)" -ge "$2" ] && return 0
    sleep 0.25
  done
  echo "after ${3}s, $1 gives:"
  query "$1"
  return 1
}

if [ "$live_ok" = 1 ]; then
  all_up() {
    wait_query 'up == 1' 8 20 || { echo "targets:"; query up; return 1; }
    local jobs
    jobs=$(query 'up == 1' | python3 -c 'import json,sys; print(" ".join(sorted(json.loads(l.rsplit(" ",1)[0])["job"] for l in sys.stdin)))')
    [ "$jobs" = "bff edge edge-logs ingest-rtmp metadata-svc prometheus transcoder-worker user-svc" ] || { echo "jobs up: $jobs"; return 1; }
  }
  check "live: Prometheus scrapes all 8 targets (bff, ingest-rtmp, user-svc, metadata-svc, transcoder-worker, edge, edge-logs, prometheus), every one up" all_up
  check "live: the services' summaries as Prometheus stores them (caudal_segment_listed_seconds{quantile=\"0.99\"}, the selector of CaudalSegmentListingLate)" \
    wait_query 'caudal_segment_listed_seconds{job="ingest-rtmp", quantile="0.99"}' 1 10
  check "live: nginx_up is 1 (the exporter reads the edge's stub_status)" wait_query 'nginx_up == 1' 1 10
  exporter_names() {
    local body n
    body=$(curl -fsS "http://127.0.0.1:$P_EXPORTER/metrics") || return 1
    for n in nginx_up nginx_connections_accepted nginx_connections_active nginx_connections_handled \
      nginx_connections_reading nginx_connections_waiting nginx_connections_writing nginx_http_requests_total; do
      grep -q "^$n " <<<"$body" || { echo "the exporter has no $n"; return 1; }
    done
  }
  check "live: prometheus-nginx-exporter exports the nginx_* series the dashboard uses" exporter_names
  status_internal() {
    # stub_status answers on its own loopback port only; the viewers' port has no such page
    curl -fsS "http://127.0.0.1:$P_STATUS/stub_status" | grep -q '^Active connections' &&
      [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_EDGE/stub_status")" = 404 ]
  }
  check "live: stub_status on the internal port, not on the edge's public port" status_internal

  edge_get() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_EDGE/live/montest/$1"; }
  traffic() {
    local code
    [ "$(edge_get ok.ts)" = 200 ] || { echo "ok.ts not 200"; return 1; }
    [ "$(edge_get missing.ts)" = 404 ] || { echo "missing.ts not 404"; return 1; }
    for _ in 1 2 3; do
      for _ in 1 2; do
        code=$(edge_get bad.ts)
        [ "$code" = 500 ] || { echo "bad.ts gave $code, not 500"; return 1; }
      done
      sleep 1.2
    done
  }
  check "live: edge requests answered (200 MISS, 404, 6 x 500 from the origin)" traffic
  check "live: origin statuses counted (caudal_edge_origin_responses_total 200, 404, 500)" \
    wait_query 'caudal_edge_origin_responses_total{job="edge-logs", kind="segment", status=~"200|404|500"}' 3 15
  check "live: the six 500s are all counted" wait_query 'caudal_edge_origin_responses_total{status="500"} >= 6' 1 15
  check "live: client requests counted by cache status (caudal_edge_requests_total MISS)" \
    wait_query 'caudal_edge_requests_total{cache="MISS"}' 1 15
  check "live: CaudalEdgeOriginErrors becomes active on the real series (pending: its for: is 2m)" \
    wait_query 'ALERTS{alertname="CaudalEdgeOriginErrors", job="edge-logs"}' 1 20
  rules_loaded() {
    local want got
    want=$(grep -c '^ *- alert:' "$RULES")
    got=$(curl -fsS "http://127.0.0.1:$P_PROM/api/v1/rules?type=alert" |
      python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')
    [ "$got" = "$want" ] || { echo "Prometheus has $got alerting rules loaded, $RULES has $want"; return 1; }
  }
  check "live: Prometheus loaded every alerting rule (/api/v1/rules)" rules_loaded
fi
[ "$failed" -eq 0 ]
