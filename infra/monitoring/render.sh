#!/usr/bin/env bash
# Renders Caudal's Prometheus configuration into OUT_DIR/prometheus.yml and checks it with
# promtool. scripts/platform.sh runs it for the local stack; scripts/tests.d/monitoring.sh
# tests it.
#
# usage: render.sh OUT_DIR
#
# Scrape addresses (environment; defaults are the local stack's, scripts/platform.sh):
#   CAUDAL_BFF_METRICS_LISTEN, CAUDAL_INGEST_METRICS_LISTEN, CAUDAL_USER_METRICS_LISTEN,
#   CAUDAL_METADATA_METRICS_LISTEN   the services' metrics_listen (127.0.0.1:BASE+0 .. +3, BASE
#                                    being CAUDAL_METRICS_BASE, 9080); 0.0.0.0 is scraped on
#                                    127.0.0.1
#   CAUDAL_EDGE_EXPORTER_PORT        prometheus-nginx-exporter (BASE+5)
#   CAUDAL_EDGE_MTAIL_PORT           mtail over the edge's logs (BASE+6)
#   CAUDAL_WORKER_METRICS_LISTEN     the transcode worker's metrics_listen (127.0.0.1:BASE+7)
#   CAUDAL_PROMETHEUS_PORT           Prometheus itself (9090)
# Optional: CAUDAL_PROMETHEUS_SCRAPE_INTERVAL (15s; also the rule evaluation interval),
# CAUDAL_ALERTMANAGER (HOST:PORT of an Alertmanager to send alerts to; none by default: alerts
# are then only shown by Prometheus, /alerts and the ALERTS series).
set -euo pipefail

die() { printf 'monitoring render.sh: error: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: render.sh OUT_DIR"
OUT_DIR=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE=${CAUDAL_METRICS_BASE:-9080}
[[ "$BASE" =~ ^[0-9]+$ ]] || die "CAUDAL_METRICS_BASE must be a port number, got '$BASE'"

# target NAME VALUE: a HOST:PORT to scrape (a wildcard listen address becomes loopback)
target() {
  local name=$1 v=$2
  case "$v" in
    0.0.0.0:*) v="127.0.0.1:${v#0.0.0.0:}" ;;
    "[::]:"*) v="[::1]:${v#\[::\]:}" ;;
  esac
  [[ "$v" =~ ^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):[0-9]{1,5}$ ]] || die "$name must be HOST:PORT, got '$v'"
  printf '%s' "$v"
}
port() {
  [[ "$2" =~ ^[0-9]{1,5}$ ]] && (($2 >= 1 && $2 <= 65535)) || die "$1 must be a port number, got '$2'"
  printf '127.0.0.1:%s' "$2"
}

BFF=$(target CAUDAL_BFF_METRICS_LISTEN "${CAUDAL_BFF_METRICS_LISTEN:-127.0.0.1:$BASE}")
INGEST=$(target CAUDAL_INGEST_METRICS_LISTEN "${CAUDAL_INGEST_METRICS_LISTEN:-127.0.0.1:$((BASE + 1))}")
USER=$(target CAUDAL_USER_METRICS_LISTEN "${CAUDAL_USER_METRICS_LISTEN:-127.0.0.1:$((BASE + 2))}")
METADATA=$(target CAUDAL_METADATA_METRICS_LISTEN "${CAUDAL_METADATA_METRICS_LISTEN:-127.0.0.1:$((BASE + 3))}")
EXPORTER=$(port CAUDAL_EDGE_EXPORTER_PORT "${CAUDAL_EDGE_EXPORTER_PORT:-$((BASE + 5))}")
MTAIL=$(port CAUDAL_EDGE_MTAIL_PORT "${CAUDAL_EDGE_MTAIL_PORT:-$((BASE + 6))}")
WORKER=$(target CAUDAL_WORKER_METRICS_LISTEN "${CAUDAL_WORKER_METRICS_LISTEN:-127.0.0.1:$((BASE + 7))}")
PROMETHEUS=$(port CAUDAL_PROMETHEUS_PORT "${CAUDAL_PROMETHEUS_PORT:-9090}")
INTERVAL=${CAUDAL_PROMETHEUS_SCRAPE_INTERVAL:-15s}
[[ "$INTERVAL" =~ ^[0-9]+(ms|s|m)$ ]] || die "CAUDAL_PROMETHEUS_SCRAPE_INTERVAL must look like 15s, got '$INTERVAL'"
ALERTING=""
if [ -n "${CAUDAL_ALERTMANAGER:-}" ]; then
  AM=$(target CAUDAL_ALERTMANAGER "$CAUDAL_ALERTMANAGER")
  ALERTING=$'\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ["'"$AM"$'"]\n'
fi

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
# values through the environment (awk -v would interpret backslashes and refuse newlines)
export R_RULES_DIR="$HERE/rules" R_SCRAPE_INTERVAL="$INTERVAL" R_ALERTING="$ALERTING" \
  R_BFF_METRICS="$BFF" R_INGEST_METRICS="$INGEST" R_USER_METRICS="$USER" R_METADATA_METRICS="$METADATA" \
  R_EDGE_EXPORTER="$EXPORTER" R_EDGE_MTAIL="$MTAIL" R_WORKER_METRICS="$WORKER" R_PROMETHEUS="$PROMETHEUS"
awk '
  BEGIN {
    n = split("RULES_DIR SCRAPE_INTERVAL ALERTING BFF_METRICS INGEST_METRICS USER_METRICS METADATA_METRICS EDGE_EXPORTER EDGE_MTAIL WORKER_METRICS PROMETHEUS", names, " ")
    for (i = 1; i <= n; i++) vals[names[i]] = ENVIRON["R_" names[i]]
  }
  {
    for (i = 1; i <= n; i++) {
      k = "{{" names[i] "}}"
      while ((p = index($0, k)) > 0) $0 = substr($0, 1, p - 1) vals[names[i]] substr($0, p + length(k))
    }
    if ($0 ~ /\{\{[A-Za-z_]+\}\}/) { print "monitoring render.sh: unknown placeholder: " $0 > "/dev/stderr"; exit 1 }
    print
  }' "$HERE/prometheus.yml.template" >"$OUT_DIR/prometheus.yml.new"
mv "$OUT_DIR/prometheus.yml.new" "$OUT_DIR/prometheus.yml"

if command -v promtool >/dev/null; then
  out=$(promtool check config "$OUT_DIR/prometheus.yml" 2>&1) ||
    { printf '%s\n' "$out" >&2; die "the rendered config does not pass promtool check config: $OUT_DIR/prometheus.yml"; }
fi
echo "monitoring render.sh: $OUT_DIR/prometheus.yml scrapes bff $BFF, ingest-rtmp $INGEST, user-svc $USER, metadata-svc $METADATA, transcoder-worker $WORKER, edge $EXPORTER (nginx exporter) and $MTAIL (mtail); rules $HERE/rules" >&2
