#!/usr/bin/env python3
"""Simulated low-latency HLS viewers of one live broadcast through the edge.

Run by bench/ll-viewers.sh, which starts the platform (ingest's live origin behind the nginx
edge), publishes with ffmpeg and hands over the broadcast's low-latency master playlist. Each
viewer behaves like hls.js in lowLatencyMode on one keep-alive connection: the master once, the
media playlist of one rung, then over and over a blocking reload for the part the preload hint
names (`_HLS_msn`/`_HLS_part`) and every new part the answer lists. Every viewer has its own
playback token (signed with the platform's key), so the edge checks a token on every request
and still keeps one cached copy per object.

Reports: how long blocking reloads and part fetches took (p50/p99/max), how far apart in time
the viewers received the same part (the edge's collapsing delay: a viewer waiting on nginx's
cache lock is woken on a timer), failed requests, and the live origin's requests per part
(ingest's caudal_ll_origin_requests_total against caudal_ll_parts_total).

Usage: python3 bench/edge/ll_viewers.py --edge-port P --key live/<id>/ll.m3u8 --keys-file F
       --metrics URL [--viewers 1000] [--duration 60] [--ramp 5] [--rung N]
"""

import argparse
import asyncio
import os
import re
import resource
import sys
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "cdn-config", "tests"))
import edgekit as kit  # noqa: E402

sys.path.insert(0, HERE)
from viewers import HttpConn, pct  # noqa: E402

PART = re.compile(r'#EXT-X-PART:.*URI="ll_(\d+)_(\d+)\.m4s"')
HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="ll_(\d+)_(\d+)\.m4s"')


class Stats:
    def __init__(self):
        self.reload_s = []
        self.part_s = []
        self.status = Counter()
        self.errors = Counter()
        # (msn, part) -> monotonic times each viewer had it
        self.received = defaultdict(list)


async def viewer(port, master_path, rung, stats, start_at, end_at):
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    conn = HttpConn(port)
    base = master_path.rsplit("/", 1)[0] + "/"

    async def get(path, kind):
        t = time.monotonic()
        try:
            status, _, body = await asyncio.wait_for(conn.get(path), 15)
        except Exception as e:  # noqa: BLE001 (a failed request is a figure, not a crash)
            stats.errors[f"{kind}: {type(e).__name__}"] += 1
            conn.close()
            return None, time.monotonic() - t
        stats.status[(kind, status)] += 1
        return (body if status == 200 else None), time.monotonic() - t

    body, _ = await get(master_path, "master")
    if body is None:
        return
    uris = [ln for ln in body.decode().splitlines() if ln and not ln.startswith("#")]
    media = base + uris[min(rung, len(uris) - 1)]
    folder = media.rsplit("/", 1)[0] + "/"
    body, _ = await get(media, "playlist")
    have = set()
    first = True
    while body is not None and time.monotonic() < end_at:
        text = body.decode()
        parts = [(int(m), int(p)) for m, p in PART.findall(text)]
        new = [x for x in parts if x not in have]
        if first:
            # start at the newest part, as a player joining at the live edge does
            new = new[-1:]
            have.update(parts)
            first = False
        for msn, p in new:
            part, took = await get(f"{folder}ll_{msn:05d}_{p}.m4s", "part")
            have.add((msn, p))
            if part is not None:
                stats.part_s.append(took)
                stats.received[(msn, p)].append(time.monotonic())
        hint = HINT.search(text)
        if not hint or "#EXT-X-ENDLIST" in text:
            break
        msn, p = int(hint.group(1)), int(hint.group(2))
        body, took = await get(f"{media}?_HLS_msn={msn}&_HLS_part={p}", "blocking reload")
        if body is not None:
            stats.reload_s.append(took)
    conn.close()


def counters(url):
    import urllib.request

    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out = Counter()
    for line in text.splitlines():
        m = re.match(r'(caudal_ll_origin_requests_total\{kind="([a-z_]+)"\}|caudal_ll_parts_total)\s+([0-9.e+]+)', line)
        if m:
            out[m.group(2) or "parts"] += float(m.group(3))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edge-port", type=int, required=True)
    ap.add_argument("--key", required=True, help="storage key of the low-latency master, live/<id>/ll.m3u8")
    ap.add_argument("--keys-file", required=True, help="the platform's playback keys (kid=secret)")
    ap.add_argument("--metrics", required=True, help="ingest's /metrics URL")
    ap.add_argument("--viewers", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--ramp", type=float, default=5, help="viewers join over this many seconds")
    ap.add_argument("--rung", type=int, default=0, help="index of the variant every viewer plays")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.viewers * 2 + 256)), hard))
    kid, secret = open(args.keys_file).read().strip().split(",")[0].split("=", 1)
    exp0 = int(time.time()) + 7200
    paths = [kit.signed_path(args.key, kid=kid, exp=exp0 + i, keys={kid: secret}) for i in range(args.viewers)]

    stats = Stats()
    before = counters(args.metrics)
    t0 = time.monotonic()
    start = t0 + 0.5
    end = start + args.ramp + args.duration

    async def run():
        await asyncio.gather(*[
            viewer(args.edge_port, paths[i], args.rung, stats, start + args.ramp * i / max(1, args.viewers), end)
            for i in range(args.viewers)
        ])

    asyncio.run(run())
    after = counters(args.metrics)
    d = {k: after[k] - before[k] for k in set(after) | set(before)}
    # the parts counter counts every rung; each viewer plays one
    rungs = max(1, int(os.environ.get("BENCH_RUNGS", "1")))
    parts_made = d.get("parts", 0) / rungs
    spread = []
    for times in stats.received.values():
        if len(times) >= max(2, args.viewers // 2):
            spread.append(max(times) - min(times))
    fails = sum(n for (kind, s), n in stats.status.items() if s != 200) + sum(stats.errors.values())
    total = sum(stats.status.values()) + sum(stats.errors.values())

    def line(name, xs):
        xs = sorted(xs)
        return (f"  {name:<34} n={len(xs):<7} p50 {pct(xs, 50) * 1000:7.1f} ms  p99 {pct(xs, 99) * 1000:7.1f} ms  "
                f"max {xs[-1] * 1000 if xs else 0:7.1f} ms")

    print(f"\n{args.viewers} low-latency viewers for {args.duration:.0f} s through the edge "
          f"({len(set(paths))} distinct playback tokens, variant {args.rung}), joined over {args.ramp:.0f} s")
    print(line("blocking reload (held until part)", stats.reload_s))
    print(line("part fetch", stats.part_s))
    print(line("same part, first to last viewer", spread))
    print(f"  requests {total}, failed {fails} ({100.0 * fails / max(1, total):.3f} %)")
    for (kind, s), n in sorted(stats.status.items()):
        if s != 200:
            print(f"    {kind}: {n} answered {s}")
    for what, n in stats.errors.items():
        print(f"    {what}: {n}")
    print(f"  live origin: {parts_made:.0f} parts made per rung while the viewers ran; requests the edge sent it:")
    for kind in ("blocking_playlist", "playlist", "part", "segment", "init"):
        n = d.get(kind, 0)
        per = n / parts_made if parts_made else float("nan")
        print(f"    {kind:<18} {n:8.0f}  ({per:.2f} per part)")


if __name__ == "__main__":
    main()
