#!/usr/bin/env python3
"""Edge throughput: one cached ~1 MB, 2 s segment fetched through the edge (cache HIT) with wrk,
against a plain nginx serving the same file straight from disk. Prints req/s, MB/s and the ratio.

Usage: python3 bench/edge/throughput.py [--duration 10] [--connections 64] [--threads 2]
       [--size-kb 1000] [--mode s3|local] [--rounds 3]
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


def wrk(url, args):
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)", out)
    mbps = float(m.group(1)) * UNITS[m.group(2)] / 1e6
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "mbps": mbps, "p99": p99.group(1) if p99 else "?",
            "non2xx": int(errors.group(1)) if errors else 0, "socket_errors": sock.group(1) if sock else "none"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each, alternating; medians reported")
    ap.add_argument("--size-kb", type=int, default=1000, help="segment size (1000 KB = 4 Mbit/s x 2 s)")
    ap.add_argument("--mode", choices=["s3", "local"], default="s3", help="edge origin")
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
            edge = kit.Edge(os.path.join(wd, "s3"), "s3", s3)
        else:
            edge = kit.Edge(wd, "local", disk)
        stops.insert(0, edge.stop)
        for want in ("MISS", "HIT"):
            st, h, b = kit.http_get(edge.url, "/" + key)
            assert st == 200 and b == body and h.get("x-cache-status") == want, (st, h)

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
        plain = kit.Proc(["nginx", "-p", plain_dir, "-c", os.path.join(plain_dir, "nginx.conf"),
                          "-g", "daemon off;"], os.path.join(wd, "plain.out"))
        stops.insert(0, plain.stop)
        kit.wait_port(port, 10, "plain nginx", plain.p)

        print(f"segment {len(body) / 1e6:.2f} MB; wrk -t{args.threads} -c{args.connections} "
              f"-d{args.duration}s; {os.cpu_count()} cores shared by wrk and nginx", flush=True)
        targets = (("edge (cache HIT, " + args.mode + " origin)", edge.url + "/" + key),
                   ("plain nginx from disk", f"http://127.0.0.1:{port}/{key}"))
        results = {name: [] for name, _ in targets}
        # alternate the two so that noise from other work on the machine hits both alike
        for rnd in range(args.rounds):
            for name, url in targets:
                r = wrk(url, args)
                results[name].append(r)
                print(f"round {rnd + 1}: {name:32s} {r['rps']:8.0f} req/s {r['mbps']:8.0f} MB/s  "
                      f"p99 {r['p99']:>8s}  non-2xx {r['non2xx']}  socket errors: {r['socket_errors']}", flush=True)
        med = {}
        for name, rs in results.items():
            med[name] = (statistics.median(r["rps"] for r in rs), statistics.median(r["mbps"] for r in rs))
            print(f"median: {name:32s} {med[name][0]:8.0f} req/s {med[name][1]:8.0f} MB/s")
        (e_rps, e_mbps), (p_rps, p_mbps) = med.values()
        print(f"edge / plain: {e_rps / p_rps:.2f} (req/s), {e_mbps / p_mbps:.2f} (MB/s)")
        with open(edge.logfile("upstream.log")) as f:
            fetches = sum(1 for _ in f)
        print(f"origin fetches during the run: {fetches - 1} (after the warm-up MISS)")
    finally:
        for s in stops:
            s()
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
