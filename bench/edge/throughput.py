#!/usr/bin/env python3
"""Edge throughput: one cached ~1 MB, 2 s segment fetched with wrk (cache HIT) through
  - the edge with playback tokens (/p/<token>/<key>: njs checks the token on every request),
  - the same edge rendered with CAUDAL_EDGE_TOKENS=off (/<key>, no JavaScript on a hit),
  - a plain nginx serving the same file straight from disk.
Rounds alternate between the three (the order rotates each round). Prints req/s, MB/s, the
servers' own CPU time per request (nginx master + workers, from /proc: less sensitive than
req/s to other work on the machine) and the ratios tokens/off and edge/plain.

Usage: python3 bench/edge/throughput.py [--duration 10] [--connections 64] [--threads 2]
       [--size-kb 1000] [--mode s3|local] [--rounds 3] [--no-plain]
Needs nginx, wrk (apt-get install wrk), s3s-fs (s3 mode) and libnginx-mod-http-js.
Everything runs on loopback ports in a temporary folder that is removed afterwards.
"""

import argparse
import grp
import os
import pwd
import re
import shutil
import statistics
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "cdn-config", "tests"))
import edgekit as kit  # noqa: E402

PLAIN_CONF = """
{user}
worker_processes {workers};
pid nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
    types {{ video/mp2t ts; }}
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {root};
    }}
}}
"""

UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def wrk(url, args, master):
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency", url]
    cpu0 = kit.cpu_seconds(master)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = kit.cpu_seconds(master) - cpu0
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)", out)
    mbps = float(m.group(1)) * UNITS[m.group(2)] / 1e6
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "mbps": mbps, "p99": p99.group(1) if p99 else "?", "cpu_us": cpu / requests * 1e6,
            "non2xx": int(errors.group(1)) if errors else 0, "socket_errors": sock.group(1) if sock else "none"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each, alternating; medians reported")
    ap.add_argument("--size-kb", type=int, default=1000, help="segment size (1000 KB = 4 Mbit/s x 2 s)")
    ap.add_argument("--mode", choices=["s3", "local"], default="s3", help="edge origin")
    ap.add_argument("--no-plain", action="store_true", help="leave out the plain nginx")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    wd = kit.workdir("caudal-edge-bench-")
    stops = []
    try:
        key = "live/bench/1080p/seg_00001.ts"
        body = os.urandom(args.size_kb * 1000)
        disk = os.path.join(wd, "disk")
        os.makedirs(os.path.dirname(os.path.join(disk, key)))
        with open(os.path.join(disk, key), "wb") as f:
            f.write(body)

        if args.mode == "s3":
            s3 = kit.S3sFs(os.path.join(wd, "s3"))
            stops.append(s3.stop)
            s3.put(key, body, "video/mp2t")
            origin = s3
        else:
            origin = disk
        # two edges on one origin, each with its own folder and cache
        edge = kit.Edge(os.path.join(wd, "on"), args.mode, origin)
        stops.insert(0, edge.stop)
        off = kit.Edge(os.path.join(wd, "off"), args.mode, origin, env={"CAUDAL_EDGE_TOKENS": "off"})
        stops.insert(0, off.stop)
        signed = kit.signed_path(key)
        for e, path in ((edge, signed), (off, "/" + key)):
            for want in ("MISS", "HIT"):
                st, h, b = kit.http_get(e.url, path)
                assert st == 200 and b == body and h.get("x-cache-status") == want, (st, h)
        st, _, _ = kit.http_get(edge.url, "/" + key)
        assert st == 403, f"unsigned path through the token edge: {st}"

        targets = [("edge, tokens on (HIT)", edge.url + signed, edge.proc.p.pid),
                   ("edge, tokens off (HIT)", off.url + "/" + key, off.proc.p.pid)]
        plain_dir = os.path.join(wd, "plain")
        os.makedirs(os.path.join(plain_dir, "logs"))
        os.makedirs(os.path.join(plain_dir, "temp"))
        port = kit.free_port()
        with open(os.path.join(plain_dir, "nginx.conf"), "w") as f:
            # as root, keep the workers' user (like render.sh): "nobody" cannot read the temp folder
            user = ""
            if os.geteuid() == 0:
                user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
            f.write(PLAIN_CONF.format(user=user, workers=os.environ.get("CAUDAL_EDGE_WORKERS", "auto"), port=port, root=disk))
        if not args.no_plain:
            plain = kit.Proc(["nginx", "-p", plain_dir, "-c", os.path.join(plain_dir, "nginx.conf"),
                              "-g", "daemon off;"], os.path.join(wd, "plain.out"))
            stops.insert(0, plain.stop)
            kit.wait_port(port, 10, "plain nginx", plain.p)
            targets.append(("plain nginx from disk", f"http://127.0.0.1:{port}/{key}", plain.p.pid))

        print(f"segment {len(body) / 1e6:.3f} MB, {args.mode} origin; wrk -t{args.threads} -c{args.connections} "
              f"-d{args.duration}s; {os.cpu_count()} cores shared by wrk and nginx", flush=True)
        results = {t[0]: [] for t in targets}
        # alternate so that noise from other work on the machine hits all alike; rotate the order
        for rnd in range(args.rounds):
            for name, url, master in targets[rnd % len(targets):] + targets[:rnd % len(targets)]:
                r = wrk(url, args, master)
                results[name].append(r)
                print(f"round {rnd + 1}: {name:24s} {r['rps']:8.0f} req/s {r['mbps']:8.0f} MB/s  "
                      f"nginx CPU {r['cpu_us']:6.1f} us/req  p99 {r['p99']:>8s}  non-2xx {r['non2xx']}  "
                      f"socket errors: {r['socket_errors']}", flush=True)
        med = {}
        for name, rs in results.items():
            med[name] = [statistics.median(r[k] for r in rs) for k in ("rps", "mbps", "cpu_us")]
            print(f"median: {name:24s} {med[name][0]:8.0f} req/s {med[name][1]:8.0f} MB/s  "
                  f"nginx CPU {med[name][2]:6.1f} us/req")
        names = [t[0] for t in targets]
        on, offm = med[names[0]], med[names[1]]
        per_round = ", ".join(f"{a['rps'] / b['rps']:.3f}" for a, b in zip(results[names[0]], results[names[1]]))
        print(f"tokens on / off: {on[0] / offm[0]:.3f} (req/s), {on[1] / offm[1]:.3f} (MB/s); per round: {per_round}")
        print(f"tokens on - off: {on[2] - offm[2]:+.1f} us of nginx CPU per request "
              f"(off / on CPU per request: {offm[2] / on[2]:.3f})")
        if len(names) > 2:
            p = med[names[2]]
            print(f"edge / plain: tokens on {on[0] / p[0]:.2f}, tokens off {offm[0] / p[0]:.2f} (req/s)")
        for name, e in (("tokens on", edge), ("tokens off", off)):
            with open(e.logfile("upstream.log")) as f:
                fetches = sum(1 for _ in f)
            print(f"origin fetches during the run, {name}: {fetches - 1} (after the warm-up MISS)")
    finally:
        for s in stops:
            s()
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
