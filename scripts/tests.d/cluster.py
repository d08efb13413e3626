#!/usr/bin/env python3
"""Cluster mode under faults (issue 14), against the real processes that
scripts/tests.d/cluster.sh started with CAUDAL_CLUSTER=on: two instances of bff, user-svc,
metadata-svc and ingest behind the nginx balancer, three Garage nodes (replication 3), a
MariaDB primary with a GTID replica, three NATS servers (the job queue), Redis for shared
state.

Each check prints PASS or FAIL with its figures; the last line is
"cluster: N passed, M failed". Order matters: the broadcast of the Garage check is the video
the load check sells.
"""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

E = os.environ
STATE = E["STATE"]
BFF = f"http://127.0.0.1:{E['CAUDAL_BFF_PORT']}"
METADATA = f"http://127.0.0.1:{E['CAUDAL_METADATA_PORT']}"
BASE = int(E["CAUDAL_CLUSTER_PORT_BASE"])
# the instances' own ports (scripts/platform.sh instance_port / instance_metrics)
USER_SVC = [f"http://127.0.0.1:{BASE + 2}", f"http://127.0.0.1:{BASE + 3}"]
METADATA_SVC = [f"http://127.0.0.1:{BASE + 4}", f"http://127.0.0.1:{BASE + 5}"]
RTMP = [BASE + 8, BASE + 9]
INGEST_HTTP = [f"http://127.0.0.1:{BASE + 6}", f"http://127.0.0.1:{BASE + 7}"]
INGEST_BALANCED = f"http://127.0.0.1:{E['CAUDAL_INGEST_HTTP_PORT']}"
USER_METRICS = [int(E["CAUDAL_METRICS_BASE"]) + 2, BASE + 12]
RTMP_BALANCED = int(E["CAUDAL_RTMP_PORT"])
DEMO_KEY = E["DEMO_KEY"]
PUBLISH_SECS = int(E.get("CLUSTER_PUBLISH_SECS", "45"))
PASSWORD = "correct horse battery staple"

results = {"passed": 0, "failed": 0}
shared = {}


def http(method, url, body=None, headers=None, timeout=15):
    """(status, body bytes); status 0 when no answer came."""
    data = None
    h = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


def api(method, url, token=None, body=None, headers=None, timeout=15):
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    status, raw = http(method, url, body, h, timeout)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def check(name):
    def wrap(fn):
        def run():
            print(f"--- {name}", flush=True)
            started = time.time()
            try:
                fn()
                results["passed"] += 1
                print(f"PASS: {name} ({time.time() - started:.0f} s)", flush=True)
            except Exception as e:  # noqa: BLE001 - any failure is this check's
                results["failed"] += 1
                print(f"FAIL: {name}: {type(e).__name__}: {e}", flush=True)
        return run
    return wrap


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def signup(name):
    s, b = api("POST", BFF + "/v1/auth/signup", body={
        "email": f"{name}-{uuid.uuid4().hex[:10]}@example.com",
        "password": PASSWORD,
        "display_name": name,
    })
    expect(s == 201, f"signup {name}: {s} {b}")
    return {"token": b["access_token"], "id": b["user"]["id"]}


def login(email, password):
    s, b = api("POST", BFF + "/v1/auth/login", body={"email": email, "password": password})
    expect(s == 200, f"login {email}: {s} {b}")
    return {"token": b["access_token"], "id": b["user"]["id"]}


def metric(port, name, labels=""):
    """Sum of a counter's samples whose labels contain `labels`."""
    s, raw = http("GET", f"http://127.0.0.1:{port}/metrics")
    expect(s == 200, f"metrics on {port}: {s}")
    total = 0.0
    for line in raw.decode().splitlines():
        if line.startswith(name) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def kill(pid, sig=signal.SIGKILL):
    os.kill(pid, sig)
    for _ in range(100):
        try:
            # reap it when it is our child's child: it is not, so poll for its exit
            if not alive(pid) or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.1)
    raise AssertionError(f"pid {pid} did not stop")


def publish(port, key, secs, log):
    """ffmpeg publishing a 720p30 test pattern with a tone, as OBS would (2 s GOP)."""
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "warning", "-re",
         "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={secs}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={secs}",
         "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "60",
         "-b:v", "2500k", "-c:a", "aac", "-b:a", "128k", "-f", "flv",
         f"rtmp://127.0.0.1:{port}/live/{key}"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def live_video(owner=None, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s, b = api("GET", METADATA + "/internal/v1/videos/live")
        if s == 200:
            items = b.get("items", b) if isinstance(b, dict) else b
            for v in items or []:
                if owner is None or v.get("owner_id") == owner:
                    return v
        time.sleep(0.5)
    raise AssertionError("no live video appeared in metadata-svc")


def playlist_lines(url):
    s, raw = http("GET", url)
    expect(s == 200, f"{url}: {s}")
    return raw.decode().splitlines()


def resolve(base, ref):
    return urllib.parse.urljoin(base, ref)


import urllib.parse  # noqa: E402


def first_rung(master_url):
    lines = playlist_lines(master_url)
    uris = [l for l in lines if l and not l.startswith("#")]
    expect(uris, f"master {master_url} lists no rung")
    return resolve(master_url, uris[0])


def media_state(url):
    lines = playlist_lines(url)
    seq = 0
    for l in lines:
        if l.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            seq = int(l.split(":", 1)[1])
    segs = [l for l in lines if l and not l.startswith("#")]
    return seq + len(segs), lines


# ---------------------------------------------------------------------------------------------


@check("a plan written through one user-svc is read through the other at once (read your writes, "
       "primary), then from the GTID replica")
def read_your_writes():
    creator = signup("Creator")
    s, b = api("POST", BFF + "/v1/me/become-creator", creator["token"], {})
    expect(s == 200, f"become-creator: {s} {b}")
    shared["creator"] = creator
    before = metric(USER_METRICS[1], "user_svc_replica_reads_total", 'outcome="primary_recent_write"')
    s, b = api("PUT", BFF + "/v1/studio/plan", creator["token"], {"price_minor": 500, "currency": "EUR"})
    expect(s == 200, f"set plan: {s} {b}")
    # at once, through the instance that did not take the write
    s, plan = api("GET", f"{USER_SVC[1]}/v1/creators/{creator['id']}/plan")
    expect(s == 200 and plan["price_minor"] == 500, f"plan through user-svc 2 right after the write: {s} {plan}")
    after = metric(USER_METRICS[1], "user_svc_replica_reads_total", 'outcome="primary_recent_write"')
    expect(after > before, "the read right after the write did not go to the primary")
    # the replica has it by replication, and once the write is old the replica answers
    out = subprocess.run(
        ["mariadb", "--no-defaults", f"--socket={E['CAUDAL_MYSQL_REPLICA_SOCKET']}", "-uroot", "-N", "-e",
         f"SELECT price_minor FROM caudal.plans WHERE creator_id = '{creator['id']}'"],
        capture_output=True, text=True)
    waited = 0.0
    while out.stdout.strip() != "500" and waited < 10:
        time.sleep(0.2)
        waited += 0.2
        out = subprocess.run(out.args, capture_output=True, text=True)
    expect(out.stdout.strip() == "500", f"the replica does not have the plan: {out.stdout!r} {out.stderr!r}")
    time.sleep(float(E["CAUDAL_USER_REPLICA_READ_AFTER_WRITE_SECS"]) + 0.5)
    before = metric(USER_METRICS[1], "user_svc_replica_reads_total", 'outcome="replica"')
    s, plan = api("GET", f"{USER_SVC[1]}/v1/creators/{creator['id']}/plan")
    expect(s == 200 and plan["price_minor"] == 500, f"plan from the replica: {s} {plan}")
    expect(metric(USER_METRICS[1], "user_svc_replica_reads_total", 'outcome="replica"') > before,
           "the read did not go to the replica")
    print(f"  the replica had the write {waited:.1f} s after it")


@check("a write through one metadata-svc is visible through the other's read cache (Redis pub/sub)")
def metadata_invalidation():
    creator = shared["creator"]
    s, v = api("POST", METADATA_SVC[0] + "/internal/v1/videos", body={
        "owner_id": creator["id"], "kind": "upload", "title": "before", "visibility": "public",
    })
    expect(s in (200, 201), f"create: {s} {v}")
    vid = v["id"]
    figures = []
    for n in range(5):
        # the other instance reads it, and caches it (30 s)
        s, seen = api("GET", f"{METADATA_SVC[1]}/internal/v1/videos/{vid}")
        expect(s == 200, f"read through instance 2: {s}")
        title = f"title {n}"
        s, edited = api("PATCH", f"{METADATA_SVC[0]}/internal/v1/videos/{vid}",
                        body={"expected_version": seen["version"], "title": title})
        expect(s == 200, f"edit through instance 1: {s} {edited}")
        written = time.time()
        while True:
            s, now = api("GET", f"{METADATA_SVC[1]}/internal/v1/videos/{vid}")
            if s == 200 and now["title"] == title:
                figures.append((time.time() - written) * 1000)
                break
            # the cache keeps an answer 30 s: long past this, the invalidation never came
            expect(time.time() - written < 5, f"instance 2 still answers {now.get('title')!r} 5 s after the write")
            time.sleep(0.002)
    print(f"  visible through the other instance after (ms): {', '.join(f'{f:.1f}' for f in figures)}")


broadcast = {}


@check("two ingest instances, one key: a second publisher is refused on either instance")
def one_publisher_per_key():
    first = publish(RTMP_BALANCED, DEMO_KEY, PUBLISH_SECS, f"{STATE}/logs/publisher.log")
    broadcast["proc"] = first
    broadcast["started"] = time.time()
    v = live_video()
    broadcast["video"] = v
    print(f"  live: video {v['id']}")
    for port in RTMP:
        second = publish(port, DEMO_KEY, 20, f"{STATE}/logs/second-{port}.log")
        try:
            rc = second.wait(timeout=15)
        except subprocess.TimeoutExpired:
            second.kill()
            raise AssertionError(f"a second publisher of the same key is still streaming to {port}")
        expect(rc != 0, f"the second publisher on port {port} exited 0")
    expect(first.poll() is None, "the first publisher was cut off")
    s, still = api("GET", f"{METADATA}/internal/v1/videos/{v['id']}")
    expect(s == 200 and still["status"] == "live", f"the broadcast is no longer live: {s} {still}")


@check("a Garage node killed (SIGKILL) mid-broadcast: the live playlist keeps advancing, the "
       "recording is complete")
def garage_node_lost():
    v = broadcast["video"]
    deadline = time.time() + 30
    while True:
        s, d = api("GET", f"{BFF}/v1/videos/{v['id']}")
        if s == 200 and d.get("playback"):
            break
        expect(time.time() < deadline, f"no playback URL 30 s into the broadcast: {s} {d}")
        time.sleep(0.5)
    rung = first_rung(d["playback"]["url"])
    # let it run, then take a node away
    while time.time() - broadcast["started"] < 12:
        time.sleep(0.5)
    before, _ = media_state(rung)
    pid = int(E["CAUDAL_GARAGE_PID_1"])
    kill(pid)
    killed = time.time()
    print(f"  killed garage node 1 (pid {pid}) {killed - broadcast['started']:.0f} s in, {before} segments listed")
    progress = []
    while time.time() - killed < 16:
        time.sleep(2)
        n, _ = media_state(rung)
        progress.append(n)
    expect(progress[-1] >= before + 3, f"the live playlist stalled after the kill: {before} then {progress}")
    print(f"  segments listed every 2 s after the kill: {progress}")
    rc = broadcast["proc"].wait(timeout=PUBLISH_SECS + 30)
    expect(rc == 0, f"the publisher failed (rc {rc}): see {STATE}/logs/publisher.log")
    deadline = time.time() + 90
    while time.time() < deadline:
        s, d = api("GET", f"{BFF}/v1/videos/{v['id']}")
        if s == 200 and d["video"]["status"] == "recorded" and d.get("playback"):
            break
        time.sleep(1)
    expect(d["video"]["status"] == "recorded", f"no recording: {d['video']['status']}")
    master = d["playback"]["url"]
    rungs = [resolve(master, l) for l in playlist_lines(master) if l and not l.startswith("#")]
    expect(len(rungs) >= 2, f"master lists {len(rungs)} rungs")
    for url in rungs:
        lines = playlist_lines(url)
        expect("#EXT-X-ENDLIST" in lines, f"{url} has no ENDLIST")
        secs = sum(float(l.split(":", 1)[1].split(",")[0]) for l in lines if l.startswith("#EXTINF:"))
        segs = [resolve(url, l) for l in lines if l and not l.startswith("#")]
        expect(secs >= PUBLISH_SECS - 3, f"{url}: {secs:.1f} s recorded of {PUBLISH_SECS} s published")
        numbers = [int(m.group(1)) for m in (re.search(r"(\d+)\.(?:ts|m4s)", s) for s in segs) if m]
        if len(numbers) == len(segs):
            expect(numbers == list(range(numbers[0], numbers[0] + len(numbers))),
                   f"{url}: segment numbers have gaps: {numbers}")
        missing = [s for s in segs if http("GET", s)[0] != 200]
        expect(not missing, f"{len(missing)} of {len(segs)} segments of {url} are not readable: {missing[:3]}")
        print(f"  {url.rsplit('/', 2)[-2]}: {len(segs)} segments, {secs:.1f} s, all readable")
    # the node comes back and catches up (Garage repairs what it missed)
    subprocess.run(["bash", "-c", f'source "{E["CAUDAL_ROOT"]}/scripts/lib.sh"; source "{E["CAUDAL_ROOT"]}/scripts/cluster.sh"; '
                    f'start_garage_node "{STATE}/garage" 1; disown -a'], check=True)


@check("one bff and one user-svc killed (SIGKILL) under load: requests keep succeeding, nobody "
       "is charged twice")
def kill_instances_under_load():
    v = broadcast["video"]
    demo = login("demo@caudal.local", "demo-password-123")
    s, mine = api("GET", f"{BFF}/v1/studio/videos/{v['id']}", demo["token"])
    expect(s == 200, f"studio video: {s} {mine}")
    ver = mine.get("version") or mine.get("video", {}).get("version")
    s, b = api("PATCH", f"{BFF}/v1/studio/videos/{v['id']}", demo["token"], {
        "expected_version": ver, "access": {"policy": "purchase", "price_minor": 300, "currency": "EUR"}})
    expect(s == 200, f"make it paid: {s} {b}")
    viewers = [signup(f"Viewer{i}") for i in range(40)]
    secs, kill_at = 24, 8
    lock = threading.Lock()
    stats = {"requests": 0, "errors": 0, "retried_ok": 0, "latencies": [], "after_kill": 0}
    killed = [False]
    failures = []
    bought = {}
    stop = time.time() + secs
    queue = list(viewers)

    def record(status, what, dt):
        with lock:
            stats["requests"] += 1
            stats["after_kill"] += killed[0]
            stats["latencies"].append(dt)
            if status == 0 or status >= 500:
                stats["errors"] += 1
                failures.append(f"{what}: {status}")

    def buy(viewer):
        key = uuid.uuid4().hex
        for attempt in range(4):
            t = time.time()
            s, b = api("POST", BFF + "/v1/purchases", viewer["token"], {"video_id": v["id"]},
                       {"Idempotency-Key": key})
            if attempt == 0:
                record(s, "purchase", time.time() - t)
            if s in (200, 201):
                bought[viewer["id"]] = b
                if attempt > 0:
                    stats["retried_ok"] += 1
                return
            if 400 <= s < 500:
                with lock:
                    failures.append(f"purchase refused: {s} {b}")
                    stats["errors"] += 1
                return
            time.sleep(0.3)  # the API says: retry with the same key

    def worker(n):
        i = 0
        while time.time() < stop:
            viewer = viewers[(n * 7 + i) % len(viewers)]
            i += 1
            with lock:
                mine = queue.pop() if queue and i % 5 == 0 else None
            if mine:
                buy(mine)
                continue
            t = time.time()
            s, _ = api("GET", f"{BFF}/v1/videos/{v['id']}", viewer["token"])
            record(s, "video detail", time.time() - t)
            t = time.time()
            s, _ = api("GET", f"{BFF}/v1/creators/{v['owner_id']}")
            record(s, "creator page", time.time() - t)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(kill_at)
    bff_pid, user_pid = int(E["CAUDAL_PID_bff_1"]), int(E["CAUDAL_PID_user_svc_1"])
    kill(bff_pid)
    kill(user_pid)
    killed[0] = True
    print(f"  killed bff 1 (pid {bff_pid}) and user-svc 1 (pid {user_pid}) {kill_at} s into the load")
    for t in threads:
        t.join()
    for viewer in queue:  # those the load did not reach buy now, on the surviving instances
        buy(viewer)
    lat = sorted(stats["latencies"])
    rate = stats["errors"] / max(1, stats["requests"])
    print(f"  {stats['requests']} requests in {secs} s, {stats['errors']} errors ({rate * 100:.3f} %, goal under 0.1 %), "
          f"p50 {lat[len(lat) // 2] * 1000:.0f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.0f} ms; "
          f"{stats['after_kill']} after the kill; {stats['retried_ok']} purchases succeeded on the client's retry")
    if failures:
        print("  errors: " + "; ".join(failures[:10]))
    expect(rate < 0.001, f"error rate {rate * 100:.3f} % (goal under 0.1 %)")
    expect(stats["after_kill"] > stats["requests"] / 4, f"only {stats['after_kill']} requests after the kill")
    charged = 0
    for viewer in viewers:
        s, b = api("GET", BFF + "/v1/me/purchases", viewer["token"])
        expect(s == 200, f"my purchases: {s} {b}")
        mine = [p for p in b["purchases"] if p["purchase"]["video_id"] == v["id"]]
        expect(len(mine) == 1, f"viewer {viewer['id']} has {len(mine)} purchases of the video")
        expect(mine[0]["purchase"]["status"] == "completed", f"purchase {mine[0]['purchase']}")
        charged += 1
    print(f"  {charged} viewers, each charged exactly once")


@check("the MariaDB replica stopped: reads keep working, from the primary")
def replica_stopped():
    creator = shared["creator"]
    pid = int(E["CAUDAL_MYSQL_REPLICA_PID"])
    kill(pid, signal.SIGTERM)
    before = metric(USER_METRICS[1], "user_svc_replica_reads_total", 'outcome="fallback"') + \
        metric(USER_METRICS[1], "user_svc_replica_reads_total", 'outcome="primary_replica_down"')
    for _ in range(20):
        s, plan = api("GET", f"{USER_SVC[1]}/v1/creators/{creator['id']}/plan")
        expect(s == 200 and plan["price_minor"] == 500, f"plan with the replica down: {s} {plan}")
        s, page = api("GET", f"{BFF}/v1/creators/{creator['id']}")
        expect(s == 200, f"creator page with the replica down: {s} {page}")
    after = metric(USER_METRICS[1], "user_svc_replica_reads_total", 'outcome="fallback"') + \
        metric(USER_METRICS[1], "user_svc_replica_reads_total", 'outcome="primary_replica_down"')
    expect(after > before, "no read was counted as sent to the primary for the replica's sake")


@check("broadcasts on both ingest instances: /v1/streams lists all of them wherever it is asked")
def streams_listed_across_instances():
    procs, owners = [], []
    for i, port in enumerate(RTMP):
        creator = signup(f"Streamer{i + 1}")
        s, b = api("POST", BFF + "/v1/me/become-creator", creator["token"], {})
        expect(s == 200, f"become-creator: {s} {b}")
        s, key = api("POST", BFF + "/v1/studio/stream-keys", creator["token"], {})
        expect(s == 201, f"stream key: {s} {key}")
        owners.append(creator["id"])
        # straight to one instance each, past the balancer
        procs.append(publish(port, key["key"], 25, f"{STATE}/logs/streams-{port}.log"))
    try:
        videos = [live_video(owner)["id"] for owner in owners]
        for i, base in enumerate(INGEST_HTTP):
            s, here = api("GET", f"{base}/v1/streams?scope=local")
            expect(s == 200, f"{base}/v1/streams?scope=local: {s} {here}")
            mine = {e["owner_id"] for e in here}
            expect(owners[i] in mine and owners[1 - i] not in mine,
                   f"instance {i + 1} lists {sorted(mine)} as its own; it runs {owners[i]}")
        for base in INGEST_HTTP + [INGEST_BALANCED]:
            s, listed = api("GET", f"{base}/v1/streams")
            expect(s == 200, f"{base}/v1/streams: {s} {listed}")
            got = {e["owner_id"] for e in listed}
            expect(set(owners) <= got, f"{base}/v1/streams lists {sorted(got)}, not both of {owners}")
            expect(len({e["video_id"] for e in listed}) == len(listed), f"{base}: a broadcast listed twice")
        s, bad = api("GET", f"{INGEST_BALANCED}/v1/streams?scope=everywhere")
        expect(s == 400, f"an unknown scope is answered {s}")
        print(f"  both broadcasts listed through instance 1, instance 2 and the balancer")
        # one broadcast by id: any instance answers for the one that runs it
        for i, vid in enumerate(videos):
            for base in INGEST_HTTP + [INGEST_BALANCED]:
                s, one = api("GET", f"{base}/v1/streams/{vid}")
                expect(s == 200 and one.get("owner_id") == owners[i],
                       f"{base}/v1/streams/{vid} (run by instance {i + 1}): {s} {one}")
            s, _ = api("GET", f"{INGEST_HTTP[i]}/v1/streams/{vid}?scope=local")
            expect(s == 200, f"instance {i + 1} does not answer for its own broadcast: {s}")
            s, _ = api("GET", f"{INGEST_HTTP[1 - i]}/v1/streams/{vid}?scope=local")
            expect(s == 404, f"instance {2 - i} answers {s} for instance {i + 1}'s broadcast with scope=local")
        s, _ = api("GET", f"{INGEST_BALANCED}/v1/streams/no-such-video")
        expect(s == 404, f"an unknown broadcast is answered {s}")
        print(f"  each broadcast answered by id through instance 1, instance 2 and the balancer")
    finally:
        for p in procs:
            p.kill()
            p.wait()


@check("a NATS server killed (SIGKILL): an upload is still queued and transcoded (the job queue "
       "keeps three replicas)")
def nats_server_lost():
    creator = signup("Uploader")
    s, b = api("POST", BFF + "/v1/me/become-creator", creator["token"], {})
    expect(s == 200, f"become-creator: {s} {b}")
    clip = f"{STATE}/upload.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=4",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
                    "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-c:a", "aac", "-shortest", clip],
                   check=True)
    body = open(clip, "rb").read()
    pid = int(E["CAUDAL_NATS_PID_1"])
    kill(pid)
    killed = time.time()
    print(f"  killed nats-server 1 (pid {pid}); uploading {len(body)} bytes through the balancer")
    try:
        meta = "title " + base64.b64encode(b"after a NATS server was lost").decode()
        tus = {"Tus-Resumable": "1.0.0", "Authorization": "Bearer " + creator["token"]}
        req = urllib.request.Request(BFF + "/v1/uploads", method="POST", data=b"", headers={
            **tus, "Upload-Length": str(len(body)), "Upload-Metadata": meta})
        with urllib.request.urlopen(req, timeout=30) as r:
            expect(r.status == 201, f"POST /v1/uploads: {r.status}")
            location = r.headers["Location"]
        vid = location.rstrip("/").rsplit("/", 1)[-1]
        req = urllib.request.Request(urllib.parse.urljoin(BFF, location), method="PATCH", data=body, headers={
            **tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
        with urllib.request.urlopen(req, timeout=60) as r:
            expect(r.status == 204, f"PATCH: {r.status}")
        sent = time.time()
        deadline = sent + 180
        status = None
        while time.time() < deadline:
            s, v = api("GET", f"{METADATA}/internal/v1/videos/{vid}")
            status = v.get("status") if s == 200 else s
            if status in ("ready", "failed"):
                break
            time.sleep(1)
        expect(status == "ready", f"video {vid} is {status} {time.time() - sent:.0f} s after its last byte: {v}")
        print(f"  video {vid} ready {time.time() - sent:.1f} s after its last byte "
              f"({sent - killed:.1f} s after the kill)")
    finally:
        subprocess.run(["bash", "-c", f'source "{E["CAUDAL_ROOT"]}/scripts/lib.sh"; source "{E["CAUDAL_ROOT"]}/scripts/cluster.sh"; '
                        f'start_nats_node "{STATE}/nats-cluster" 1; disown -a'], check=True)


if __name__ == "__main__":
    for step in (read_your_writes, metadata_invalidation, one_publisher_per_key, garage_node_lost,
                 kill_instances_under_load, replica_stopped, streams_listed_across_instances,
                 nats_server_lost):
        step()
    print(f"cluster: {results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)
