#!/usr/bin/env bash
# Builds the deployment's container images with podman, one per service and one for the
# transcode worker (infra/containers/*.Containerfile), and prints their sizes.
#
#   bash scripts/images.sh [TAG]          # TAG defaults to the workspace version
#
# No registry can be reached here, so the base images come from Debian's packages:
# mmdebstrap makes a minimal bookworm root (ca-certificates, tzdata) and a media root (the same
# plus FFmpeg's shared libraries, for ingest-rtmp and the worker), and `podman import` turns
# them into localhost/caudal-base:bookworm and localhost/caudal-media:bookworm. The services
# are release binaries copied into those (no compiler in any image), run as uid 10001.
# `podman build --isolation=chroot` works on these machines; `podman run` does not (cgroups).
#
# Environment: CAUDAL_RDS_CA_BUNDLE (the Amazon RDS CA bundle, global-bundle.pem, for
# metadata-svc's TLS to DocumentDB; without it the image has none), CAUDAL_IMAGE_PREFIX
# (default caudal/), CAUDAL_IMAGES_SKIP_BUILD=1 (use target/release as it is).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CAUDAL_ROOT"

TAG=${1:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)}
PREFIX=${CAUDAL_IMAGE_PREFIX:-caudal/}
WORK="$CAUDAL_ROOT/.caudal/images"
SERVICES=(bff user-svc metadata-svc ingest-rtmp transcoder)

need=()
command -v podman >/dev/null || need+=(podman)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} (apt)"
  apt-get install -y -q "${need[@]}" >/dev/null
fi

if [ "${CAUDAL_IMAGES_SKIP_BUILD:-0}" != 1 ]; then
  log "building the release binaries"
  cargo build --release --locked -p bff -p user-svc -p metadata-svc -p ingest-rtmp -p transcoder --bins
fi

rm -rf "$WORK/context" && mkdir -p "$WORK/context/bin" "$WORK/context/web" "$WORK/context/ca"
for s in "${SERVICES[@]}"; do
  cp "target/release/$s" "$WORK/context/bin/$s"
  strip --strip-debug "$WORK/context/bin/$s"
done
cp -r web/public "$WORK/context/web/public"
[ -f web/node_modules/hls.js/dist/hls.min.js ] || (cd web && npm ci --no-audit --no-fund >/dev/null)
cp web/node_modules/hls.js/dist/hls.min.js "$WORK/context/web/hls.min.js"
if [ -n "${CAUDAL_RDS_CA_BUNDLE:-}" ]; then
  cp "$CAUDAL_RDS_CA_BUNDLE" "$WORK/context/ca/rds-global-bundle.pem"
else
  log "CAUDAL_RDS_CA_BUNDLE not set: the metadata-svc image has no RDS CA bundle (DocumentDB's TLS needs it)"
fi

# documentation, manuals and translations are left out of every root
strip_docs=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright')
base_image() { # name packages
  local name=$1 packages=$2
  if podman image exists "localhost/$name:bookworm"; then
    log "localhost/$name:bookworm exists (podman rmi it to make it again)"
    return
  fi
  log "making localhost/$name:bookworm with mmdebstrap ($packages)"
  mmdebstrap --quiet --variant=minbase --include="$packages" "${strip_docs[@]}" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
    bookworm "$WORK/$name.tar" http://deb.debian.org/debian
  podman import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'WORKDIR /' \
    "$WORK/$name.tar" "localhost/$name:bookworm" >/dev/null
  rm -f "$WORK/$name.tar"
}
base_image caudal-base ca-certificates,tzdata
base_image caudal-media ca-certificates,tzdata,libavcodec59,libavformat59,libavutil57,libswscale6,libswresample4

for s in "${SERVICES[@]}"; do
  log "building ${PREFIX}$s:$TAG"
  podman build --quiet --isolation=chroot -f "infra/containers/$s.Containerfile" \
    -t "${PREFIX}$s:$TAG" "$WORK/context" >/dev/null
done

# `podman run` does not work here: check in each image's root that its binary finds every
# shared library it links
for s in "${SERVICES[@]}"; do
  mnt=$(podman image mount "${PREFIX}$s:$TAG")
  missing=$(chroot "$mnt" /usr/bin/ldd "/usr/local/bin/$s" | grep 'not found' || true)
  podman image unmount "${PREFIX}$s:$TAG" >/dev/null
  [ -z "$missing" ] || die "${PREFIX}$s:$TAG lacks libraries: $missing"
done
log "every binary finds its shared libraries in its image"

echo
echo "images (uncompressed size as podman reports it):"
for name in localhost/caudal-base:bookworm localhost/caudal-media:bookworm; do
  podman image inspect --format "  {{index .RepoTags 0}}  {{.Size}} bytes" "$name"
done
for s in "${SERVICES[@]}"; do
  podman image inspect --format "  {{index .RepoTags 0}}  {{.Size}} bytes" "${PREFIX}$s:$TAG"
done
