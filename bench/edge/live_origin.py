#!/usr/bin/env python3
"""A simulated live origin: uploads a new MPEG-TS-sized segment, then the live playlist that
lists it, to an S3-compatible server (SigV4) every --interval seconds, like ingest does.

Usage: python3 bench/edge/live_origin.py --endpoint http://127.0.0.1:PORT --prefix live/ID
       [--bucket media] [--segment-kb 250] [--interval 2] [--window 6] [--duration 90]
       [--events FILE]
Every segment starts with b"SEG<seq:08d>" so viewers can check what they got. --events gets
one JSON line per segment: {"seq": N, "key": ..., "listed": unix time the playlist listing it
was written}. Access key and secret come from CAUDAL_S3_ACCESS_KEY / CAUDAL_S3_SECRET_KEY
(default caudal / caudalsecret).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cdn-config", "tests"))
import edgekit as kit  # noqa: E402


def media_playlist(first_seq, last_seq, interval):
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{round(interval)}",
             f"#EXT-X-MEDIA-SEQUENCE:{first_seq}"]
    for s in range(first_seq, last_seq + 1):
        lines += [f"#EXTINF:{interval:.3f},", f"seg_{s:05d}.ts"]
    return ("\n".join(lines) + "\n").encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", default="media")
    ap.add_argument("--prefix", required=True, help="live/<video id>")
    ap.add_argument("--rung", default="720p")
    ap.add_argument("--segment-kb", type=int, default=250)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--window", type=int, default=6)
    ap.add_argument("--duration", type=float, default=90)
    ap.add_argument("--events")
    args = ap.parse_args()
    s3 = kit.S3(args.endpoint, os.environ.get("CAUDAL_S3_ACCESS_KEY", "caudal"),
                os.environ.get("CAUDAL_S3_SECRET_KEY", "caudalsecret"))
    bw = args.segment_kb * 8000 // round(args.interval) or 1
    s3.put(args.bucket, f"{args.prefix}/master.m3u8",
           (f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH={bw},RESOLUTION=1280x720\n{args.rung}/index.m3u8\n").encode(),
           "application/vnd.apple.mpegurl")
    filler = os.urandom(args.segment_kb * 1000)
    events = open(args.events, "a", buffering=1) if args.events else None
    start = time.time()
    seq = 0
    while time.time() - start < args.duration:
        seq += 1
        key = f"{args.prefix}/{args.rung}/seg_{seq:05d}.ts"
        body = b"SEG%08d" % seq + filler[11:]
        # segment first, playlist second: a listed segment can always be fetched
        s3.put(args.bucket, key, body, "video/mp2t")
        s3.put(args.bucket, f"{args.prefix}/{args.rung}/index.m3u8",
               media_playlist(max(1, seq - args.window + 1), seq, args.interval), "application/vnd.apple.mpegurl")
        if events:
            events.write(json.dumps({"seq": seq, "key": key, "listed": time.time()}) + "\n")
        next_at = start + seq * args.interval
        time.sleep(max(0.0, next_at - time.time()))


if __name__ == "__main__":
    main()
