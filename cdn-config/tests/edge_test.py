#!/usr/bin/env python3
"""Edge tests: the rendered nginx config, run by the real nginx, against the real s3s-fs
(SigV4 checked) and against a local media folder.

Usage: python3 cdn-config/tests/edge_test.py [-k SUBSTRING]
Needs nginx, libnginx-mod-http-js (render.sh installs it when root) and s3s-fs on PATH or in
~/.cargo/bin. Every server runs on free loopback ports in a temporary folder that is removed
at the end (kept, with its logs, when a test fails or CAUDAL_EDGE_KEEP=1). Closes with "edge: N passed, M failed".
"""

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgekit as kit  # noqa: E402

CORS_EXPOSED = {"content-length", "content-range"}


def uid():
    return "%08x" % random.getrandbits(32)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def check_cors(h, what):
    check(h.get("access-control-allow-origin") == "*", f"{what}: no Access-Control-Allow-Origin: * in {h}")
    exposed = {x.strip().lower() for x in h.get("access-control-expose-headers", "").split(",")}
    check(CORS_EXPOSED <= exposed, f"{what}: Access-Control-Expose-Headers lacks {CORS_EXPOSED - exposed}")


def settled(read):
    """read() once the servers have written their log lines for the requests just answered
    (an access log line is written right after the response)."""
    time.sleep(0.3)
    return read()


def get(edge, path, **kw):
    return kit.http_get(edge.url, path, **kw)


def concurrent_gets(edge, path, n):
    """n clients, each with its own connection already open, send GET at the same instant."""
    conns = [http.client.HTTPConnection("127.0.0.1", edge.port, timeout=20) for _ in range(n)]
    for c in conns:
        c.connect()
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        try:
            barrier.wait()
            conns[i].request("GET", path)
            r = conns[i].getresponse()
            results[i] = (r.status, r.getheader("X-Cache-Status"), r.read())
        except Exception as e:  # reported by the caller
            results[i] = ("error", repr(e), b"")
        finally:
            conns[i].close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# ---------------------------------------------------------------- S3 origin (s3s-fs)

def t_s3_segment_miss_then_hit(env):
    s3, edge = env["s3"], env["edge"]
    key = f"live/{uid()}/720p/seg_00001.ts"
    body = os.urandom(188 * 1000)
    s3.put(key, body, "video/mp2t")
    st, h, b = get(edge, "/" + key)
    check(st == 200 and b == body, f"first GET: {st}, {len(b)} bytes")
    check(h.get("x-cache-status") == "MISS", f"first GET: X-Cache-Status {h.get('x-cache-status')}")
    check(h.get("cache-control") == "public, max-age=31536000, immutable", f"Cache-Control {h.get('cache-control')}")
    check(h.get("content-type") == "video/mp2t", f"Content-Type {h.get('content-type')}")
    check_cors(h, "segment 200")
    st, h, b = get(edge, "/" + key)
    check(st == 200 and b == body and h.get("x-cache-status") == "HIT", f"second GET: {st} {h.get('x-cache-status')}")
    # the query string is not part of the cache key (cache-busting cannot reach the origin)
    st, h, b = get(edge, f"/{key}?nocache={uid()}")
    check(st == 200 and h.get("x-cache-status") == "HIT", f"GET with a query: {st} {h.get('x-cache-status')}")
    st, h, b = get(edge, "/" + key, method="HEAD")
    check(st == 200 and h.get("content-length") == str(len(body)) and h.get("x-cache-status") == "HIT",
          f"HEAD: {st} {h}")
    n = s3.gets().get(f"/media/{key}", 0)
    check(n == 1, f"origin saw {n} GETs for the segment, expected 1")


def t_s3_playlist_fresh_within_ttl(env):
    """Origin rewrites a playlist every 250 ms while 4 viewers poll it (about 40 req/s).
    No response may be older than the cache lifetime plus the refresh: nginx counts cache
    lifetimes in whole seconds, so "1 s" keeps a copy 1 to 2 s; the bound is 2 s + 0.75 s."""
    s3, edge = env["s3"], env["edge"]
    key = f"live/{uid()}/720p/index.m3u8"
    writer = kit.S3(s3.endpoint, s3.ACCESS_KEY, s3.SECRET_KEY)
    available = {}  # version -> time its PUT had completed
    stop = threading.Event()

    def playlist(v):
        return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{v}\n".encode()

    def update():
        v = 0
        while not stop.is_set():
            v += 1
            writer.put("media", key, playlist(v), "application/vnd.apple.mpegurl")
            available[v] = time.time()
            time.sleep(0.25)

    updater = threading.Thread(target=update)
    updater.start()
    while not available:
        time.sleep(0.01)
    seen, errors = [], []

    def poll():
        c = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)
        end = time.time() + 6
        while time.time() < end:
            t0 = time.time()
            c.request("GET", "/" + key)
            r = c.getresponse()
            b = r.read()
            if r.status != 200:
                errors.append(r.status)
            else:
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                check_cors(hdrs, "playlist 200")
                # browsers must not keep their own copy on top of the edge's
                check(hdrs.get("cache-control") == "no-cache",
                      f"playlist Cache-Control {hdrs.get('cache-control')}")
                seen.append((t0, int(re.search(rb"SEQUENCE:(\d+)", b).group(1)), r.getheader("X-Cache-Status")))
            time.sleep(0.1)
        c.close()

    pollers = [threading.Thread(target=poll) for _ in range(4)]
    try:
        for p in pollers:
            p.start()
        for p in pollers:
            p.join()
    finally:
        stop.set()
        updater.join()
    check(not errors, f"playlist errors: {errors[:5]}")
    check(len(seen) > 100, f"only {len(seen)} playlist responses")
    worst = 0.0
    for t0, v, _ in seen:
        newer = available.get(v + 1)
        if newer is not None and newer < t0:
            worst = max(worst, t0 - newer)
    fetches = s3.gets().get(f"/media/{key}", 0)
    statuses = sorted({s for _, _, s in seen})
    print(f"    {len(seen)} playlist responses {statuses}, worst staleness {worst:.2f} s, "
          f"{fetches} origin fetches in 6 s", flush=True)
    check(worst <= 2.75, f"a playlist was served {worst:.2f} s after a newer one was at the origin")
    check(fetches <= 8, f"{fetches} origin fetches for one playlist in 6 s (one per 1-2 s expected)")
    check(max(v for _, v, _ in seen) >= max(available) - 8, "the newest playlists never reached viewers")


def t_s3_collapse_50_concurrent_misses(env):
    s3, edge = env["s3"], env["edge"]
    key = f"live/{uid()}/1080p/seg_00042.ts"
    body = os.urandom(1024 * 1024)
    s3.put(key, body, "video/mp2t")
    results = concurrent_gets(edge, "/" + key, 50)
    bad = [r[:2] for r in results if r[0] != 200 or r[2] != body]
    check(not bad, f"{len(bad)} of 50 concurrent GETs failed: {bad[:5]}")
    n = s3.gets().get(f"/media/{key}", 0)
    statuses = {}
    for r in results:
        statuses[r[1]] = statuses.get(r[1], 0) + 1
    print(f"    50 concurrent first requests: {statuses}, origin GETs: {n}", flush=True)
    check(n == 1, f"50 concurrent first requests caused {n} origin fetches, expected 1")


def t_s3_missing_is_short_lived_404(env):
    s3, edge = env["s3"], env["edge"]
    key = f"live/{uid()}/720p/seg_00007.ts"
    st, h, b = get(edge, "/" + key)
    check(st == 404, f"missing object: {st}, expected 404")
    check_cors(h, "404")
    check(h.get("cache-control") == "public, max-age=1", f"404 Cache-Control {h.get('cache-control')}")
    st, h, _ = get(edge, "/" + key)
    check(st == 404, f"missing object again: {st}")
    body = b"late segment"
    s3.put(key, body, "video/mp2t")
    uploaded = time.time()
    while True:
        st, h, b = get(edge, "/" + key)
        if st == 200:
            break
        check(st == 404, f"while waiting for the upload to show: {st}")
        check(time.time() - uploaded < 3.0, "the uploaded object was still a 404 3 s after its upload")
        time.sleep(0.05)
    waited = time.time() - uploaded
    check(b == body, "wrong body after the upload")
    print(f"    object visible {waited:.2f} s after its upload", flush=True)
    # the 404 was cached (collapsed) while it lasted, not fetched per request
    n = s3.gets().get(f"/media/{key}", 0)
    check(n <= 4, f"{n} origin fetches for a missing-then-uploaded object")


def t_s3_forbidden_becomes_404(env):
    """An origin that answers 403 (here: the edge signs with a wrong secret, as S3 answers 403
    for a missing key to callers without ListBucket) is a 404 for clients, with CORS."""
    s3 = env["s3"]
    key = f"live/{uid()}/720p/seg_00001.ts"
    s3.put(key, b"x" * 100, "video/mp2t")
    wd = kit.workdir("caudal-edge-403-")
    env["cleanup"].append(lambda: shutil.rmtree(wd, ignore_errors=True))

    class WrongKey:
        ACCESS_KEY, SECRET_KEY, bucket, endpoint = s3.ACCESS_KEY, "not-the-secret", s3.bucket, s3.endpoint

    bad_edge = kit.Edge(wd, "s3", WrongKey)
    env["cleanup"].insert(0, bad_edge.stop)
    for path in ("/" + key, f"/live/{uid()}/720p/index.m3u8"):
        st, h, b = get(bad_edge, path)
        check(st == 404, f"{path}: origin 403 gave {st} to the client, expected 404")
        check_cors(h, "404 from 403")
    log = ""
    for _ in range(40):  # nginx writes the log line just after the response
        with open(bad_edge.logfile("upstream.log")) as f:
            log = f.read()
        if "us=403" in log:
            break
        time.sleep(0.05)
    check("us=403" in log, f"the origin did not answer 403: {log}")


def t_s3_range_206_with_cors(env):
    s3, edge = env["s3"], env["edge"]
    key = f"live/{uid()}/480p/seg_00003.ts"
    body = os.urandom(5000)
    s3.put(key, body, "video/mp2t")
    for attempt in ("miss", "hit"):
        st, h, b = get(edge, "/" + key, headers={"Range": "bytes=100-199", "Origin": "http://watch.example"})
        check(st == 206, f"Range ({attempt}): {st}, expected 206")
        check(b == body[100:200], f"Range ({attempt}): wrong bytes")
        check(h.get("content-range") == f"bytes 100-199/{len(body)}", f"Content-Range {h.get('content-range')}")
        check_cors(h, f"206 ({attempt})")
    st, h, b = get(edge, "/" + key, headers={"Range": "bytes=-10"})
    check(st == 206 and b == body[-10:], f"suffix Range: {st}")
    n = s3.gets().get(f"/media/{key}", 0)
    check(n == 1, f"{n} origin fetches for ranged reads of one object")


def t_s3_preflight_and_methods(env):
    edge, s3 = env["edge"], env["s3"]
    st, h, b = get(edge, "/live/x/720p/seg_00001.ts", method="OPTIONS", headers={
        "Origin": "http://watch.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"})
    check(st == 204, f"preflight: {st}")
    check_cors(h, "preflight")
    check("GET" in h.get("access-control-allow-methods", ""), f"Allow-Methods {h}")
    check("range" in h.get("access-control-allow-headers", "").lower(), f"Allow-Headers {h}")
    st, h, _ = get(edge, "/live/x/720p/index.m3u8", method="OPTIONS",
                   headers={"Origin": "http://watch.example", "Access-Control-Request-Method": "GET"})
    check(st == 204, f"playlist preflight: {st}")
    before = sum(s3.gets().values())
    st, h, _ = get(edge, "/live/x/720p/seg_00001.ts", method="PUT")
    check(st == 405, f"PUT through the edge: {st}, expected 405")
    check_cors(h, "405")
    for path in ("/", "/?list-type=2", "/live/", "/media/", "/live/x/notes.txt"):
        st, h, _ = get(edge, path)
        check(st == 404, f"GET {path}: {st}, expected 404 (no listings, only media types)")
    check(sum(s3.gets().values()) == before, "a refused request reached the origin")
    st, h, b = get(edge, "/healthz")
    check(st == 200 and b == b"ok\n", f"/healthz: {st} {b!r}")


def t_s3_logs(env):
    edge = env["edge"]
    deadline = time.time() + 3  # access.log is buffered, flushed every second
    while True:
        with open(edge.logfile("access.log")) as f:
            lines = f.read().splitlines()
        if any(" cache=HIT " in ln for ln in lines) or time.time() > deadline:
            break
        time.sleep(0.1)
    check(any(" cache=HIT " in ln for ln in lines) and any(" cache=MISS " in ln for ln in lines),
          "access log lacks cache=HIT/MISS")
    check(any(re.search(r" urt=\d+\.\d+ ", ln) for ln in lines), "access log lacks the origin response time")


def t_s3_origin_down_serves_cached(env):
    """Runs last: stops s3s-fs. Cached playlists (stale) and segments are still served; an
    uncached object is a 5xx that still carries CORS headers."""
    s3, edge = env["s3"], env["edge"]
    pid = uid()
    pl, seg = f"live/{pid}/720p/index.m3u8", f"live/{pid}/720p/seg_00001.ts"
    s3.put(pl, b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n", "application/vnd.apple.mpegurl")
    s3.put(seg, b"s" * 1000, "video/mp2t")
    for path in (pl, seg):
        st, _, _ = get(edge, "/" + path)
        check(st == 200, f"warm-up {path}: {st}")
    s3.stop()
    time.sleep(2.1)  # the playlist copy has expired
    st, h, b = get(edge, "/" + pl)
    check(st == 200 and b.startswith(b"#EXTM3U"), f"playlist with the origin down: {st}")
    check(h.get("x-cache-status") in ("STALE", "UPDATING"), f"X-Cache-Status {h.get('x-cache-status')}")
    check_cors(h, "stale playlist")
    st, h, _ = get(edge, "/" + seg)
    check(st == 200 and h.get("x-cache-status") == "HIT", f"segment with the origin down: {st}")
    st, h, _ = get(edge, f"/live/{pid}/720p/seg_00002.ts")
    check(st in (502, 504), f"uncached segment with the origin down: {st}")
    check_cors(h, f"{st}")


# ---------------------------------------------------------------- local-folder origin

def write_file(root, key, body):
    path = os.path.join(root, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(body)
    os.replace(tmp, path)


def t_local_segment_miss_then_hit(env):
    edge, root = env["local_edge"], env["media"]
    key = f"live/{uid()}/720p/seg_00001.ts"
    body = os.urandom(200_000)
    write_file(root, key, body)
    st, h, b = get(edge, "/" + key)
    check(st == 200 and b == body and h.get("x-cache-status") == "MISS", f"first GET: {st} {h.get('x-cache-status')}")
    check(h.get("content-type") == "video/mp2t", f"Content-Type {h.get('content-type')}")
    check_cors(h, "local 200")
    st, h, b = get(edge, "/" + key)
    check(st == 200 and b == body and h.get("x-cache-status") == "HIT", f"second GET: {st} {h.get('x-cache-status')}")
    st, h, b = get(edge, "/" + key, headers={"Range": "bytes=0-99"})
    check(st == 206 and b == body[:100], f"local Range: {st}")
    check_cors(h, "local 206")
    n = settled(edge.origin_fetches).get("/" + key, 0)
    check(n == 1, f"local origin served the segment {n} times, expected 1")


def t_local_missing_404_then_appears(env):
    edge, root = env["local_edge"], env["media"]
    key = f"live/{uid()}/720p/index.m3u8"
    st, h, _ = get(edge, "/" + key)
    check(st == 404, f"missing: {st}")
    check_cors(h, "local 404")
    write_file(root, key, b"#EXTM3U\n")
    t0 = time.time()
    while True:
        st, _, b = get(edge, "/" + key)
        if st == 200:
            break
        check(time.time() - t0 < 3.0, "the written playlist was still a 404 3 s later")
        time.sleep(0.05)
    check(b == b"#EXTM3U\n", "wrong playlist body")


def t_local_playlist_rewritten(env):
    """The folder origin serves a playlist replaced by rename (as ingest writes it) at once,
    and the edge within its cache lifetime (at most 2 s, plus the refresh)."""
    edge, root = env["local_edge"], env["media"]
    key = f"live/{uid()}/720p/index.m3u8"
    write_file(root, key, b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n")
    st, _, b = get(edge, "/" + key)
    check(st == 200 and b.endswith(b":1\n"), f"first version: {st} {b!r}")
    write_file(root, key, b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:2\n")
    t0 = time.time()
    while True:
        st, _, b = get(edge, "/" + key)
        check(st == 200, f"while waiting for the new version: {st}")
        if b.endswith(b":2\n"):
            break
        check(time.time() - t0 < 2.75, "the rewritten playlist was not served within 2.75 s")
        time.sleep(0.05)


def t_local_collapse(env):
    edge, root = env["local_edge"], env["media"]
    key = f"live/{uid()}/720p/seg_00009.ts"
    body = os.urandom(512 * 1024)
    write_file(root, key, body)
    results = concurrent_gets(edge, "/" + key, 50)
    bad = [r[:2] for r in results if r[0] != 200 or r[2] != body]
    check(not bad, f"{len(bad)} of 50 concurrent GETs failed: {bad[:5]}")
    n = settled(edge.origin_fetches).get("/" + key, 0)
    check(n == 1, f"50 concurrent first requests caused {n} local origin fetches, expected 1")


S3_TESTS = [t_s3_segment_miss_then_hit, t_s3_playlist_fresh_within_ttl, t_s3_collapse_50_concurrent_misses,
            t_s3_missing_is_short_lived_404, t_s3_forbidden_becomes_404, t_s3_range_206_with_cors,
            t_s3_preflight_and_methods, t_s3_logs, t_s3_origin_down_serves_cached]
LOCAL_TESTS = [t_local_segment_miss_then_hit, t_local_missing_404_then_appears, t_local_playlist_rewritten,
               t_local_collapse]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="run only tests whose name contains this")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    wd = kit.workdir("caudal-edge-test-")
    env = {"cleanup": []}
    passed, failed = [], []

    def run(tests):
        for t in tests:
            if args.k not in t.__name__:
                continue
            t0 = time.time()
            try:
                t(env)
                passed.append(t.__name__)
                print(f"ok   {t.__name__} ({time.time() - t0:.1f} s)", flush=True)
            except Exception:
                failed.append(t.__name__)
                print(f"FAIL {t.__name__} ({time.time() - t0:.1f} s)\n{traceback.format_exc()}", flush=True)

    try:
        if any(args.k in t.__name__ for t in S3_TESTS):
            env["s3"] = kit.S3sFs(os.path.join(wd, "s3"))
            env["cleanup"].append(env["s3"].stop)
            env["edge"] = kit.Edge(os.path.join(wd, "s3"), "s3", env["s3"])
            env["cleanup"].insert(0, env["edge"].stop)
            run(S3_TESTS)
        if any(args.k in t.__name__ for t in LOCAL_TESTS):
            env["media"] = os.path.join(wd, "local", "media")
            os.makedirs(env["media"])
            env["local_edge"] = kit.Edge(os.path.join(wd, "local"), "local", env["media"])
            env["cleanup"].insert(0, env["local_edge"].stop)
            run(LOCAL_TESTS)
    except Exception:
        failed.append("setup")
        print(f"FAIL setup\n{traceback.format_exc()}", flush=True)
    finally:
        for f in env["cleanup"]:
            try:
                f()
            except Exception:
                traceback.print_exc()
        if failed or os.environ.get("CAUDAL_EDGE_KEEP"):
            print(f"logs kept in {wd}")
        else:
            shutil.rmtree(wd, ignore_errors=True)
    print(f"edge: {len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
