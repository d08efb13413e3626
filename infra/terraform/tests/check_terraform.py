#!/usr/bin/env python3
"""Named checks of the important properties of infra/terraform, read from hcl2json's output.

    python3 check_terraform.py PARSED.json

PARSED.json maps file names to what @cdktf/hcl2json made of them (tests/hcl2json.js). Blocks
are lists; expressions are strings such as "${var.region}". Only the standard library is used.
Prints one "PASS: <name>" or "FAIL: <name>: <why>" line per check; exits 1 if any failed.
Then a self-test: each of a list of deliberate breakages of the parsed configuration (a public
database, a 60 s playlist TTL, unsigned media, ...) must make its check fail, so a check cannot silently turn
into one that always passes.
"""

import json
import re
import sys

CHECKS = []


def check(name):
    def register(fn):
        CHECKS.append((name, fn))
        return fn

    return register


class Failed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise Failed(why)


# --- reading the parsed configuration -------------------------------------------------------


class Config:
    def __init__(self, files):
        self.files = files
        self.resources = {}  # (type, name) -> body
        self.data = {}
        self.variables = {}
        self.outputs = {}
        self.locals = {}
        self.terraform = []
        for fname, doc in files.items():
            if not fname.endswith(".tf"):
                continue
            for rtype, by_name in doc.get("resource", {}).items():
                for rname, bodies in by_name.items():
                    self.resources[(rtype, rname)] = bodies[0]
            for dtype, by_name in doc.get("data", {}).items():
                for dname, bodies in by_name.items():
                    self.data[(dtype, dname)] = bodies[0]
            for vname, bodies in doc.get("variable", {}).items():
                self.variables[vname] = bodies[0]
            for oname, bodies in doc.get("output", {}).items():
                self.outputs[oname] = bodies[0]
            for block in doc.get("locals", []):
                self.locals.update(block)
            self.terraform.extend(doc.get("terraform", []))

    def of_type(self, rtype):
        return {name: body for (t, name), body in self.resources.items() if t == rtype}

    def resolve(self, value):
        """Replaces ${local.X} by X's value where that value is a plain string."""
        if not isinstance(value, str):
            return value

        def repl(m):
            v = self.locals.get(m.group(1))
            return v if isinstance(v, str) and "${" not in v else m.group(0)

        return re.sub(r"\$\{local\.([A-Za-z0-9_]+)\}", repl, value)


def ref(rtype, name, attr=None):
    """The expression string hcl2json gives for a reference, e.g. ${aws_s3_bucket.media.id}."""
    return "${%s.%s%s}" % (rtype, name, "." + attr if attr else "")


def refers_to(value, rtype, name=None):
    pattern = r"\$\{%s\.%s\b" % (re.escape(rtype), re.escape(name) if name else r"[A-Za-z0-9_-]+")
    return isinstance(value, str) and re.search(pattern, value) is not None


def for_bucket(cfg, rtype, bucket):
    """Bodies of the per-bucket resources (versioning, encryption, ...) of one bucket."""
    return [b for b in cfg.of_type(rtype).values() if refers_to(b.get("bucket"), "aws_s3_bucket", bucket)]


def blocks(body, key):
    v = body.get(key, [])
    return v if isinstance(v, list) else [v]


def as_number(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?\d+(\.\d+)?", v):
        return float(v)
    return None


def all_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from all_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from all_strings(v)


# --- versions and inputs --------------------------------------------------------------------


@check("versions: terraform >= 1.0 and hashicorp/aws ~> 5.x")
def _(cfg):
    expect(cfg.terraform, "no terraform block")
    tf = cfg.terraform[0]
    expect(re.fullmatch(r">=\s*1\.0(\.0)?", tf.get("required_version", "")), "required_version is not '>= 1.0'")
    aws = blocks(tf, "required_providers")[0].get("aws", {})
    expect(aws.get("source") == "hashicorp/aws", "aws provider source is not hashicorp/aws")
    expect(re.fullmatch(r"~>\s*5\.\d+", aws.get("version", "")), "aws provider version is not '~> 5.x'")


@check("variables: every variable has a description and a type")
def _(cfg):
    bad = [n for n, v in cfg.variables.items() if not v.get("description") or "type" not in v]
    expect(not bad, "missing description or type: %s" % ", ".join(sorted(bad)))


@check("tfvars example: sets every required variable and only declared ones")
def _(cfg):
    example = cfg.files.get("terraform.tfvars.example")
    expect(example is not None, "terraform.tfvars.example is missing")
    required = {n for n, v in cfg.variables.items() if "default" not in v}
    expect(not required - set(example), "required but not in the example: %s" % sorted(required - set(example)))
    expect(not set(example) - set(cfg.variables), "not declared: %s" % sorted(set(example) - set(cfg.variables)))


@check("references: every var., local., resource and data reference is declared")
def _(cfg):
    missing = set()
    declared_res = {"%s.%s" % k for k in cfg.resources}
    declared_data = {"%s.%s" % k for k in cfg.data}
    for fname, doc in cfg.files.items():
        if not fname.endswith(".tf"):
            continue
        for s in all_strings(doc):
            if "${" not in s:
                continue
            for m in re.finditer(r"(?<![\w.])var\.([A-Za-z0-9_]+)", s):
                if m.group(1) not in cfg.variables:
                    missing.add("var." + m.group(1))
            for m in re.finditer(r"(?<![\w.])local\.([A-Za-z0-9_]+)", s):
                if m.group(1) not in cfg.locals:
                    missing.add("local." + m.group(1))
            for m in re.finditer(r"(?<![\w.])data\.([a-z0-9_]+\.[A-Za-z0-9_]+)", s):
                if m.group(1) not in declared_data:
                    missing.add("data." + m.group(1))
            for m in re.finditer(r"(?<![\w.:/-])((?:aws|random)_[a-z0-9_]+\.[A-Za-z0-9_]+)", s):
                if m.group(1) not in declared_res:
                    missing.add(m.group(1))
    expect(not missing, "undeclared: %s" % ", ".join(sorted(missing)))


@check("outputs: RTMP URL, CloudFront domain and API URL are exported")
def _(cfg):
    for name in ("rtmp_url", "cloudfront_domain_name", "api_url"):
        expect(name in cfg.outputs, "output %s is missing" % name)
        expect(cfg.outputs[name].get("description"), "output %s has no description" % name)
    expect("rtmp://" in cfg.resolve(cfg.locals.get("rtmp_url", "")), "local.rtmp_url is not an rtmp:// URL")
    expect(":1935/" in cfg.locals.get("rtmp_url", ""), "local.rtmp_url does not use port 1935")


# --- S3 -------------------------------------------------------------------------------------


@check("s3: every bucket blocks public access (all four settings)")
def _(cfg):
    buckets = cfg.of_type("aws_s3_bucket")
    expect(buckets, "no aws_s3_bucket")
    for name in buckets:
        pabs = for_bucket(cfg, "aws_s3_bucket_public_access_block", name)
        expect(pabs, "bucket %s has no public access block" % name)
        for key in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            expect(pabs[0].get(key) is True, "bucket %s: %s is not true" % (name, key))


@check("s3: every bucket has default encryption")
def _(cfg):
    for name in cfg.of_type("aws_s3_bucket"):
        sse = for_bucket(cfg, "aws_s3_bucket_server_side_encryption_configuration", name)
        expect(sse, "bucket %s has no encryption configuration" % name)
        algo = blocks(blocks(sse[0], "rule")[0], "apply_server_side_encryption_by_default")[0].get("sse_algorithm")
        expect(algo in ("AES256", "aws:kms", "aws:kms:dsse"), "bucket %s: sse_algorithm is %r" % (name, algo))


@check("s3: media bucket is versioned, owner-enforced and has a TLS-only policy")
def _(cfg):
    expect(("aws_s3_bucket", "media") in cfg.resources, "no aws_s3_bucket.media")
    ver = for_bucket(cfg, "aws_s3_bucket_versioning", "media")
    expect(ver and blocks(ver[0], "versioning_configuration")[0].get("status") == "Enabled", "versioning is not Enabled")
    own = for_bucket(cfg, "aws_s3_bucket_ownership_controls", "media")
    expect(own and blocks(own[0], "rule")[0].get("object_ownership") == "BucketOwnerEnforced", "ACLs are not disabled")
    pol = for_bucket(cfg, "aws_s3_bucket_policy", "media")
    expect(pol, "no bucket policy")
    text = pol[0].get("policy", "")
    expect('"aws:SecureTransport" = "false"' in text, "no deny of plain-HTTP requests")
    expect("cloudfront.amazonaws.com" in text and "AWS:SourceArn" in text, "CloudFront read is not scoped to the distribution")
    expect(not for_bucket(cfg, "aws_s3_bucket_acl", "media"), "media bucket has an ACL resource")
    expect(not for_bucket(cfg, "aws_s3_bucket_cors_configuration", "media"), "media bucket has CORS (CloudFront adds it)")


@check("s3: media lifecycle aborts incomplete multipart uploads and expires old versions")
def _(cfg):
    lc = for_bucket(cfg, "aws_s3_bucket_lifecycle_configuration", "media")
    expect(lc, "no lifecycle configuration")
    rules = [r for r in blocks(lc[0], "rule") if r.get("status") == "Enabled"]
    abort = [r for r in rules if r.get("abort_incomplete_multipart_upload")]
    expect(abort, "no enabled rule aborts incomplete multipart uploads")
    days = as_number(blocks(abort[0], "abort_incomplete_multipart_upload")[0].get("days_after_initiation"))
    expect(days is not None and days <= 7, "multipart uploads are aborted after %r days (want <= 7)" % days)
    expect(any(r.get("noncurrent_version_expiration") for r in rules), "noncurrent versions never expire")


# --- CloudFront -----------------------------------------------------------------------------


def distribution(cfg):
    dists = cfg.of_type("aws_cloudfront_distribution")
    expect(len(dists) == 1, "expected one aws_cloudfront_distribution, found %d" % len(dists))
    return next(iter(dists.values()))


def low_latency(pattern):
    """A path pattern of the low-latency HLS behaviours (ingest's live origin, not the bucket)."""
    return pattern.endswith("/ll.m3u8") or "/ll_" in pattern


def behaviours(cfg, suffix):
    d = distribution(cfg)
    found = [b for b in blocks(d, "ordered_cache_behavior")
             if cfg.resolve(b.get("path_pattern", "")).endswith(suffix) and not low_latency(cfg.resolve(b.get("path_pattern", "")))]
    expect(found, "no cache behaviour for *%s" % suffix)
    return found


def media_origin_id(cfg):
    d = distribution(cfg)
    s3 = [o for o in blocks(d, "origin") if refers_to(o.get("domain_name"), "aws_s3_bucket", "media")]
    expect(len(s3) == 1, "no single origin on aws_s3_bucket.media")
    return s3[0]["origin_id"]


def cache_policy(cfg, behaviour):
    m = re.fullmatch(r"\$\{aws_cloudfront_cache_policy\.([A-Za-z0-9_-]+)\.id\}", behaviour.get("cache_policy_id", ""))
    expect(m, "behaviour %s does not use a cache policy defined here" % behaviour.get("path_pattern"))
    return cfg.resources[("aws_cloudfront_cache_policy", m.group(1))]


@check("cloudfront: the media bucket is reached through Origin Access Control (sigv4, always)")
def _(cfg):
    d = distribution(cfg)
    origin_id = media_origin_id(cfg)
    origin = [o for o in blocks(d, "origin") if o["origin_id"] == origin_id][0]
    expect(refers_to(origin.get("origin_access_control_id"), "aws_cloudfront_origin_access_control"), "origin has no OAC")
    expect(not origin.get("s3_origin_config"), "origin still uses a legacy origin access identity")
    oacs = cfg.of_type("aws_cloudfront_origin_access_control")
    name = re.search(r"aws_cloudfront_origin_access_control\.([A-Za-z0-9_-]+)", origin["origin_access_control_id"]).group(1)
    oac = oacs[name]
    expect(oac.get("origin_access_control_origin_type") == "s3", "OAC origin type is not s3")
    expect(oac.get("signing_behavior") == "always" and oac.get("signing_protocol") == "sigv4", "OAC does not always sign with sigv4")


@check("cloudfront: *.m3u8 goes to the bucket with max TTL <= 1 s")
def _(cfg):
    origin_id = media_origin_id(cfg)
    for b in behaviours(cfg, ".m3u8"):
        expect(b.get("target_origin_id") == origin_id, "*.m3u8 does not go to the media bucket")
        policy = cache_policy(cfg, b)
        for key in ("max_ttl", "default_ttl"):
            v = as_number(policy.get(key))
            expect(v is not None and v <= 1, "playlist %s is %r (want <= 1)" % (key, policy.get(key)))


@check("cloudfront: *.ts and *.m4s go to the bucket with a long TTL (>= 1 day)")
def _(cfg):
    origin_id = media_origin_id(cfg)
    for suffix in (".ts", ".m4s"):
        for b in behaviours(cfg, suffix):
            expect(b.get("target_origin_id") == origin_id, "*%s does not go to the media bucket" % suffix)
            policy = cache_policy(cfg, b)
            for key in ("default_ttl", "max_ttl"):
                v = as_number(policy.get(key))
                expect(v is not None and v >= 86400, "segment %s is %r (want >= 86400)" % (key, policy.get(key)))


def media_behaviours(cfg):
    """Every cache behaviour (default included) that goes to the media bucket."""
    d = distribution(cfg)
    origin_id = media_origin_id(cfg)
    return [b for b in blocks(d, "default_cache_behavior") + blocks(d, "ordered_cache_behavior")
            if b.get("target_origin_id") == origin_id]


def viewer_request_function(behaviour):
    """Name of the aws_cloudfront_function run on viewer request, or None."""
    fa = [a for a in blocks(behaviour, "function_association") if a.get("event_type") == "viewer-request"]
    m = fa and re.fullmatch(r"\$\{aws_cloudfront_function\.([A-Za-z0-9_-]+)\.arn\}", fa[0].get("function_arn", ""))
    return m.group(1) if m else None


TOKEN_PATTERNS = ("/p/*.m3u8", "/p/*.ts", "/p/*.m4s", "/p/*")
POSTER_PATTERN = re.compile(r"/[^/]+/[^/]+/poster\.(jpg|png)")


@check("cloudfront: media carries CORS headers (response headers policy) and preflights are answered at the edge")
def _(cfg):
    behaviours_ = media_behaviours(cfg)
    expect(behaviours_, "no behaviour goes to the media bucket")
    for b in behaviours_:
        where = b.get("path_pattern", "(default)")
        m = re.fullmatch(r"\$\{aws_cloudfront_response_headers_policy\.([A-Za-z0-9_-]+)\.id\}", b.get("response_headers_policy_id", ""))
        expect(m, "%s has no response headers policy defined here" % where)
        pol = cfg.resources[("aws_cloudfront_response_headers_policy", m.group(1))]
        cors = blocks(pol, "cors_config")
        expect(cors, "policy %s has no cors_config" % m.group(1))
        expect(blocks(cors[0], "access_control_allow_origins")[0].get("items"), "no allowed origins")
        expect("OPTIONS" in b.get("allowed_methods", []), "%s does not allow OPTIONS" % where)
        expect(viewer_request_function(b) == "playback_token",
               "%s does not answer preflights (no viewer-request playback_token function)" % where)
    fn = cfg.resources.get(("aws_cloudfront_function", "playback_token"))
    expect(fn and "functions/playback-token.js" in fn.get("code", ""), "the media function is not functions/playback-token.js")
    expect("cors_allowed_origins" in fn.get("code", ""), "the media function is not given var.cors_allowed_origins")


@check("cloudfront: playback tokens are verified on every media behaviour (playback_token function with the key store)")
def _(cfg):
    behaviours_ = media_behaviours(cfg)
    patterns = [b.get("path_pattern") for b in behaviours_]
    for p in TOKEN_PATTERNS:
        expect(p in patterns, "no media behaviour for %s" % p)
    expect(patterns.index("/p/*") > max(patterns.index(p) for p in TOKEN_PATTERNS[:3]),
           "/p/* comes before a more specific /p/ behaviour")
    for b in behaviours_:
        expect(viewer_request_function(b) == "playback_token",
               "%s does not run the playback_token function on viewer request" % b.get("path_pattern", "(default)"))
        expect(not blocks(b, "lambda_function_association"), "%s also runs Lambda@Edge" % b.get("path_pattern"))
    fn = cfg.resources.get(("aws_cloudfront_function", "playback_token"))
    expect(fn is not None, "no aws_cloudfront_function.playback_token")
    expect(fn.get("runtime") == "cloudfront-js-2.0", "the function's runtime is %r (key stores need cloudfront-js-2.0)" % fn.get("runtime"))
    expect(fn.get("publish") is not False, "the function is not published")
    kvs = fn.get("key_value_store_associations") or []
    expect(len(kvs) == 1 and refers_to(kvs[0], "aws_cloudfront_key_value_store"), "the function has no key value store")
    store = re.search(r"aws_cloudfront_key_value_store\.([A-Za-z0-9_-]+)", kvs[0]).group(1)
    expect(re.search(r"kvs_id\s*=\s*element\(split\(\"/\", aws_cloudfront_key_value_store\.%s\.arn\), 1\)" % store, fn.get("code", "")),
           "the function code is not given the store's id (the last part of its ARN)")
    keys = [k for k in cfg.of_type("aws_cloudfrontkeyvaluestore_key").values()
            if refers_to(k.get("key_value_store_arn"), "aws_cloudfront_key_value_store", store)]
    expect(keys, "no key is put into the key value store")


@check("cloudfront: unsigned media: only posters are served without a token")
def _(cfg):
    d = distribution(cfg)
    origin_id = media_origin_id(cfg)
    expect(all(b.get("target_origin_id") != origin_id for b in blocks(d, "default_cache_behavior")),
           "the default behaviour serves the media bucket")
    for b in media_behaviours(cfg):
        p = cfg.resolve(b.get("path_pattern", ""))
        expect(p.startswith("/p/") or POSTER_PATTERN.fullmatch(p),
               "%s serves media without a token (only /p/... and /{seg1}/{seg2}/poster.jpg|png may)" % p)
    posters = [b for b in media_behaviours(cfg) if POSTER_PATTERN.fullmatch(cfg.resolve(b.get("path_pattern", "")))]
    expect(posters, "no poster behaviour")


@check("cloudfront: media cache keys (/p/* and posters) are the object key only (no query string, cookie or header)")
def _(cfg):
    for b in media_behaviours(cfg):
        where = b.get("path_pattern", "(default)")
        expect(not b.get("origin_request_policy_id"), "%s forwards more than the cache key to S3 (origin request policy)" % where)
        expect(not b.get("forwarded_values"), "%s uses legacy forwarded_values" % where)
        policy = cache_policy(cfg, b)
        params = blocks(policy, "parameters_in_cache_key_and_forwarded_to_origin")
        expect(params, "%s: cache policy has no key parameters" % where)
        prm = params[0]
        for block, key in (("cookies_config", "cookie_behavior"), ("headers_config", "header_behavior"),
                           ("query_strings_config", "query_string_behavior")):
            v = blocks(prm, block)[0].get(key) if blocks(prm, block) else None
            expect(v == "none", "%s: %s is %r (want none)" % (where, key, v))


@check("cloudfront: low-latency HLS (/p/*/ll.m3u8, /p/*/ll_*) goes to the ALB under a playback token, keyed on the blocking-reload query only, before the media behaviours")
def _(cfg):
    d = distribution(cfg)
    ordered = blocks(d, "ordered_cache_behavior")
    patterns = [cfg.resolve(b.get("path_pattern", "")) for b in ordered]
    ll = [b for b, p in zip(ordered, patterns) if low_latency(p)]
    expect({cfg.resolve(b["path_pattern"]) for b in ll} == {"/p/*/ll.m3u8", "/p/*/ll_*"},
           "low-latency behaviours are %r" % [b.get("path_pattern") for b in ll])
    alb = [o["origin_id"] for o in blocks(d, "origin") if o.get("domain_name") == "${var.origin_domain_name}"]
    first_media = min(i for i, p in enumerate(patterns) if p in ("/p/*.m3u8", "/p/*.m4s", "/p/*"))
    for b in ll:
        where = b["path_pattern"]
        expect(b.get("target_origin_id") in alb, "%s does not go to the ALB origin" % where)
        expect(patterns.index(cfg.resolve(where)) < first_media, "%s comes after a media behaviour that would match first" % where)
        expect(viewer_request_function(b) == "playback_token", "%s is served without the playback token check" % where)
        expect(b.get("viewer_protocol_policy") == "https-only", "%s allows plain HTTP" % where)
        policy = cache_policy(cfg, b)
        prm = blocks(policy, "parameters_in_cache_key_and_forwarded_to_origin")[0]
        qs = blocks(prm, "query_strings_config")[0]
        items = blocks(qs, "query_strings")[0].get("items") if blocks(qs, "query_strings") else None
        expect(qs.get("query_string_behavior") == "whitelist" and sorted(items or []) == ["_HLS_msn", "_HLS_part", "_HLS_skip"],
               "%s: the cache key is not the blocking-reload query only (%r %r)" % (where, qs.get("query_string_behavior"), items))
        for block, key in (("cookies_config", "cookie_behavior"), ("headers_config", "header_behavior")):
            expect(blocks(prm, block)[0].get(key) == "none", "%s: %s is not none" % (where, key))
        expect(as_number(policy.get("min_ttl")) == 0, "%s: min_ttl is not 0 (a blocking answer's 1 s would be stretched)" % where)


@check("alb: low-latency HLS names reach ingest's live origin (8081) only with CloudFront's secret header")
def _(cfg):
    rules = [r for r in cfg.of_type("aws_lb_listener_rule").values()
             if any(low_latency(v) for c in blocks(r, "condition") for pp in blocks(c, "path_pattern") for v in pp.get("values", []))]
    expect(len(rules) == 1, "expected one listener rule for the live origin, found %d" % len(rules))
    r = rules[0]
    headers = [h for c in blocks(r, "condition") for h in blocks(c, "http_header")]
    expect(any(h.get("http_header_name") == "X-Caudal-Origin-Verify" and h.get("values") == ["${random_password.origin_verify.result}"]
               for h in headers), "the live-origin rule does not require the origin-verify header")
    m = re.fullmatch(r"\$\{aws_lb_target_group\.([A-Za-z0-9_-]+)\.arn\}", blocks(r, "action")[0].get("target_group_arn", ""))
    expect(m, "the live-origin rule does not forward to a target group")
    tg = cfg.resources[("aws_lb_target_group", m.group(1))]
    expect(as_number(tg.get("port")) == 8081 and tg.get("protocol") == "HTTP", "the live origin's target group is not HTTP 8081")
    bff_rule = cfg.resources[("aws_lb_listener_rule", "bff_from_cloudfront")]
    expect(as_number(r.get("priority")) < as_number(bff_rule.get("priority")), "bff's rule would match low-latency names first")


@check("cloudfront: HTTPS only for viewers and for the custom origin")
def _(cfg):
    d = distribution(cfg)
    for b in blocks(d, "default_cache_behavior") + blocks(d, "ordered_cache_behavior"):
        expect(b.get("viewer_protocol_policy") in ("https-only", "redirect-to-https"),
               "behaviour %s allows plain HTTP" % b.get("path_pattern", "(default)"))
    for o in blocks(d, "origin"):
        for c in blocks(o, "custom_origin_config"):
            expect(c.get("origin_protocol_policy") == "https-only", "origin %s is not https-only" % o["origin_id"])


@check("cloudfront: /v1/* and the pages go to the bff ALB origin with caching disabled")
def _(cfg):
    d = distribution(cfg)
    api = [b for b in blocks(d, "ordered_cache_behavior") if b.get("path_pattern") in ("/v1/*", "v1/*")]
    expect(api, "no /v1/* behaviour")
    disabled = {k for (t, k), v in cfg.data.items() if t == "aws_cloudfront_cache_policy" and v.get("name") == "Managed-CachingDisabled"}
    expect(disabled, "no data source for Managed-CachingDisabled")
    custom = {o["origin_id"] for o in blocks(d, "origin") if blocks(o, "custom_origin_config")}
    for b in api + blocks(d, "default_cache_behavior"):
        expect(b.get("target_origin_id") in custom, "behaviour %s does not go to the ALB origin" % b.get("path_pattern", "(default)"))
        expect(any(b.get("cache_policy_id") == "${data.aws_cloudfront_cache_policy.%s.id}" % k for k in disabled),
               "behaviour %s is cached" % b.get("path_pattern", "(default)"))
    expect("POST" in api[0].get("allowed_methods", []), "/v1/* does not allow POST")


# --- load balancers -------------------------------------------------------------------------


def lb_of(cfg, listener):
    m = re.fullmatch(r"\$\{aws_lb\.([A-Za-z0-9_-]+)\.arn\}", listener.get("load_balancer_arn", ""))
    expect(m, "listener is not on an aws_lb defined here")
    return cfg.resources[("aws_lb", m.group(1))]


@check("nlb: RTMP listener on TCP 1935 forwards to a TCP 1935 target group")
def _(cfg):
    listeners = [l for l in cfg.of_type("aws_lb_listener").values() if as_number(l.get("port")) == 1935]
    expect(len(listeners) == 1, "expected one listener on 1935, found %d" % len(listeners))
    l = listeners[0]
    expect(l.get("protocol") == "TCP", "1935 listener protocol is %r" % l.get("protocol"))
    lb = lb_of(cfg, l)
    expect(lb.get("load_balancer_type") == "network", "1935 listener is not on a network load balancer")
    expect(lb.get("internal") is False, "the RTMP NLB is internal")
    action = blocks(l, "default_action")[0]
    m = re.fullmatch(r"\$\{aws_lb_target_group\.([A-Za-z0-9_-]+)\.arn\}", action.get("target_group_arn", ""))
    expect(action.get("type") == "forward" and m, "1935 listener does not forward to a target group")
    tg = cfg.resources[("aws_lb_target_group", m.group(1))]
    expect(tg.get("protocol") == "TCP" and as_number(tg.get("port")) == 1935, "RTMP target group is not TCP 1935")


@check("alb: bff is served on HTTPS 443 with the ACM certificate variable and a TLS 1.2+ policy")
def _(cfg):
    listeners = [l for l in cfg.of_type("aws_lb_listener").values()
                 if as_number(l.get("port")) == 443 and l.get("protocol") == "HTTPS"]
    expect(len(listeners) == 1, "expected one HTTPS listener on 443, found %d" % len(listeners))
    l = listeners[0]
    expect(lb_of(cfg, l).get("load_balancer_type") == "application", "HTTPS listener is not on an ALB")
    expect(l.get("certificate_arn") == "${var.alb_certificate_arn}", "certificate is not var.alb_certificate_arn")
    expect(re.search(r"TLS13|TLS-1-2", l.get("ssl_policy", "")), "ssl_policy %r allows TLS < 1.2" % l.get("ssl_policy"))
    plain = [x for x in cfg.of_type("aws_lb_listener").values() if x.get("protocol") == "HTTP"]
    expect(not plain, "a plain HTTP listener exists")


# --- databases ------------------------------------------------------------------------------


@check("rds: MariaDB is not publicly accessible, encrypted, backed up, in the database subnets")
def _(cfg):
    dbs = cfg.of_type("aws_db_instance")
    expect(dbs, "no aws_db_instance")
    for name, db in dbs.items():
        expect(db.get("engine") == "mariadb", "%s engine is %r" % (name, db.get("engine")))
        expect(db.get("publicly_accessible") is False, "%s: publicly_accessible is not false" % name)
        expect(db.get("storage_encrypted") is True, "%s: storage_encrypted is not true" % name)
        expect(db.get("backup_retention_period") not in (None, 0, "0"), "%s: no backups" % name)
        expect(db.get("multi_az") == "${var.db_multi_az}", "%s: multi_az is not var.db_multi_az" % name)
        m = re.fullmatch(r"\$\{aws_db_subnet_group\.([A-Za-z0-9_-]+)\.name\}", db.get("db_subnet_group_name", ""))
        expect(m, "%s: no subnet group defined here" % name)
        sg = cfg.resources[("aws_db_subnet_group", m.group(1))]
        expect(sg.get("subnet_ids") == "${aws_subnet.database[*].id}", "%s: not in the database subnets" % name)


@check("docdb: DocumentDB is encrypted, TLS-only, backed up, in the database subnets")
def _(cfg):
    clusters = cfg.of_type("aws_docdb_cluster")
    expect(clusters, "no aws_docdb_cluster")
    for name, c in clusters.items():
        expect(c.get("storage_encrypted") is True, "%s: storage_encrypted is not true" % name)
        expect(c.get("backup_retention_period") not in (None, 0, "0"), "%s: no backups" % name)
        m = re.fullmatch(r"\$\{aws_docdb_subnet_group\.([A-Za-z0-9_-]+)\.name\}", c.get("db_subnet_group_name", ""))
        expect(m, "%s: no subnet group defined here" % name)
        sg = cfg.resources[("aws_docdb_subnet_group", m.group(1))]
        expect(sg.get("subnet_ids") == "${aws_subnet.database[*].id}", "%s: not in the database subnets" % name)
        m = re.fullmatch(r"\$\{aws_docdb_cluster_parameter_group\.([A-Za-z0-9_-]+)\.name\}", c.get("db_cluster_parameter_group_name", ""))
        expect(m, "%s: no parameter group defined here" % name)
        params = {p["name"]: p["value"] for p in blocks(cfg.resources[("aws_docdb_cluster_parameter_group", m.group(1))], "parameter")}
        expect(params.get("tls") == "enabled", "%s: tls is not enabled" % name)
    for name, inst in cfg.of_type("aws_docdb_cluster_instance").items():
        expect(inst.get("publicly_accessible") in (None, False), "instance %s is publicly accessible" % name)


@check("network: database subnets have no route out of the VPC")
def _(cfg):
    for name, rt in cfg.of_type("aws_route_table").items():
        if any(refers_to(a.get("route_table_id"), "aws_route_table", name) and refers_to(a.get("subnet_id"), "aws_subnet", "database")
               for a in cfg.of_type("aws_route_table_association").values()):
            expect(not rt.get("route"), "route table %s of the database subnets has routes" % name)
    for name, s in cfg.of_type("aws_subnet").items():
        expect(s.get("map_public_ip_on_launch") in (None, False), "subnet %s gives public IPs" % name)


# --- security groups ------------------------------------------------------------------------

DB_PORTS = (3306, 27017, 6379)
WORLD = ("0.0.0.0/0", "::/0")


def ingress_rules(cfg):
    """(owner expression, rule dict with from/to/protocol/cidrs/source) for every ingress rule."""
    out = []
    for name, r in cfg.of_type("aws_vpc_security_group_ingress_rule").items():
        cidrs = [c for c in (r.get("cidr_ipv4"), r.get("cidr_ipv6")) if c]
        if r.get("for_each") and cidrs == ["${each.value}"]:
            cidrs = ["(from %s)" % r["for_each"]]
        out.append((name, r.get("security_group_id"), r.get("from_port"), r.get("to_port"), r.get("ip_protocol"),
                    cidrs, r.get("referenced_security_group_id") or r.get("prefix_list_id")))
    for name, r in cfg.of_type("aws_security_group_rule").items():
        if r.get("type") == "ingress":
            out.append((name, r.get("security_group_id"), r.get("from_port"), r.get("to_port"), r.get("protocol"),
                        (r.get("cidr_blocks") or []) + (r.get("ipv6_cidr_blocks") or []), r.get("source_security_group_id")))
    for name, sg in cfg.of_type("aws_security_group").items():
        for r in blocks(sg, "ingress"):
            out.append((name, ref("aws_security_group", name, "id"), r.get("from_port"), r.get("to_port"), r.get("protocol"),
                        (r.get("cidr_blocks") or []) + (r.get("ipv6_cidr_blocks") or []), r.get("security_groups")))
    return out


def covers(frm, to, proto, port):
    if str(proto) in ("-1", "all"):
        return True
    lo, hi = as_number(frm), as_number(to)
    return lo is None or hi is None or lo <= port <= hi


def world_open(cidrs):
    return any(c in WORLD or "rtmp_allowed_cidrs" in c for c in cidrs if isinstance(c, str))


@check("security groups: nothing opens the database ports (3306, 27017, 6379) to 0.0.0.0/0")
def _(cfg):
    bad = [name for name, _sg, frm, to, proto, cidrs, _src in ingress_rules(cfg)
           if world_open(cidrs) and any(covers(frm, to, proto, p) for p in DB_PORTS)]
    expect(not bad, "open to the internet on a database port: %s" % ", ".join(bad))


@check("security groups: databases accept only their owning service's security group")
def _(cfg):
    owners = {"rds": ("user_svc", 3306), "docdb": ("metadata_svc", 27017), "ingest_state": ("ingest", 6379)}
    for db_sg, (svc_sg, port) in owners.items():
        expect(("aws_security_group", db_sg) in cfg.resources, "no aws_security_group.%s" % db_sg)
        rules = [r for r in ingress_rules(cfg) if r[1] == ref("aws_security_group", db_sg, "id")]
        expect(rules, "no ingress rule on %s" % db_sg)
        for name, _sg, frm, to, proto, cidrs, src in rules:
            expect(not cidrs, "%s allows CIDRs" % name)
            expect(src == ref("aws_security_group", svc_sg, "id"), "%s allows %r, not %s" % (name, src, svc_sg))
            expect(as_number(frm) == port and as_number(to) == port and proto == "tcp", "%s is not tcp %d only" % (name, port))


@check("security groups: only the NLB takes traffic from the internet (RTMP 1935/443)")
def _(cfg):
    for name, sg, frm, to, proto, cidrs, _src in ingress_rules(cfg):
        if world_open(cidrs):
            expect(sg == ref("aws_security_group", "nlb", "id"), "%s opens %s to the internet" % (name, sg))
            expect(as_number(frm) in (1935, 443) and frm == to and proto == "tcp", "%s opens %s-%s/%s" % (name, frm, to, proto))
    ingest = [r for r in ingress_rules(cfg) if r[1] == ref("aws_security_group", "ingest", "id")]
    expect(ingest and any(r[6] == ref("aws_security_group", "nlb", "id") for r in ingest), "ingest does not accept the NLB")
    for name, _sg, frm, to, _proto, _cidrs, src in ingest:
        # the NLB (RTMP, health checks); the ALB and the other instances only on the live origin
        if src != ref("aws_security_group", "nlb", "id"):
            expect(src in (ref("aws_security_group", "alb", "id"), ref("aws_security_group", "ingest", "id"))
                   and as_number(frm) == 8081 and as_number(to) == 8081,
                   "ingest accepts more than the NLB, and the ALB or itself on the live origin (8081): %s" % name)
    alb = [r for r in ingress_rules(cfg) if r[1] == ref("aws_security_group", "alb", "id")]
    expect(alb and all(r[6] == "${data.aws_ec2_managed_prefix_list.cloudfront.id}" for r in alb), "the ALB accepts more than CloudFront")


# --- ECS, IAM, logs -------------------------------------------------------------------------


def services(cfg):
    svcs = cfg.locals.get("services")
    expect(isinstance(svcs, dict), "local.services is missing")
    expect(set(svcs) == {"bff", "user-svc", "metadata-svc", "ingest-rtmp"}, "services are %s" % sorted(svcs))
    return svcs


@check("ecs: tasks run in the app subnets without public IPs; one service per process")
def _(cfg):
    services(cfg)
    ecs = cfg.of_type("aws_ecs_service")
    expect(ecs, "no aws_ecs_service")
    for name, s in ecs.items():
        net = blocks(s, "network_configuration")[0]
        expect(net.get("assign_public_ip") is False, "%s assigns public IPs" % name)
        expect(net.get("subnets") == "${aws_subnet.app[*].id}", "%s is not in the app subnets" % name)
        expect(s.get("launch_type") == "FARGATE", "%s is not on Fargate" % name)


@check("ecs: task configuration mirrors the CAUDAL_* settings (s3 storage, service URLs, secrets)")
def _(cfg):
    svcs = services(cfg)
    prefixes = {"bff": "CAUDAL_BFF_", "user-svc": "CAUDAL_USER_", "metadata-svc": "CAUDAL_METADATA_", "ingest-rtmp": "CAUDAL_INGEST_"}
    for name, svc in svcs.items():
        for var in list(svc.get("env", {})) + list(svc.get("secrets", {})):
            expect(var.startswith(prefixes[name]), "%s: %s does not start with %s" % (name, var, prefixes[name]))
            expect(not var.endswith("_FILE"), "%s: %s uses _FILE (secrets come from ECS secrets)" % (name, var))
        for k, v in svc.get("secrets", {}).items():
            expect(refers_to(v, "aws_secretsmanager_secret"), "%s: secret %s is not a Secrets Manager secret" % (name, k))
    env = svcs["ingest-rtmp"]["env"]
    expect(env.get("CAUDAL_INGEST_STORAGE__BACKEND") == "s3", "ingest storage backend is not s3")
    expect(env.get("CAUDAL_INGEST_STORAGE__BUCKET") == ref("aws_s3_bucket", "media", "id"), "ingest bucket is not the media bucket")
    expect(env.get("CAUDAL_INGEST_STORAGE__REGION") == "${var.region}", "ingest region is not var.region")
    expect(not any("ACCESS_KEY" in k for k in env), "ingest has static S3 keys (use the task role)")
    expect(env.get("CAUDAL_INGEST_RTMP_LISTEN") == "0.0.0.0:1935", "ingest does not listen on 0.0.0.0:1935")
    for svc, var in (("user-svc", "CAUDAL_USER_JWT_SECRET"), ("user-svc", "CAUDAL_USER_DATABASE_URL"),
                     ("metadata-svc", "CAUDAL_METADATA_MONGO_URL"), ("bff", "CAUDAL_BFF_PLAYBACK__KEYS")):
        expect(var in svcs[svc].get("secrets", {}), "%s: %s is not an ECS secret" % (svc, var))
        expect(var not in svcs[svc].get("env", {}), "%s: %s is a plain environment variable" % (svc, var))
    for svc in ("bff", "ingest-rtmp"):
        pre = prefixes[svc]
        expect(svcs[svc]["env"].get(pre + "USER_SVC_URL") == "${local.user_svc_url}", "%s does not find user-svc" % svc)
        expect(svcs[svc]["env"].get(pre + "METADATA_SVC_URL") == "${local.metadata_svc_url}", "%s does not find metadata-svc" % svc)


@check("payments: no fake money by default (local provider off unless var.payments_local_demo), clients never pick outcomes")
def _(cfg):
    env = services(cfg)["user-svc"]["env"]
    expect(env.get("CAUDAL_USER_PAYMENT__LOCAL_ENABLED") == "${tostring(var.payments_local_demo)}",
           "user-svc's local payment provider is not tied to var.payments_local_demo")
    expect(cfg.variables.get("payments_local_demo", {}).get("default") is False,
           "var.payments_local_demo must default to false")
    expect(env.get("CAUDAL_USER_PAYMENT__TEST_TOKENS") == "false", "clients may pick payment outcomes (test tokens on)")


@check("playback keys: CloudFront's key store and bff's secret hold the same generated keys; bff signs with the configured kid")
def _(cfg):
    var = cfg.variables.get("playback_keys", {})
    expect(any("contains(var.playback_keys.key_ids, var.playback_keys.signing_key_id)" in v.get("condition", "")
               for v in blocks(var, "validation")), "var.playback_keys does not check that signing_key_id is listed")
    pw = cfg.resources.get(("random_password", "playback"))
    expect(pw and pw.get("for_each") == "${toset(var.playback_keys.key_ids)}", "no random_password.playback per key id")
    expect(as_number(pw.get("length")) >= 32 and pw.get("special") is False,
           "playback secrets must be >= 32 letters and digits (the list is kid=secret,...)")
    kvs_keys = cfg.of_type("aws_cloudfrontkeyvaluestore_key")
    expect(len(kvs_keys) == 1, "expected one aws_cloudfrontkeyvaluestore_key (per key id)")
    k = next(iter(kvs_keys.values()))
    expect(k.get("for_each") == pw.get("for_each"), "the key store does not hold every key id")
    expect(k.get("key") in ("${each.value}", "${each.key}"), "the store's keys are not the key ids")
    expect(refers_to(k.get("value"), "random_password", "playback"), "the store's values are not the generated secrets")
    local = cfg.locals.get("playback_keys", "")
    expect(refers_to(local, "random_password", "playback") and "var.playback_keys.key_ids" in local,
           "local.playback_keys is not kid=secret of every key id")
    ver = cfg.resources.get(("aws_secretsmanager_secret_version", "playback_keys"))
    expect(ver and ver.get("secret_string") == "${local.playback_keys}", "the secret does not hold local.playback_keys")
    bff = services(cfg)["bff"]
    secret = bff.get("secrets", {}).get("CAUDAL_BFF_PLAYBACK__KEYS", "")
    expect(refers_to(secret, "aws_secretsmanager_secret", "playback_keys"), "bff does not get the playback keys secret")
    expect(secret.endswith(":::${aws_secretsmanager_secret_version.playback_keys.version_id}"),
           "bff's secret is not pinned to the secret version (a new key list would not redeploy bff)")
    expect(bff["env"].get("CAUDAL_BFF_PLAYBACK__SIGNING_KEY_ID") == "${var.playback_keys.signing_key_id}",
           "bff does not sign with var.playback_keys.signing_key_id")
    execution = cfg.resources.get(("aws_iam_role_policy", "execution"), {})
    expect("aws_secretsmanager_secret.playback_keys.arn" in execution.get("policy", ""),
           "the execution role cannot read the playback keys secret")


def policy_statements(text):
    """The top-level {...} blocks of Statement = [...] in an inline jsonencode() policy."""
    text = "\n".join(l for l in text.splitlines() if not l.strip().startswith("#"))
    i = text.index("[", text.index("Statement"))
    out, depth, start, in_str = [], 0, None, False
    for j in range(i + 1, len(text)):
        c = text[j]
        if in_str:
            in_str = not (c == '"' and text[j - 1] != "\\")
        elif c == '"':
            in_str = True
        elif c == "{":
            start = j if depth == 0 else start
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                out.append(text[start:j + 1])
        elif c == "]" and depth == 0:
            break
    return out


def statement_actions(st):
    m = re.search(r'\bAction\s*=\s*(\[[^\]]*\]|"[^"]*")', st)
    return set(re.findall(r'"([^"]+)"', m.group(1))) if m else set()


def statement_resource(st):
    m = re.search(r"\bResource\s*=\s*(\[[^\]]*\]|\S+)", st)
    return m.group(1) if m else ""


def ingest_policy(cfg):
    policies = [p for p in cfg.of_type("aws_iam_role_policy").values() if refers_to(p.get("role"), "aws_iam_role", "ingest_task")]
    expect(len(policies) == 1, "expected one inline policy on the ingest task role")
    statements = policy_statements(policies[0]["policy"])
    expect(statements, "the ingest policy has no statements")
    return policies[0]["policy"], statements


MEDIA_OBJECTS = '"${aws_s3_bucket.media.arn}/${local.media_prefix}/*"'


@check("iam: ingest task role may only put/get/delete under the media prefix and list the media bucket")
def _(cfg):
    td = cfg.of_type("aws_ecs_task_definition")
    expect(td, "no task definition")
    attached = [a for a in cfg.of_type("aws_iam_role_policy_attachment").values() if refers_to(a.get("role"), "aws_iam_role", "ingest_task")]
    expect(not attached, "managed policies are attached to the ingest task role")
    text, statements = ingest_policy(cfg)
    actions = set()
    for st in statements:
        expect('"Allow"' in st and "NotAction" not in st and "NotResource" not in st, "a statement is not a plain Allow")
        acts = statement_actions(st)
        expect(acts, "a statement has no Action")
        actions |= acts
        res = statement_resource(st)
        expect("aws_s3_bucket.media.arn" in res, "resource %s is not the media bucket" % res)
        if acts - {"s3:ListBucket"}:
            expect(res == MEDIA_OBJECTS, "object actions %s on %s, not under the media prefix" % (sorted(acts), res))
    expect(actions == {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket"}, "actions are %s" % sorted(actions))
    expect('"Deny"' not in text and '"*"' not in text, "policy has a wildcard")


@check("iam: video deletion: the ingest task role (cleanup worker) may delete media objects and lists only the media prefix")
def _(cfg):
    roles = [t.get("task_role_arn", "") for t in cfg.of_type("aws_ecs_task_definition").values()]
    expect(any(re.search(r'"ingest-rtmp"\s*\?\s*aws_iam_role\.ingest_task\.arn\b', r) for r in roles),
           "ingest-rtmp does not run with the ingest task role")
    _text, statements = ingest_policy(cfg)
    delete = [st for st in statements if "s3:DeleteObject" in statement_actions(st)]
    expect(delete, "no statement allows s3:DeleteObject")
    expect(all(statement_resource(st) == MEDIA_OBJECTS for st in delete), "s3:DeleteObject is not on the media prefix")
    listing = [st for st in statements if "s3:ListBucket" in statement_actions(st)]
    expect(listing, "no statement allows s3:ListBucket (the cleanup lists a video's prefix)")
    for st in listing:
        m = re.search(r'(StringLike(?:IfExists)?)\s*=\s*\{\s*"s3:prefix"\s*=\s*(\[[^\]]*\]|"[^"]*")', st)
        expect(m, "s3:ListBucket is not limited by s3:prefix")
        expect(re.findall(r'"([^"]+)"', m.group(2)) == ["${local.media_prefix}/*"], "s3:prefix is %s" % m.group(2))


@check("logs: every CloudWatch log group has a retention and a KMS key")
def _(cfg):
    groups = cfg.of_type("aws_cloudwatch_log_group")
    expect(groups, "no log groups")
    for name, g in groups.items():
        expect(g.get("retention_in_days") is not None, "%s has no retention" % name)
        expect(g.get("kms_key_id"), "%s is not encrypted with a KMS key" % name)


def run(cfg, fn):
    """None when the check passes, else why it failed."""
    try:
        fn(cfg)
        return None
    except Failed as e:
        return str(e)
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        return "configuration shape not understood (%s: %s)" % (type(e).__name__, e)


# --- self-test: each mutation of the real configuration must make its check fail ------------


def res(files, fname, rtype, name):
    return files[fname]["resource"][rtype][name][0]


def _add_world_db_rule(files):
    files["security_groups.tf"]["resource"]["aws_vpc_security_group_ingress_rule"]["bad"] = [{
        "security_group_id": "${aws_security_group.bff.id}", "ip_protocol": "tcp", "from_port": 3000,
        "to_port": 3400, "cidr_ipv4": "0.0.0.0/0", "description": "x"}]


def _add_world_all_ports_inline(files):
    res(files, "security_groups.tf", "aws_security_group", "docdb")["ingress"] = [{
        "from_port": 0, "to_port": 0, "protocol": "-1", "cidr_blocks": ["0.0.0.0/0"]}]


def _service_env(files, service):
    block = [b for b in files["ecs.tf"]["locals"] if "services" in b][0]
    return block["services"][service]["env"]


def _service_secrets(files, service):
    block = [b for b in files["ecs.tf"]["locals"] if "services" in b][0]
    return block["services"][service]["secrets"]


def _ordered(files):
    return res(files, "cdn.tf", "aws_cloudfront_distribution", "main")["ordered_cache_behavior"]


def _behaviour(files, pattern):
    return [b for b in _ordered(files) if b["path_pattern"] == pattern][0]


def _ingest_policy_replace(files, old, new):
    policy = res(files, "iam.tf", "aws_iam_role_policy", "ingest_media")
    if old not in policy["policy"]:
        raise KeyError("%r is not in the ingest policy" % old)
    policy["policy"] = policy["policy"].replace(old, new)


MUTATIONS = [
    ("cloudfront: low-latency HLS", "every query string in the low-latency cache key",
     lambda f: res(f, "cdn.tf", "aws_cloudfront_cache_policy", "hls_low_latency")["parameters_in_cache_key_and_forwarded_to_origin"][0]
     ["query_strings_config"][0].update(query_string_behavior="all")),
    ("cloudfront: low-latency HLS", "low-latency parts without the token check",
     lambda f: _behaviour(f, "/p/*/ll_*").pop("function_association")),
    ("cloudfront: low-latency HLS", "the low-latency playlist behaviour after /p/*.m3u8",
     lambda f: _ordered(f).append(_ordered(f).pop(_ordered(f).index(_behaviour(f, "/p/*/ll.m3u8"))))),
    ("alb: low-latency HLS", "the live-origin rule without the secret header",
     lambda f: res(f, "loadbalancers.tf", "aws_lb_listener_rule", "live_origin_from_cloudfront")["condition"].pop(0)),
    ("alb: low-latency HLS", "the live-origin rule after bff's",
     lambda f: res(f, "loadbalancers.tf", "aws_lb_listener_rule", "live_origin_from_cloudfront").update(priority=20)),
    ("rds:", "a public MariaDB",
     lambda f: res(f, "database.tf", "aws_db_instance", "user").update(publicly_accessible=True)),
    ("rds:", "an unencrypted MariaDB",
     lambda f: res(f, "database.tf", "aws_db_instance", "user").update(storage_encrypted=False)),
    ("docdb:", "an unencrypted DocumentDB",
     lambda f: res(f, "database.tf", "aws_docdb_cluster", "metadata").update(storage_encrypted=False)),
    ("docdb:", "DocumentDB without TLS",
     lambda f: res(f, "database.tf", "aws_docdb_cluster_parameter_group", "metadata")["parameter"][0].update(value="disabled")),
    ("s3: every bucket blocks", "a media bucket allowing public policies",
     lambda f: res(f, "storage.tf", "aws_s3_bucket_public_access_block", "media").update(block_public_policy=False)),
    ("s3: every bucket has default encryption", "a media bucket without encryption",
     lambda f: f["storage.tf"]["resource"]["aws_s3_bucket_server_side_encryption_configuration"].pop("media")),
    ("cloudfront: *.m3u8", "playlists cached for 60 s",
     lambda f: res(f, "cdn.tf", "aws_cloudfront_cache_policy", "hls_playlists").update(max_ttl=60)),
    ("cloudfront: *.m3u8", "no playlist behaviour",
     lambda f: _ordered(f).remove(_behaviour(f, "/p/*.m3u8"))),
    ("cloudfront: *.ts", "segments cached for 60 s",
     lambda f: res(f, "cdn.tf", "aws_cloudfront_cache_policy", "hls_segments").update(default_ttl=60)),
    ("cloudfront: the media bucket", "a media origin without OAC",
     lambda f: res(f, "cdn.tf", "aws_cloudfront_distribution", "main")["origin"][0].pop("origin_access_control_id")),
    ("cloudfront: HTTPS only", "a behaviour allowing HTTP",
     lambda f: _ordered(f)[0].update(viewer_protocol_policy="allow-all")),
    ("nlb:", "an RTMP listener on UDP",
     lambda f: res(f, "loadbalancers.tf", "aws_lb_listener", "rtmp").update(protocol="UDP")),
    ("security groups: nothing opens", "3306 in a 0.0.0.0/0 port range",
     _add_world_db_rule),
    ("security groups: nothing opens", "an all-ports inline rule from 0.0.0.0/0",
     _add_world_all_ports_inline),
    ("security groups: only the NLB", "ingest's live origin port range widened for the ALB",
     lambda f: res(f, "security_groups.tf", "aws_vpc_security_group_ingress_rule", "ingest_origin_from_alb").update(to_port=9081)),
    ("security groups: databases accept", "DocumentDB open to bff",
     lambda f: res(f, "security_groups.tf", "aws_vpc_security_group_ingress_rule", "docdb_from_metadata_svc")
     .update(referenced_security_group_id="${aws_security_group.bff.id}")),
    ("iam: ingest", "s3:* for ingest",
     lambda f: _ingest_policy_replace(f, '"s3:GetObject"', '"s3:*"')),
    ("iam: ingest", "deletes outside the media prefix",
     lambda f: _ingest_policy_replace(f, 'Action   = "s3:DeleteObject"\n        Resource = "${aws_s3_bucket.media.arn}/${local.media_prefix}/*"',
                                      'Action   = "s3:DeleteObject"\n        Resource = "${aws_s3_bucket.media.arn}/*"')),
    ("iam: video deletion", "an ingest role that cannot delete",
     lambda f: _ingest_policy_replace(f, '"s3:DeleteObject"', '"s3:GetObject"')),
    ("iam: video deletion", "listing the whole bucket",
     lambda f: _ingest_policy_replace(f, '"s3:prefix" = ["${local.media_prefix}/*"]', '"s3:prefix" = ["*"]')),
    ("cloudfront: playback tokens", "a segment behaviour without the token function",
     lambda f: _behaviour(f, "/p/*.ts").pop("function_association")),
    ("cloudfront: playback tokens", "another function on a media behaviour",
     lambda f: _behaviour(f, "/p/*.m3u8")["function_association"][0].update(function_arn="${aws_cloudfront_function.other.arn}")),
    ("cloudfront: playback tokens", "a function without the key store",
     lambda f: res(f, "cdn.tf", "aws_cloudfront_function", "playback_token").pop("key_value_store_associations")),
    ("cloudfront: unsigned media", "the old unsigned /live/* behaviour back",
     lambda f: _ordered(f).append(dict(_behaviour(f, "/p/*"), path_pattern="/${local.media_prefix}/*"))),
    ("cloudfront: unsigned media", "pages served from the bucket",
     lambda f: res(f, "cdn.tf", "aws_cloudfront_distribution", "main")["default_cache_behavior"][0].update(target_origin_id="media")),
    ("cloudfront: media cache keys", "the query string in the segment cache key",
     lambda f: res(f, "cdn.tf", "aws_cloudfront_cache_policy", "hls_segments")["parameters_in_cache_key_and_forwarded_to_origin"][0]
     ["query_strings_config"][0].update(query_string_behavior="all")),
    ("cloudfront: media cache keys", "a managed cache policy on /p/*",
     lambda f: _behaviour(f, "/p/*").update(cache_policy_id="${data.aws_cloudfront_cache_policy.caching_disabled.id}")),
    ("cloudfront: media cache keys", "viewer headers forwarded to S3",
     lambda f: _behaviour(f, "/p/*.m3u8").update(origin_request_policy_id="${data.aws_cloudfront_origin_request_policy.all_viewer_except_host.id}")),
    ("cloudfront: media carries CORS", "a poster behaviour without the CORS policy",
     lambda f: _behaviour(f, "/*/*/poster.jpg").pop("response_headers_policy_id")),
    ("payments:", "the local provider on by default",
     lambda f: f["variables.tf"]["variable"]["payments_local_demo"][0].update(default=True)),
    ("payments:", "test tokens in production",
     lambda f: _service_env(f, "user-svc").update(CAUDAL_USER_PAYMENT__TEST_TOKENS="true")),
    ("playback keys:", "bff signing with a fixed kid",
     lambda f: _service_env(f, "bff").update(CAUDAL_BFF_PLAYBACK__SIGNING_KEY_ID="k1")),
    ("playback keys:", "a key store filled from another secret",
     lambda f: res(f, "cdn.tf", "aws_cloudfrontkeyvaluestore_key", "playback").update(value="${random_password.jwt.result}")),
    ("playback keys:", "bff's keys secret not pinned to its version",
     lambda f: _service_secrets(f, "bff").update(CAUDAL_BFF_PLAYBACK__KEYS="${aws_secretsmanager_secret.playback_keys.arn}")),
    ("ecs: task configuration", "ingest storing media locally",
     lambda f: _service_env(f, "ingest-rtmp").update(CAUDAL_INGEST_STORAGE__BACKEND="local")),
    ("ecs: task configuration", "the JWT secret as a plain variable",
     lambda f: _service_env(f, "user-svc").update(CAUDAL_USER_JWT_SECRET="x")),
    ("references:", "an undeclared variable",
     lambda f: res(f, "network.tf", "aws_vpc", "main").update(cidr_block="${var.nope}")),
]


def self_test(files):
    failed = 0
    for prefix, what, mutate in MUTATIONS:
        name = "self-test: check '%s' rejects %s" % (prefix.rstrip(":"), what)
        mutated = json.loads(json.dumps(files))
        try:
            mutate(mutated)
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            failed += 1
            print("FAIL: %s: the mutation no longer applies (%s: %s)" % (name, type(e).__name__, e))
            continue
        cfg = Config(mutated)
        targets = [fn for n, fn in CHECKS if n.startswith(prefix)]
        if len(targets) != 1:
            failed += 1
            print("FAIL: %s: %d checks start with %r" % (name, len(targets), prefix))
        elif run(cfg, targets[0]) is None:
            failed += 1
            print("FAIL: %s: the check still passes" % name)
        else:
            print("PASS: %s" % name)
    return failed


def main(path):
    with open(path) as f:
        files = json.load(f)
    cfg = Config(files)
    failed = 0
    for name, fn in CHECKS:
        why = run(cfg, fn)
        if why is None:
            print("PASS: %s" % name)
        else:
            failed += 1
            print("FAIL: %s: %s" % (name, why))
    failed += self_test(files)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_terraform.py PARSED.json")
    sys.exit(main(sys.argv[1]))
