#!/usr/bin/env bash
# Renders the Caudal edge (nginx) into OUT_DIR, ready to run with
#   nginx -p OUT_DIR -c OUT_DIR/nginx.conf -g 'daemon off;'
#
# usage: render.sh OUT_DIR EDGE_PORT s3|local [ORIGIN_URL_OR_DIR]
#
#   s3     origin is an S3-compatible server, path-style: ORIGIN_URL, else $CAUDAL_S3_ENDPOINT,
#          else http://127.0.0.1:${CAUDAL_S3_PORT:-19000}. Bucket $CAUDAL_S3_BUCKET (media),
#          region $CAUDAL_S3_REGION (us-east-1), keys $CAUDAL_S3_ACCESS_KEY / $CAUDAL_S3_SECRET_KEY
#          (or *_FILE; default: the development pair caudal / caudalsecret).
#   local  origin is a folder: ORIGIN_DIR, else $CAUDAL_MEDIA_DIR, else
#          $CAUDAL_INGEST_STORAGE__ROOT, else OUT_DIR/../media.
#
# Playback tokens (required): CAUDAL_PLAYBACK_KEYS="kid1=secret1[,kid2=secret2]" (or
# CAUDAL_PLAYBACK_KEYS_FILE naming a file with that text), every key accepted. Without a key
# render.sh fails, unless CAUDAL_EDGE_TOKENS=off (benchmarks and development only: the token is
# not checked and unsigned paths serve every object).
#
# Optional: CAUDAL_EDGE_LIVE_ORIGIN (127.0.0.1:8081: ingest's HTTP listener, the live origin of
# low-latency HLS; or the live tier in front of it), CAUDAL_EDGE_LIVE_COLLAPSE (nginx: this
# nginx caches and collapses low-latency requests; varnish: CAUDAL_EDGE_LIVE_ORIGIN is the
# Varnish live tier of render-live.sh, which does), CAUDAL_EDGE_LISTEN_ADDR (127.0.0.1), CAUDAL_EDGE_WORKERS (auto),
# CAUDAL_EDGE_CACHE_MAX_SIZE (4g), CAUDAL_EDGE_PLAYLIST_INACTIVE (10m), CAUDAL_EDGE_STATUS_PORT
# (unset: none; a port: nginx's stub_status at http://127.0.0.1:PORT/stub_status, for
# prometheus-nginx-exporter).
# Creates OUT_DIR/{logs,cache,temp}; re-rendering keeps the cache.
set -euo pipefail

die() { printf 'render.sh: error: %s\n' "$*" >&2; exit 1; }

[ $# -ge 3 ] || die "usage: render.sh OUT_DIR EDGE_PORT s3|local [ORIGIN_URL_OR_DIR]"
OUT_DIR=$1 EDGE_PORT=$2 MODE=$3 ORIGIN=${4:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! [[ "$EDGE_PORT" =~ ^[0-9]+$ ]] || ((EDGE_PORT < 1 || EDGE_PORT > 65535)); then
  die "EDGE_PORT must be a port number, got '$EDGE_PORT'"
fi
command -v nginx >/dev/null || die "nginx is not installed (apt-get install nginx)"

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
mkdir -p "$OUT_DIR"/{logs,cache,temp}

LISTEN_ADDR=${CAUDAL_EDGE_LISTEN_ADDR:-127.0.0.1}
if [[ "$LISTEN_ADDR" == *:* ]]; then LISTEN="[$LISTEN_ADDR]:$EDGE_PORT"; else LISTEN="$LISTEN_ADDR:$EDGE_PORT"; fi
WORKERS=${CAUDAL_EDGE_WORKERS:-auto}
CACHE_MAX_SIZE=${CAUDAL_EDGE_CACHE_MAX_SIZE:-4g}
PLAYLIST_INACTIVE=${CAUDAL_EDGE_PLAYLIST_INACTIVE:-10m}
NJS_MODULE=/usr/lib/nginx/modules/ngx_http_js_module.so
TOKENS=${CAUDAL_EDGE_TOKENS:-on}
STATUS_PORT=${CAUDAL_EDGE_STATUS_PORT:-}
LIVE_ORIGIN=${CAUDAL_EDGE_LIVE_ORIGIN:-127.0.0.1:8081}
[[ "$LIVE_ORIGIN" =~ ^[A-Za-z0-9.-]+:[0-9]{1,5}$ || "$LIVE_ORIGIN" =~ ^\[[0-9A-Fa-f:]+\]:[0-9]{1,5}$ ]] ||
  die "CAUDAL_EDGE_LIVE_ORIGIN must be HOST:PORT, got '$LIVE_ORIGIN'"
LIVE_COLLAPSE=${CAUDAL_EDGE_LIVE_COLLAPSE:-nginx}
[[ "$LIVE_COLLAPSE" == nginx || "$LIVE_COLLAPSE" == varnish ]] ||
  die "CAUDAL_EDGE_LIVE_COLLAPSE must be nginx or varnish, got '$LIVE_COLLAPSE'"
STATUS_LISTEN=""
if [ -n "$STATUS_PORT" ]; then
  if ! [[ "$STATUS_PORT" =~ ^[0-9]+$ ]] || ((STATUS_PORT < 1 || STATUS_PORT > 65535)) || ((STATUS_PORT == EDGE_PORT)); then
    die "CAUDAL_EDGE_STATUS_PORT must be a port number other than EDGE_PORT, got '$STATUS_PORT'"
  fi
  STATUS_LISTEN="127.0.0.1:$STATUS_PORT"
fi
[[ "$TOKENS" == on || "$TOKENS" == off ]] || die "CAUDAL_EDGE_TOKENS must be on or off, got '$TOKENS'"
# Run as root (scripts/up.sh does), nginx would switch its workers to "nobody", which cannot
# reach folders under /root: keep the invoking user, like every other Caudal process.
USER_LINE="# user: the invoking user"
if [ "$(id -u)" = 0 ]; then USER_LINE="user $(id -un) $(id -gn);"; fi

# secret FILE_VAR VAR DEFAULT: value of $VAR, or the contents of the file named by $VAR_FILE.
secret() {
  local file_var=$1 var=$2 default=$3
  if [ -n "${!file_var:-}" ]; then
    [ -r "${!file_var}" ] || die "$file_var names a file that cannot be read: ${!file_var}"
    tr -d '\r\n' <"${!file_var}"
  else
    printf '%s' "${!var:-$default}"
  fi
}

# nginx string literal check: these would need escaping inside "..." (and $ starts a variable).
plain() { [[ "$2" != *[\"\\\$\;[:space:]]* && -n "$2" ]] || die "$1 must be non-empty and free of quotes, backslashes, \$, ; and spaces"; }

# njs: playback tokens (playback-token.js) and the S3 origin's signatures (s3-sign.js).
if [ ! -f "$NJS_MODULE" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "render.sh: installing libnginx-mod-http-js (njs: playback tokens, S3 signatures)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnginx-mod-http-js >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnginx-mod-http-js >/dev/null; } ||
      die "apt-get install libnginx-mod-http-js failed"
  fi
  [ -f "$NJS_MODULE" ] || die "$NJS_MODULE is missing: apt-get install libnginx-mod-http-js"
fi

# Playback keys: "kid=secret[,kid=secret...]", parsed as bff parses them (crates/playback-token):
# entries trimmed, empty ones skipped, kid 1-16 of A-Z a-z 0-9 _ -, secret at least 32 bytes.
# Written to OUT_DIR/playback-keys.conf (mode 0600) as a map from kid to the secret in hex, so a
# secret may hold any character but a comma.
KIDS=""
if [ "$TOKENS" = on ]; then
  if [ -n "${CAUDAL_PLAYBACK_KEYS_FILE:-}" ]; then
    [ -r "$CAUDAL_PLAYBACK_KEYS_FILE" ] || die "CAUDAL_PLAYBACK_KEYS_FILE names a file that cannot be read: $CAUDAL_PLAYBACK_KEYS_FILE"
    KEYS_TEXT=$(cat "$CAUDAL_PLAYBACK_KEYS_FILE")
  else
    KEYS_TEXT=${CAUDAL_PLAYBACK_KEYS:-}
  fi
  MAP_LINES=()
  declare -A SEEN=()
  IFS=, read -r -d '' -a KEY_ITEMS < <(printf '%s\0' "$KEYS_TEXT") || true
  for item in "${KEY_ITEMS[@]}"; do
    item="${item#"${item%%[![:space:]]*}"}" item="${item%"${item##*[![:space:]]}"}"
    [ -n "$item" ] || continue
    [[ "$item" == *=* ]] || die "playback key '${item:0:16}': write each key as kid=secret"
    kid=${item%%=*} secret=${item#*=}
    kid="${kid#"${kid%%[![:space:]]*}"}" kid="${kid%"${kid##*[![:space:]]}"}"
    [[ "$kid" =~ ^[A-Za-z0-9_-]{1,16}$ ]] || die "playback key id '$kid': 1 to 16 of A-Z a-z 0-9 _ -"
    (($(printf '%s' "$secret" | wc -c) >= 32)) || die "playback key '$kid': the secret must be at least 32 characters"
    # nginx's map matches case-insensitively
    [ -z "${SEEN[${kid,,}]:-}" ] || die "playback key id '$kid' is listed twice (key ids are compared ignoring case)"
    SEEN[${kid,,}]=1
    MAP_LINES+=("    \"kid:$kid\" \"$(printf '%s' "$secret" | od -An -v -tx1 | tr -d ' \n')\";")
    KIDS+="${KIDS:+,}$kid"
  done
  [ -n "$KIDS" ] || die "no playback key: set CAUDAL_PLAYBACK_KEYS=kid=secret[,kid2=secret2] or CAUDAL_PLAYBACK_KEYS_FILE (or CAUDAL_EDGE_TOKENS=off, for benchmarks and development only)"
  (
    umask 077
    {
      echo "# Written by cdn-config/render.sh: the playback keys (kid -> secret, hex). \"kid:\" keeps"
      echo "# every kid clear of the map's keywords (default, include...)."
      echo "map \"kid:\$pb_kid\" \$pb_secret {"
      echo "    default \"\";"
      printf '%s\n' "${MAP_LINES[@]}"
      echo "}"
    } >"$OUT_DIR/playback-keys.conf"
  )
  cp "$HERE/playback-token.js" "$OUT_DIR/playback-token.js"
else
  rm -f "$OUT_DIR/playback-keys.conf" "$OUT_DIR/playback-token.js"
fi

case "$MODE" in
  s3)
    ENDPOINT=${ORIGIN:-${CAUDAL_S3_ENDPOINT:-http://127.0.0.1:${CAUDAL_S3_PORT:-19000}}}
    [[ "$ENDPOINT" =~ ^(https?)://([^/]+)/?$ ]] ||
      die "S3 endpoint must look like http://HOST:PORT (path-style, no path), got '$ENDPOINT'"
    S3_SCHEME=${BASH_REMATCH[1]} S3_HOSTPORT=${BASH_REMATCH[2]}
    # Host header as the client library would send it (default ports left out) and signed.
    S3_HOST=$S3_HOSTPORT
    [[ "$S3_SCHEME" == http && "$S3_HOST" == *:80 ]] && S3_HOST=${S3_HOST%:80}
    [[ "$S3_SCHEME" == https && "$S3_HOST" == *:443 ]] && S3_HOST=${S3_HOST%:443}
    if [[ "$S3_HOSTPORT" != *:* ]]; then
      if [ "$S3_SCHEME" = https ]; then S3_HOSTPORT+=":443"; else S3_HOSTPORT+=":80"; fi
    fi
    S3_BUCKET=${CAUDAL_S3_BUCKET:-media}
    S3_REGION=${CAUDAL_S3_REGION:-us-east-1}
    S3_ACCESS_KEY=$(secret CAUDAL_S3_ACCESS_KEY_FILE CAUDAL_S3_ACCESS_KEY caudal)
    S3_SECRET_KEY=$(secret CAUDAL_S3_SECRET_KEY_FILE CAUDAL_S3_SECRET_KEY caudalsecret)
    plain CAUDAL_S3_BUCKET "$S3_BUCKET"; plain CAUDAL_S3_REGION "$S3_REGION"
    plain "the S3 access key" "$S3_ACCESS_KEY"; plain "the S3 secret key" "$S3_SECRET_KEY"
    # Credentials and the origin's identity: readable by the owner only.
    (
      umask 077
      {
        echo "# Written by cdn-config/render.sh: the S3 origin and the key the edge signs with."
        echo "js_var \$s3_access_key \"$S3_ACCESS_KEY\";"
        echo "js_var \$s3_secret_key \"$S3_SECRET_KEY\";"
        echo "js_var \$s3_bucket \"$S3_BUCKET\";"
        echo "js_var \$s3_region \"$S3_REGION\";"
        echo "js_var \$s3_host \"$S3_HOST\";"
        if [ "$S3_SCHEME" = https ]; then
          echo "proxy_ssl_server_name on;"
          echo "proxy_ssl_name ${S3_HOST%:*};"
        fi
      } >"$OUT_DIR/s3-credentials.conf"
    )
    cp "$HERE/s3-sign.js" "$OUT_DIR/s3-sign.js"
    MEDIA_DIR=""
    ORIGIN_DESC="s3 $S3_SCHEME://$S3_HOSTPORT bucket $S3_BUCKET"
    ;;
  local)
    MEDIA_DIR=${ORIGIN:-${CAUDAL_MEDIA_DIR:-${CAUDAL_INGEST_STORAGE__ROOT:-$OUT_DIR/../media}}}
    mkdir -p "$MEDIA_DIR"
    MEDIA_DIR=$(cd "$MEDIA_DIR" && pwd)
    plain "the media folder path" "$MEDIA_DIR"
    S3_SCHEME=http S3_HOSTPORT=""
    rm -f "$OUT_DIR/s3-credentials.conf" "$OUT_DIR/s3-sign.js"
    ORIGIN_DESC="local folder $MEDIA_DIR"
    ;;
  *) die "origin mode must be s3 or local, got '$MODE'" ;;
esac

# A unix socket path is limited to 107 bytes.
((${#OUT_DIR} < 90)) || [ "$MODE" != local ] || die "OUT_DIR path too long for the origin's unix socket: $OUT_DIR"

# {{NAME}} substitution and #{{s3}} / #{{local}} / #{{tokens}} / #{{no-tokens}} / #{{status}}
# blocks (not nested).
if [ "$TOKENS" = on ]; then KEEP="$MODE tokens"; else KEEP="$MODE no-tokens"; fi
KEEP+=" live-$LIVE_COLLAPSE"
[ -z "$STATUS_LISTEN" ] || KEEP+=" status"
render() {
  awk -v mode="$MODE" -v keep=" $KEEP " \
    -v OUT_DIR="$OUT_DIR" -v LISTEN="$LISTEN" -v WORKERS="$WORKERS" -v USER_LINE="$USER_LINE" \
    -v CACHE_MAX_SIZE="$CACHE_MAX_SIZE" -v PLAYLIST_INACTIVE="$PLAYLIST_INACTIVE" \
    -v NJS_MODULE="$NJS_MODULE" -v S3_HOSTPORT="$S3_HOSTPORT" -v S3_SCHEME="$S3_SCHEME" \
    -v MEDIA_DIR="$MEDIA_DIR" -v STATUS_LISTEN="$STATUS_LISTEN" -v LIVE_ORIGIN="$LIVE_ORIGIN" '
    BEGIN {
      n = split("OUT_DIR LISTEN WORKERS USER_LINE CACHE_MAX_SIZE PLAYLIST_INACTIVE NJS_MODULE S3_HOSTPORT S3_SCHEME MEDIA_DIR MODE STATUS_LISTEN LIVE_ORIGIN", names, " ")
      vals["OUT_DIR"] = OUT_DIR; vals["LISTEN"] = LISTEN; vals["WORKERS"] = WORKERS
      vals["USER_LINE"] = USER_LINE; vals["CACHE_MAX_SIZE"] = CACHE_MAX_SIZE
      vals["PLAYLIST_INACTIVE"] = PLAYLIST_INACTIVE; vals["NJS_MODULE"] = NJS_MODULE
      vals["S3_HOSTPORT"] = S3_HOSTPORT; vals["S3_SCHEME"] = S3_SCHEME
      vals["MEDIA_DIR"] = MEDIA_DIR; vals["MODE"] = mode; vals["STATUS_LISTEN"] = STATUS_LISTEN
      vals["LIVE_ORIGIN"] = LIVE_ORIGIN
      skip = 0
    }
    /^[ \t]*#\{\{(s3|local|tokens|no-tokens|status|live-nginx|live-varnish)\}\}[ \t]*$/ {
      name = $0; gsub(/[ \t#{}]/, "", name)
      if (index(keep, " " name " ") == 0) skip = 1
      next
    }
    /^[ \t]*#\{\{\/(s3|local|tokens|no-tokens|status|live-nginx|live-varnish)\}\}[ \t]*$/ { skip = 0; next }
    skip { next }
    {
      for (i = 1; i <= n; i++) {
        k = "{{" names[i] "}}"
        while ((p = index($0, k)) > 0) $0 = substr($0, 1, p - 1) vals[names[i]] substr($0, p + length(k))
      }
      if ($0 ~ /\{\{[A-Za-z_]+\}\}/) { print "render.sh: unknown placeholder: " $0 > "/dev/stderr"; exit 1 }
      print
    }' "$1"
}

render "$HERE/nginx.conf.template" >"$OUT_DIR/nginx.conf.new"
rm -f "$OUT_DIR/origin-s3.conf" "$OUT_DIR/origin-local.conf"
for f in cors.conf edge-request.conf playlist.conf segment.conf live.conf playback-token.conf "origin-$MODE.conf"; do
  render "$HERE/snippets/$f" >"$OUT_DIR/$f"
done
mv "$OUT_DIR/nginx.conf.new" "$OUT_DIR/nginx.conf"

nginx -t -q -p "$OUT_DIR" -c "$OUT_DIR/nginx.conf" -g 'daemon off;' ||
  die "the rendered config does not pass nginx -t: $OUT_DIR/nginx.conf"
# nginx -t leaves an empty pid file behind; a running edge owns a non-empty one.
[ -s "$OUT_DIR/nginx.pid" ] || rm -f "$OUT_DIR/nginx.pid"
if [ "$TOKENS" = on ]; then TOKENS_DESC="playback keys $KIDS"; else TOKENS_DESC="playback tokens OFF (unsigned paths serve everything)"; fi
STATUS_DESC=""
[ -z "$STATUS_LISTEN" ] || STATUS_DESC="; stub_status on http://$STATUS_LISTEN/stub_status"
echo "render.sh: edge on http://$LISTEN -> $ORIGIN_DESC, live origin $LIVE_ORIGIN (collapsed by $LIVE_COLLAPSE); $TOKENS_DESC$STATUS_DESC; config $OUT_DIR/nginx.conf" >&2
