"""Test and benchmark support for the Caudal edge (python3 standard library only).

- S3: a minimal path-style S3 client that signs with AWS SigV4 (PUT, GET, DELETE, create bucket).
- start_s3s(): an s3s-fs server on a free loopback port, request logging on, for counting
  origin fetches from the origin's own log.
- start_edge(): cdn-config/render.sh into a folder, then nginx with that config.
- http_get(): one HTTP request with http.client, returning status, headers and body.
- playback_token() / signed_path(): playback tokens as bff signs them (cdn-config/README.md,
  "Playback tokens": /p/{kid}.{exp}.{sig}/{key}, sig = base64url(HMAC-SHA256(secret,
  "{kid}.{exp}.{prefix}")), no padding).
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

CDN_CONFIG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# The playback keys every test edge is rendered with (k1's secret is the spec's test vector's).
TEST_KEYS = {"k1": "caudal-test-secret-0123456789abcdef", "k2": "caudal-second-test-secret-for-rotation"}
TOKEN_TTL = 3600


def keys_spec(keys):
    """CAUDAL_PLAYBACK_KEYS text: kid=secret,kid=secret."""
    return ",".join(f"{k}={v}" for k, v in keys.items())


def media_prefix(key):
    """The video's prefix of a storage key: its first two segments and a slash."""
    return "/".join(key.split("/")[:2]) + "/"


def playback_token(secret, kid, exp, prefix):
    mac = hmac.new(secret.encode(), f"{kid}.{exp}.{prefix}".encode(), hashlib.sha256).digest()
    return f"{kid}.{exp}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def signed_path(key, kid="k1", exp=None, keys=None):
    """/p/{token}/{key} with a token of `kid` (from TEST_KEYS), valid for TOKEN_TTL by default."""
    exp = int(time.time()) + TOKEN_TTL if exp is None else exp
    return f"/p/{playback_token((keys or TEST_KEYS)[kid], kid, exp, media_prefix(key))}/{key}"


def cpu_seconds(master):
    """utime + stime of an nginx master and its children (the workers), in seconds."""
    ticks = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d) == master or int(fields[1]) == master:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, secs, name, proc=None, log=None):
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    tail = ""
    if log and os.path.exists(log):
        with open(log, errors="replace") as f:
            tail = f.read()[-2000:]
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within {secs}s\n{tail}")


class S3:
    """Path-style S3 client signing with SigV4 (header auth, signed payload hash)."""

    def __init__(self, endpoint, access_key, secret_key, region="us-east-1"):
        u = urllib.parse.urlsplit(endpoint)
        self.host, self.port = u.hostname, u.port or 80
        self.hostport = u.netloc
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.conn = None

    def _sign(self, method, path, body):
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        headers = {"host": self.hostport, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        signed = ";".join(sorted(headers))
        canonical = "\n".join([
            method, path, "",
            *(f"{k}:{headers[k]}" for k in sorted(headers)), "",
            signed, payload_hash,
        ])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={sig}")
        return headers

    def request(self, method, bucket, key="", body=b"", extra_headers=None):
        path = "/" + urllib.parse.quote(bucket, safe="")
        if key:
            path += "/" + urllib.parse.quote(key, safe="/~")
        headers = self._sign(method, path, body)
        headers.update(extra_headers or {})
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, data
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def create_bucket(self, bucket):
        status, body = self.request("PUT", bucket)
        if status not in (200, 409):
            raise RuntimeError(f"create bucket {bucket}: {status} {body[:200]!r}")

    def put(self, bucket, key, body, content_type="application/octet-stream"):
        status, data = self.request("PUT", bucket, key, body, {"content-type": content_type})
        if status != 200:
            raise RuntimeError(f"PUT {key}: {status} {data[:200]!r}")

    def delete(self, bucket, key):
        status, data = self.request("DELETE", bucket, key)
        if status not in (200, 204):
            raise RuntimeError(f"DELETE {key}: {status} {data[:200]!r}")


class Proc:
    def __init__(self, argv, log, env=None):
        self.log = log
        self.f = open(log, "ab")
        self.p = subprocess.Popen(argv, stdout=self.f, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.f.close()


class S3sFs:
    """s3s-fs on a free port. GET requests are counted from its own request log."""

    ACCESS_KEY, SECRET_KEY = "caudal", "caudalsecret"
    _REQ = re.compile(r"req: Request \{ method: (\w+), uri: (\S+?),")

    def __init__(self, workdir, bucket="media"):
        s3s = shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
        self.port = free_port()
        self.data = os.path.join(workdir, "s3-data")
        os.makedirs(self.data, exist_ok=True)
        self.log = os.path.join(workdir, "s3s-fs.log")
        env = dict(os.environ, RUST_LOG="s3s::service=debug,s3s_fs=info", NO_COLOR="1")
        self.proc = Proc([s3s, "--host", "127.0.0.1", "--port", str(self.port),
                          "--access-key", self.ACCESS_KEY, "--secret-key", self.SECRET_KEY, self.data],
                         self.log, env)
        wait_port(self.port, 30, "s3s-fs", self.proc.p, self.log)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket
        self.client = S3(self.endpoint, self.ACCESS_KEY, self.SECRET_KEY)
        self.client.create_bucket(bucket)

    def put(self, key, body, content_type="application/octet-stream"):
        self.client.put(self.bucket, key, body, content_type)

    def gets(self):
        """{path: count} of GET requests s3s-fs received (from its log)."""
        counts = {}
        with open(self.log, errors="replace") as f:
            for m in self._REQ.finditer(f.read()):
                if m.group(1) == "GET":
                    path = urllib.parse.unquote(m.group(2).split("?")[0])
                    counts[path] = counts.get(path, 0) + 1
        return counts

    def stop(self):
        self.proc.stop()


class Edge:
    """cdn-config/render.sh + nginx in OUT_DIR. mode 's3' (origin: an S3sFs) or 'local'.
    Playback keys: TEST_KEYS unless env names others or sets CAUDAL_EDGE_TOKENS=off."""

    def __init__(self, workdir, mode, origin, env=None):
        self.dir = os.path.join(workdir, "edge")
        self.port = free_port()
        self.mode = mode
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("CAUDAL_S3_", "CAUDAL_EDGE_", "CAUDAL_MEDIA", "CAUDAL_PLAYBACK_"))}
        env = env or {}
        if not {"CAUDAL_PLAYBACK_KEYS", "CAUDAL_PLAYBACK_KEYS_FILE", "CAUDAL_EDGE_TOKENS"} & set(env):
            e["CAUDAL_PLAYBACK_KEYS"] = keys_spec(TEST_KEYS)
        e.update(env)
        if mode == "s3":
            e.update(CAUDAL_S3_ACCESS_KEY=origin.ACCESS_KEY, CAUDAL_S3_SECRET_KEY=origin.SECRET_KEY,
                     CAUDAL_S3_BUCKET=origin.bucket)
            target = origin.endpoint
        else:
            target = origin
        r = subprocess.run(["bash", os.path.join(CDN_CONFIG, "render.sh"), self.dir, str(self.port), mode, target],
                           env=e, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"render.sh failed: {r.stderr}")
        self.log = os.path.join(workdir, "nginx.out")
        self.proc = Proc(["nginx", "-p", self.dir, "-c", os.path.join(self.dir, "nginx.conf"), "-g", "daemon off;"],
                         self.log)
        wait_port(self.port, 20, "nginx", self.proc.p, os.path.join(self.dir, "logs", "error.log"))
        self.url = f"http://127.0.0.1:{self.port}"

    def logfile(self, name):
        return os.path.join(self.dir, "logs", name)

    def origin_fetches(self):
        """{uri: count} of origin fetches: the local origin's own log in local mode."""
        counts = {}
        path = self.logfile("origin.log" if self.mode == "local" else "upstream.log")
        if not os.path.exists(path):
            return counts
        with open(path, errors="replace") as f:
            for line in f:
                m = re.search(r'"(?:GET|HEAD) (\S+)"', line)
                if m:
                    counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts

    def stop(self):
        self.proc.stop()


def http_get(base, path, method="GET", headers=None, timeout=10):
    """(status, {lower-case header: value}, body) for one request on a new connection."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def workdir(prefix):
    return tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("CAUDAL_EDGE_TMP") or None)
