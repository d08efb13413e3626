#!/usr/bin/env bash
# Command 2: installs whatever is missing, starts the real servers once (MariaDB, the
# MongoDB-compatible server, s3s-fs, Redis, NATS) on free loopback ports, and runs every test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CAUDAL_ROOT"

install_deps
STATE="$CAUDAL_ROOT/.caudal/test-$$"
rm -rf "$STATE" && mkdir -p "$STATE"
cleanup() { stop_all; rm -rf "$STATE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# one build per run: incremental state would only cost disk (4.3 GB of it in a fresh run)
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
log "disk before the build: $(disk_free "$CAUDAL_ROOT")"
log "building (one build for every test)"
cargo build --workspace --all-targets --locked
log "disk after the build: $(disk_free "$CAUDAL_ROOT"); target/ holds $(du -sh "$CAUDAL_ROOT/target" | cut -f1)"

start_mariadb "$STATE/mysql" "$(free_port)"
start_mongo "$STATE/mongo" "$(free_port)"
start_s3 "$STATE/s3" "$(free_port)"
start_redis "$STATE/redis" "$(free_port)"
export CAUDAL_TEST_REDIS_URL="$CAUDAL_REDIS_URL"
start_nats "$STATE/nats" "$(free_port)"
export CAUDAL_TEST_NATS_URL="$CAUDAL_NATS_URL"
export DATABASE_URL="$CAUDAL_MYSQL_URL"
export CAUDAL_TEST_S3_ENDPOINT="$CAUDAL_S3_ENDPOINT" CAUDAL_TEST_S3_ACCESS_KEY="$CAUDAL_S3_ACCESS_KEY" \
  CAUDAL_TEST_S3_SECRET_KEY="$CAUDAL_S3_SECRET_KEY" CAUDAL_TEST_S3_REGION=us-east-1
export CAUDAL_MONGO_URL
export CAUDAL_ROOT

status=0
log "checking formatting (cargo fmt --check)"
cargo fmt --all --check >"$STATE/fmt.log" 2>&1 || { status=1; log "cargo fmt --check failed: run cargo fmt --all"; head -40 "$STATE/fmt.log"; }
log "linting (cargo clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -q -- -D warnings || status=1
log "running the Rust tests"
cargo test --workspace --locked --no-fail-fast -- --nocapture 2>&1 | tee "$STATE/cargo-test.log" || status=1
for extra in "$CAUDAL_ROOT"/scripts/tests.d/*.sh; do
  [ -e "$extra" ] || continue
  log "running $(basename "$extra")"
  bash "$extra" || status=1
done
summary=$(grep -E '^test result:' "$STATE/cargo-test.log" | awk '{p+=$4; f+=$6} END {printf "%d passed, %d failed", p, f}')
echo "rust: $summary"
log "disk at the end: $(disk_free "$CAUDAL_ROOT"); target/ holds $(du -sh "$CAUDAL_ROOT/target" | cut -f1)"
# the names and panics of failed Rust tests last, where a truncated CI log still shows them
if grep -qE '^test .* FAILED$' "$STATE/cargo-test.log"; then
  echo "failed Rust tests:"
  grep -E '^test .* FAILED$' "$STATE/cargo-test.log" | sed 's/^/  /'
  grep -aE -A12 "^---- .* stdout ----$|panicked at" "$STATE/cargo-test.log" | grep -avE '^\s*$' | tail -60
fi
exit $status
