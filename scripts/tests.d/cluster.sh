#!/usr/bin/env bash
# Cluster tests (issue 14): the local stack in cluster mode (CAUDAL_CLUSTER=on: two instances
# of every service behind the nginx balancer, three Garage nodes, a MariaDB GTID replica,
# three NATS servers, Redis) on free loopback ports, then scripts/tests.d/cluster.py breaks parts of it: a second
# publisher of a live key, a Garage node killed mid-broadcast, a bff and a user-svc killed
# under load, the replica stopped, a NATS server killed before an upload. Uses the debug build
# that scripts/test.sh made. Last line: "cluster: N passed, M failed"; exits non-zero on
# failure.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$CAUDAL_ROOT/scripts/platform.sh"
cd "$CAUDAL_ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
install_garage

export STATE="$CAUDAL_ROOT/.caudal/cluster-test-$$"
ARTIFACTS="$CAUDAL_ROOT/.caudal/artifacts/cluster"
rm -rf "$STATE" "$ARTIFACTS" && mkdir -p "$STATE" "$ARTIFACTS"
cleanup() {
  stop_all
  # a Garage node the test restarted is not among this shell's children
  pkill -f "$STATE/garage/" 2>/dev/null || true
  pkill -f "$STATE/nats-cluster/" 2>/dev/null || true
  cp -r "$STATE/logs" "$ARTIFACTS/" 2>/dev/null || true
  rm -rf "$STATE"
}
trap cleanup EXIT

platform_free_ports
export CAUDAL_CLUSTER=on CAUDAL_MONITORING=off
# the load comes from one address: sign-ups and purchases are not the limits under test here
export CAUDAL_BFF_RATE_LIMIT__AUTH_BURST=100000 CAUDAL_BFF_RATE_LIMIT__PURCHASE_BURST=100000
export CAUDAL_USER_RATE_LIMIT__SIGNUP_ADDRESS_BURST=100000 CAUDAL_USER_RATE_LIMIT__LOGIN_ADDRESS_BURST=100000
export CAUDAL_USER_REPLICA_READ_AFTER_WRITE_SECS=2
start_platform "$STATE"
export DEMO_KEY CAUDAL_ROOT
python3 "$CAUDAL_ROOT/scripts/tests.d/cluster.py"
