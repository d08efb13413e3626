#!/usr/bin/env bash
# Edge tests (cdn-config/): the rendered nginx config, run by the real nginx, against the real
# s3s-fs and a local media folder. Prints "edge: N passed, M failed"; exits non-zero on failure.
set -euo pipefail
ROOT=${CAUDAL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export PATH="$HOME/.cargo/bin:$PATH"
# njs signs the edge's S3 requests (render.sh would install it too; done here once, up front).
if [ ! -f /usr/lib/nginx/modules/ngx_http_js_module.so ] && [ "$(id -u)" = 0 ]; then
  echo "[caudal] installing libnginx-mod-http-js" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends libnginx-mod-http-js >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends libnginx-mod-http-js >/dev/null; }
fi
exec python3 "$ROOT/cdn-config/tests/edge_test.py"
