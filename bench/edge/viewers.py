#!/usr/bin/env python3
"""1,000 simulated viewers of one live stream through the edge.

Starts s3s-fs, the edge (cdn-config/render.sh + nginx, s3 origin) and live_origin.py (a new
segment + live playlist every 2 s), waits for three segments, then runs the viewers for
--duration seconds. Each viewer behaves like hls.js on one keep-alive connection: master
playlist once, then the live playlist (again after the target duration when it changed, half
of it when not), and every new segment it lists (the last three at start). Every viewer has
its own playback token (/p/<token>/live/<id>/master.m3u8, as bff hands out; half signed with
kid k1, half with k2), and resolves the playlists' relative URIs against the playlist's path,
so its token is in every request.

Reports: origin fetches per object (counted in s3s-fs's own request log), failed requests,
segment and playlist fetch times (p50/p99/max), how long after its listing at the origin each
segment reached viewers, and the edge's cache statuses.

Usage: python3 bench/edge/viewers.py [--viewers 1000] [--duration 60] [--segment-kb 250]
       [--ramp 10] [--no-tokens]
--no-tokens: the edge rendered with CAUDAL_EDGE_TOKENS=off and unsigned paths (before tokens).
"""

import argparse
import asyncio
import json
import os
import random
import re
import resource
import shutil
import signal
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "cdn-config", "tests"))
import edgekit as kit  # noqa: E402

TIMEOUT = 10.0


class HttpConn:
    """One keep-alive HTTP/1.1 connection (asyncio streams), reopened when the server closes it."""

    def __init__(self, port):
        self.port = port
        self.r = self.w = None

    async def get(self, path):
        for attempt in (0, 1):
            if self.w is None:
                self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                self.w.write(f"GET {path} HTTP/1.1\r\nHost: edge\r\nUser-Agent: caudal-viewer\r\n\r\n".encode())
                head = await self.r.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                headers = {}
                for ln in lines[1:]:
                    if ":" in ln:
                        k, v = ln.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await self.r.readexactly(int(headers.get("content-length", "0")))
                if headers.get("connection", "").lower() == "close":
                    self.close()
                return status, headers, body
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                self.close()
                if attempt:
                    raise e
        raise AssertionError("unreachable")

    def close(self):
        if self.w is not None:
            self.w.close()
        self.r = self.w = None


class Stats:
    def __init__(self):
        self.seg_times, self.pl_times = [], []
        self.failures = Counter()
        self.requests = 0
        self.bytes = 0
        self.delivered = {}  # seq -> list of unix times a viewer finished fetching it


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def viewer(port, master_path, stats, start_at, end_at):
    await asyncio.sleep(max(0.0, start_at - time.time()))
    conn = HttpConn(port)

    async def fetch(path, kind):
        t0 = time.perf_counter()
        try:
            status, headers, body = await asyncio.wait_for(conn.get(path), TIMEOUT)
        except asyncio.TimeoutError:
            conn.close()
            stats.failures[f"{kind} timeout"] += 1
            return None
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            conn.close()
            stats.failures[f"{kind} {type(e).__name__}"] += 1
            return None
        stats.requests += 1
        stats.bytes += len(body)
        if status != 200:
            stats.failures[f"{kind} HTTP {status}"] += 1
            return None
        (stats.seg_times if kind == "segment" else stats.pl_times).append(time.perf_counter() - t0)
        return body

    try:
        master = await fetch(master_path, "master")
        if master is None:
            return
        variant = [ln for ln in master.decode().splitlines() if ln and not ln.startswith("#")][0]
        # relative URIs resolve against the playlist's path: the token comes along
        playlist_path = master_path.rsplit("/", 1)[0] + "/" + variant
        base = playlist_path.rsplit("/", 1)[0]
        last = None
        while time.time() < end_at:
            t0 = time.time()
            pl = await fetch(playlist_path, "playlist")
            changed = False
            if pl is not None:
                text = pl.decode()
                first = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
                uris = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
                segs = list(enumerate(uris, start=first))
                joining = last is None
                new = segs[-3:] if joining else [s for s in segs if s[0] > last]
                for seq, uri in new:
                    if time.time() >= end_at:
                        break
                    body = await fetch(f"{base}/{uri}", "segment")
                    if body is not None:
                        if not body.startswith(b"SEG%08d" % seq):
                            stats.failures["segment wrong content"] += 1
                        stats.delivered.setdefault(seq, [])
                        if not joining:  # the three segments fetched on joining are old by design
                            stats.delivered[seq].append(time.time())
                    last = seq
                    changed = True
            # hls.js: reload after one target duration (2 s) when the playlist changed, half when not
            await asyncio.sleep(max(0.0, (2.0 if changed else 1.0) - (time.time() - t0)))
    finally:
        conn.close()


async def run_viewers(port, master_paths, duration, ramp):
    stats = Stats()
    t0 = time.time() + 0.5
    end = t0 + duration
    tasks = [asyncio.create_task(viewer(port, path, stats, t0 + random.uniform(0, ramp), end)) for path in master_paths]
    await asyncio.gather(*tasks)
    return stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--viewers", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--segment-kb", type=int, default=250, help="250 KB per 2 s = a 1 Mbit/s rung")
    ap.add_argument("--ramp", type=float, default=10, help="viewers join over this many seconds")
    ap.add_argument("--no-tokens", action="store_true", help="edge with CAUDAL_EDGE_TOKENS=off, unsigned paths")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.viewers + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.viewers + 1000), hard))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    wd = kit.workdir("caudal-edge-viewers-")
    stops = []
    try:
        s3 = kit.S3sFs(os.path.join(wd, "s3"))
        stops.append(s3.stop)
        edge = kit.Edge(os.path.join(wd, "s3"), "s3", s3,
                        env={"CAUDAL_EDGE_TOKENS": "off"} if args.no_tokens else None)
        stops.insert(0, edge.stop)
        prefix = "live/" + "%032x" % random.getrandbits(128)
        events = os.path.join(wd, "origin-events.jsonl")
        origin = kit.Proc([sys.executable, os.path.join(HERE, "live_origin.py"), "--endpoint", s3.endpoint,
                           "--prefix", prefix, "--segment-kb", str(args.segment_kb),
                           "--duration", str(args.duration + 10), "--events", events],
                          os.path.join(wd, "live_origin.log"))
        stops.insert(0, origin.stop)
        while not os.path.exists(events) or sum(1 for _ in open(events)) < 3:
            if origin.p.poll() is not None:
                sys.exit("live_origin.py stopped: " + open(origin.log).read()[-2000:])
            time.sleep(0.1)
        master = f"{prefix}/master.m3u8"
        if args.no_tokens:
            paths = ["/" + master] * args.viewers
        else:
            # one token per viewer: distinct expiries, kids k1 and k2 alternating
            exp0 = int(time.time()) + 3600
            paths = [kit.signed_path(master, kid="k1" if i % 2 else "k2", exp=exp0 + i) for i in range(args.viewers)]
        print(f"{args.viewers} viewers for {args.duration:.0f} s (joining over {args.ramp:.0f} s), "
              f"{args.segment_kb} KB segments every 2 s, {os.cpu_count()} cores for everything; "
              f"{'tokens off, unsigned paths' if args.no_tokens else f'{len(set(paths))} distinct playback tokens'}",
              flush=True)
        cpu0 = os.times()
        edge_cpu0 = kit.cpu_seconds(edge.proc.p.pid)
        wall0 = time.time()
        stats = asyncio.run(run_viewers(edge.port, paths, args.duration, args.ramp))
        wall = time.time() - wall0
        cpu1 = os.times()
        edge_cpu_s = kit.cpu_seconds(edge.proc.p.pid) - edge_cpu0
        origin.stop()

        listed = {}
        for ln in open(events):
            e = json.loads(ln)
            listed[e["seq"]] = e["listed"]
        gets = s3.gets()
        seg_fetches = {int(re.search(r"seg_(\d+)", k).group(1)): v for k, v in gets.items() if k.endswith(".ts")}
        delivered_segs = sorted(stats.delivered)
        per_seg = [seg_fetches.get(s, 0) for s in delivered_segs] or [0]  # [0]: nothing delivered
        playlist_fetches = sum(v for k, v in gets.items() if k.endswith("index.m3u8"))
        master_fetches = sum(v for k, v in gets.items() if k.endswith("master.m3u8"))
        delays = [t - listed[s] for s, ts in stats.delivered.items() if s in listed for t in ts] or [float("nan")]
        cache = Counter()
        for ln in open(edge.logfile("access.log"), errors="replace"):
            m = re.search(r'"GET \S+\.(m3u8|ts) HTTP/1.1" (\d+) \d+ cache=(\S+)', ln)
            if m:
                cache[(m.group(1), m.group(3))] += 1

        total_failed = sum(stats.failures.values())
        print(f"requests: {stats.requests} ok+http-error, {stats.requests / wall:.0f} req/s, "
              f"{stats.bytes / wall / 1e6:.1f} MB/s to viewers; load client CPU "
              f"{(cpu1.user - cpu0.user + cpu1.system - cpu0.system) / wall * 100:.0f}% of one core")
        print(f"edge nginx CPU: {edge_cpu_s / wall * 100:.0f}% of one core, "
              f"{edge_cpu_s / max(1, stats.requests) * 1e6:.0f} us per request")
        print(f"failed requests: {total_failed} {dict(stats.failures) if total_failed else ''}")
        print(f"segments watched: {len(delivered_segs)}; origin fetches per segment: "
              f"min {min(per_seg)} max {max(per_seg)} total {sum(per_seg)} "
              f"({Counter(per_seg)} segments by fetch count)")
        print(f"live playlist: {playlist_fetches} origin fetches in {wall:.0f} s "
              f"({playlist_fetches / wall:.2f}/s); master playlist: {master_fetches} origin fetches")
        print(f"segment fetch time: p50 {pct(stats.seg_times, 50) * 1000:.1f} ms  "
              f"p99 {pct(stats.seg_times, 99) * 1000:.1f} ms  max {max(stats.seg_times, default=float('nan')) * 1000:.1f} ms "
              f"({len(stats.seg_times)} segments)")
        print(f"playlist fetch time: p50 {pct(stats.pl_times, 50) * 1000:.1f} ms  "
              f"p99 {pct(stats.pl_times, 99) * 1000:.1f} ms  max {max(stats.pl_times, default=float('nan')) * 1000:.1f} ms "
              f"({len(stats.pl_times)} playlists)")
        print(f"segment listed at origin -> received by a viewer: p50 {pct(delays, 50):.2f} s  "
              f"p99 {pct(delays, 99):.2f} s  max {max(delays):.2f} s")
        print("edge cache statuses: " + ", ".join(f"{k[0]} {k[1]}: {v}" for k, v in sorted(cache.items())))
        if total_failed or max(per_seg) != 1:
            print("goal missed: want one origin fetch per segment and no failures")
    finally:
        for s in stops:
            s()
        if os.environ.get("CAUDAL_EDGE_KEEP"):
            print(f"files kept in {wd}")
        else:
            shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
