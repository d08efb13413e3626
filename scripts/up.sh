#!/usr/bin/env bash
# Command 1: installs whatever is missing, builds what is not built, and runs the whole
# platform on loopback until Ctrl-C. Data lives in .caudal/run/ and survives restarts.
# Every port can be changed with the environment variables below.
# CAUDAL_CLUSTER=on runs the cluster instead (README "Cluster mode"): two instances of every
# service behind an nginx balancer, three Garage nodes, a MariaDB replica, Redis; data in
# .caudal/cluster/. The first run builds Garage (about 20 minutes on 2 cores).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CAUDAL_ROOT"

source "$CAUDAL_ROOT/scripts/platform.sh"
platform_defaults

install_deps
[ "$CAUDAL_CLUSTER" != on ] || install_garage
log "building"
cargo build --workspace --bins --locked

STATE="$CAUDAL_ROOT/.caudal/run"
[ "$CAUDAL_CLUSTER" != on ] || STATE="$CAUDAL_ROOT/.caudal/cluster"
trap 'log "stopping"; stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

start_platform "$STATE"

cat <<INFO

  Caudal is running. Ctrl-C stops everything.

  Publish (OBS: Settings > Stream > Custom):
    Server      rtmp://127.0.0.1:$CAUDAL_RTMP_PORT/live
    Stream key  $DEMO_KEY        (demo account demo@caudal.local / demo-password-123)
  or with ffmpeg:
    ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine -c:v libx264 -preset veryfast \\
      -g 60 -c:a aac -f flv rtmp://127.0.0.1:$CAUDAL_RTMP_PORT/live/$DEMO_KEY

  HLS output:  $MEDIA_AT
               live/<video id>/master.m3u8 (live), live/<video id>/vod.m3u8 (after the broadcast)
  Live now:    http://127.0.0.1:$CAUDAL_INGEST_HTTP_PORT/v1/streams
  Web app:     http://127.0.0.1:$CAUDAL_BFF_PORT/    (video through the edge at http://127.0.0.1:$CAUDAL_EDGE_PORT/)
               sign up at /signup, then /studio: become a creator, make a stream key, go live;
               test cards: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined

  Upload a video in the browser: http://127.0.0.1:$CAUDAL_BFF_PORT/upload
  (as a creator, or the demo creator), or with any tus 1.0 client (README "Uploading a video"):
    http://127.0.0.1:$CAUDAL_BFF_PORT/v1/uploads
  Originals go to uploads/<video id>/source; the transcode worker (job queue: NATS on
  nats://127.0.0.1:$CAUDAL_NATS_PORT) writes the ladder to vod/<video id>/ and marks the video ready.

  Logs:        $STATE/logs/    (worker.log: the transcode worker)
INFO
if [ "$CAUDAL_CLUSTER" = on ]; then
  cat <<INFO
  Cluster:     every service twice behind the balancer ($STATE/balancer/nginx.conf): the ports
               above are the balancer's; instances listen from $CAUDAL_CLUSTER_PORT_BASE.
               Garage S3 nodes on ${CLUSTER_GARAGE_S3[*]} (replication 3, through the balancer
               on $CAUDAL_S3_PORT); MariaDB replica on $CAUDAL_MYSQL_REPLICA_PORT; Redis on $CAUDAL_REDIS_PORT.
INFO
fi
wait
