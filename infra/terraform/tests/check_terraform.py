#!/usr/bin/env python3
"""Named checks of the important properties of infra/terraform, read from hcl2json's output.

    python3 check_terraform.py PARSED.json

PARSED.json maps file names to what @cdktf/hcl2json made of them (tests/hcl2json.js). Blocks
are lists; expressions are strings such as "${var.region}". Only the standard library is used.
Prints one "PASS: <name>" or "FAIL: <name>: <why>" line per check; exits 1 if any failed.
Then a self-test: each of a list of deliberate breakages of the parsed configuration (a public
database, a 60 s playlist TTL, unsigned media, ...) must make its check fail, so a check cannot silently turn
into one that always passes.
The second region's resources exist only with var.cross_region_replication (count 0 or 1) and
use the aliased aws provider; the checks read them as written, i.e. as with replication on (its
default), and check what the S3 behaviours do with it off.
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
        self.providers = []  # aws provider blocks
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
            self.providers.extend(doc.get("provider", {}).get("aws", []))

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


def dynamic_blocks(body, key):
    """The blocks that body's `dynamic "key"` makes when its condition holds: one per value of a
    for_each `cond ? ["a", ...] : []` (with ${key.value} replaced by the value), else one; each
    carries its for_each."""
    dyn = body.get("dynamic", {})
    out = []
    for d in (dyn.get(key, []) if isinstance(dyn, dict) else []):
        m = re.fullmatch(r"\$\{.+\? \[(.*)\] : \[\]\}", d.get("for_each", ""), re.S)
        values = re.findall(r'"([^"]*)"', m.group(1)) if m else []
        for v in values or [None]:
            text = json.dumps(blocks(d, "content")[0])
            if v is not None:
                text = text.replace(json.dumps("${%s.value}" % key), json.dumps(v))
            out.append(dict(json.loads(text), for_each=d.get("for_each")))
    return out


def replica_provider(cfg):
    """The provider expression of the second region's resources, e.g. ${aws.replica}."""
    aliased = [p for p in cfg.providers if p.get("alias")]
    expect(len(aliased) == 1, "expected one aliased aws provider (the replica region), found %d" % len(aliased))
    expect(aliased[0].get("region") == "${var.replica_region}", "the aliased aws provider's region is not var.replica_region")
    return "${aws.%s}" % aliased[0]["alias"]


def named(rtype, value):
    """Name of the rtype resource an expression such as ${aws_kms_key.replica[0].arn} refers to."""
    m = re.search(r"\b%s\.([A-Za-z0-9_-]+)" % re.escape(rtype), value or "")
    expect(m, "%r does not refer to an %s defined here" % (value, rtype))
    return m.group(1)


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


def sse_algorithm(cfg, bucket):
    sse = for_bucket(cfg, "aws_s3_bucket_server_side_encryption_configuration", bucket)
    expect(sse, "bucket %s has no encryption configuration" % bucket)
    return blocks(blocks(sse[0], "rule")[0], "apply_server_side_encryption_by_default")[0].get("sse_algorithm")


@check("s3: every bucket has default encryption")
def _(cfg):
    for name in cfg.of_type("aws_s3_bucket"):
        algo = sse_algorithm(cfg, name)
        expect(algo in ("AES256", "aws:kms", "aws:kms:dsse"), "bucket %s: sse_algorithm is %r" % (name, algo))


def versioned(cfg, bucket):
    ver = for_bucket(cfg, "aws_s3_bucket_versioning", bucket)
    return bool(ver) and blocks(ver[0], "versioning_configuration")[0].get("status") == "Enabled"


def private_to_cloudfront(cfg, bucket):
    """Owner-enforced (no ACLs), no CORS, a policy denying plain HTTP and letting only this
    distribution's CloudFront read."""
    own = for_bucket(cfg, "aws_s3_bucket_ownership_controls", bucket)
    expect(own and blocks(own[0], "rule")[0].get("object_ownership") == "BucketOwnerEnforced", "%s: ACLs are not disabled" % bucket)
    pol = for_bucket(cfg, "aws_s3_bucket_policy", bucket)
    expect(pol, "%s has no bucket policy" % bucket)
    text = pol[0].get("policy", "")
    expect('"aws:SecureTransport" = "false"' in text, "%s: no deny of plain-HTTP requests" % bucket)
    expect("cloudfront.amazonaws.com" in text and "AWS:SourceArn" in text, "%s: CloudFront read is not scoped to the distribution" % bucket)
    expect(re.search(r"aws_s3_bucket\.%s\b" % bucket, text), "%s: the policy is about another bucket" % bucket)
    expect(not for_bucket(cfg, "aws_s3_bucket_acl", bucket), "%s has an ACL resource" % bucket)
    expect(not for_bucket(cfg, "aws_s3_bucket_cors_configuration", bucket), "%s has CORS (CloudFront adds it)" % bucket)


def lifecycle_cleans_up(cfg, bucket):
    """An enabled rule aborts incomplete multipart uploads within a week, one expires old versions."""
    lc = for_bucket(cfg, "aws_s3_bucket_lifecycle_configuration", bucket)
    expect(lc, "%s has no lifecycle configuration" % bucket)
    rules = [r for r in blocks(lc[0], "rule") if r.get("status") == "Enabled"]
    abort = [r for r in rules if r.get("abort_incomplete_multipart_upload")]
    expect(abort, "%s: no enabled rule aborts incomplete multipart uploads" % bucket)
    days = as_number(blocks(abort[0], "abort_incomplete_multipart_upload")[0].get("days_after_initiation"))
    expect(days is not None and days <= 7, "%s: multipart uploads are aborted after %r days (want <= 7)" % (bucket, days))
    expect(any(r.get("noncurrent_version_expiration") for r in rules), "%s: noncurrent versions never expire" % bucket)


@check("s3: media bucket is versioned, owner-enforced and has a TLS-only policy")
def _(cfg):
    expect(("aws_s3_bucket", "media") in cfg.resources, "no aws_s3_bucket.media")
    expect(versioned(cfg, "media"), "versioning is not Enabled")
    private_to_cloudfront(cfg, "media")


@check("s3: media lifecycle aborts incomplete multipart uploads and expires old versions")
def _(cfg):
    lifecycle_cleans_up(cfg, "media")


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


def targets(cfg, behaviour):
    """(origin id with cross_region_replication on, origin id with it off) of a behaviour: the same
    id twice, unless target_origin_id is a local that picks by var.cross_region_replication."""
    t = behaviour.get("target_origin_id", "")
    m = re.fullmatch(r"\$\{local\.([A-Za-z0-9_]+)\}", t)
    switch = m and re.fullmatch(r'\$\{var\.cross_region_replication \? "([^"]+)" : "([^"]+)"\}', str(cfg.locals.get(m.group(1), "")))
    return (switch.group(1), switch.group(2)) if switch else (t, t)


def origin_groups(cfg):
    d = distribution(cfg)
    return {g.get("origin_id"): g for g in blocks(d, "origin_group") + dynamic_blocks(d, "origin_group")}


def media_ids(cfg):
    """Origin ids serving the media bucket: its origin and the origin groups it is the primary of."""
    primary = media_origin_id(cfg)
    return {primary} | {gid for gid, g in origin_groups(cfg).items() if [m.get("origin_id") for m in blocks(g, "member")][:1] == [primary]}


def serves_media(cfg, behaviour):
    return any(t in media_ids(cfg) for t in targets(cfg, behaviour))


def expect_oac(cfg, origin):
    """The origin signs with an S3 Origin Access Control (sigv4, always), no legacy OAI."""
    expect(refers_to(origin.get("origin_access_control_id"), "aws_cloudfront_origin_access_control"), "origin %s has no OAC" % origin.get("origin_id"))
    expect(not origin.get("s3_origin_config"), "origin %s still uses a legacy origin access identity" % origin.get("origin_id"))
    oac = cfg.resources[("aws_cloudfront_origin_access_control", named("aws_cloudfront_origin_access_control", origin["origin_access_control_id"]))]
    expect(oac.get("origin_access_control_origin_type") == "s3", "OAC origin type is not s3")
    expect(oac.get("signing_behavior") == "always" and oac.get("signing_protocol") == "sigv4", "OAC does not always sign with sigv4")


def cache_policy(cfg, behaviour):
    m = re.fullmatch(r"\$\{aws_cloudfront_cache_policy\.([A-Za-z0-9_-]+)\.id\}", behaviour.get("cache_policy_id", ""))
    expect(m, "behaviour %s does not use a cache policy defined here" % behaviour.get("path_pattern"))
    return cfg.resources[("aws_cloudfront_cache_policy", m.group(1))]


@check("cloudfront: the media bucket is reached through Origin Access Control (sigv4, always)")
def _(cfg):
    d = distribution(cfg)
    origin_id = media_origin_id(cfg)
    expect_oac(cfg, [o for o in blocks(d, "origin") if o["origin_id"] == origin_id][0])


@check("cloudfront: *.m3u8 goes to the bucket with max TTL <= 1 s")
def _(cfg):
    for b in behaviours(cfg, ".m3u8"):
        expect(set(targets(cfg, b)) <= media_ids(cfg), "*.m3u8 does not go to the media bucket (or its failover group)")
        policy = cache_policy(cfg, b)
        for key in ("max_ttl", "default_ttl"):
            v = as_number(policy.get(key))
            expect(v is not None and v <= 1, "playlist %s is %r (want <= 1)" % (key, policy.get(key)))


@check("cloudfront: *.ts and *.m4s go to the bucket with a long TTL (>= 1 day)")
def _(cfg):
    for suffix in (".ts", ".m4s"):
        for b in behaviours(cfg, suffix):
            expect(set(targets(cfg, b)) <= media_ids(cfg), "*%s does not go to the media bucket (or its failover group)" % suffix)
            policy = cache_policy(cfg, b)
            for key in ("default_ttl", "max_ttl"):
                v = as_number(policy.get(key))
                expect(v is not None and v >= 86400, "segment %s is %r (want >= 86400)" % (key, policy.get(key)))


def media_behaviours(cfg):
    """Every cache behaviour (default included) that goes to the media bucket (or its failover group)."""
    d = distribution(cfg)
    return [b for b in blocks(d, "default_cache_behavior") + blocks(d, "ordered_cache_behavior") if serves_media(cfg, b)]


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
    expect(not any(serves_media(cfg, b) for b in blocks(d, "default_cache_behavior")), "the default behaviour serves the media bucket")
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


def database_subnets(cfg, body):
    """The subnet ids a database must use: the database tier of its own region."""
    if body.get("provider") is None:
        return "${aws_subnet.database[*].id}"
    expect(body.get("provider") == replica_provider(cfg), "unexpected provider %r" % body.get("provider"))
    return "${aws_subnet.replica_database[*].id}"


def group_of(cfg, rtype, body, attr):
    """The rtype resource that body's attr (${rtype.X.name} or ${rtype.X[0].name}) names, in body's region."""
    m = re.fullmatch(r"\$\{%s\.([A-Za-z0-9_-]+)(?:\[0\])?\.name\}" % rtype, body.get(attr, ""))
    expect(m, "%s is not an %s defined here" % (attr, rtype))
    group = cfg.resources[(rtype, m.group(1))]
    expect(group.get("provider") == body.get("provider"), "%s.%s is in another region" % (rtype, m.group(1)))
    return group


@check("rds: MariaDB is not publicly accessible, encrypted, backed up, in the database subnets")
def _(cfg):
    dbs = cfg.of_type("aws_db_instance")
    expect(dbs, "no aws_db_instance")
    for name, db in dbs.items():
        # a read replica takes its engine from the source
        expect(db.get("engine") == "mariadb" or db.get("replicate_source_db"), "%s engine is %r" % (name, db.get("engine")))
        expect(db.get("publicly_accessible") is False, "%s: publicly_accessible is not false" % name)
        expect(db.get("storage_encrypted") is True, "%s: storage_encrypted is not true" % name)
        expect(db.get("backup_retention_period") not in (None, 0, "0"), "%s: no backups" % name)
        expect(db.get("multi_az") == "${var.db_multi_az}", "%s: multi_az is not var.db_multi_az" % name)
        sg = group_of(cfg, "aws_db_subnet_group", db, "db_subnet_group_name")
        expect(sg.get("subnet_ids") == database_subnets(cfg, db), "%s: not in its region's database subnets" % name)


@check("docdb: DocumentDB is encrypted, TLS-only, backed up, in the database subnets")
def _(cfg):
    clusters = cfg.of_type("aws_docdb_cluster")
    expect(clusters, "no aws_docdb_cluster")
    for name, c in clusters.items():
        expect(c.get("storage_encrypted") is True, "%s: storage_encrypted is not true" % name)
        expect(c.get("backup_retention_period") not in (None, 0, "0"), "%s: no backups" % name)
        sg = group_of(cfg, "aws_docdb_subnet_group", c, "db_subnet_group_name")
        expect(sg.get("subnet_ids") == database_subnets(cfg, c), "%s: not in its region's database subnets" % name)
        pg = group_of(cfg, "aws_docdb_cluster_parameter_group", c, "db_cluster_parameter_group_name")
        params = {p["name"]: p["value"] for p in blocks(pg, "parameter")}
        expect(params.get("tls") == "enabled", "%s: tls is not enabled" % name)
    for name, inst in cfg.of_type("aws_docdb_cluster_instance").items():
        expect(inst.get("publicly_accessible") in (None, False), "instance %s is publicly accessible" % name)


@check("network: database subnets (both regions) have no route out of the VPC")
def _(cfg):
    tiers = [t for t in ("database", "replica_database") if ("aws_subnet", t) in cfg.resources]
    expect("database" in tiers, "no aws_subnet.database")
    for tier in tiers:
        tables = [name for name in cfg.of_type("aws_route_table")
                  if any(refers_to(a.get("route_table_id"), "aws_route_table", name) and refers_to(a.get("subnet_id"), "aws_subnet", tier)
                         for a in cfg.of_type("aws_route_table_association").values())]
        expect(tables, "the %s subnets have no route table of their own (they would get the VPC's main one)" % tier)
        for name in tables:
            expect(not cfg.resources[("aws_route_table", name)].get("route"), "route table %s of the %s subnets has routes" % (name, tier))
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
    expect(set(svcs) == {"bff", "user-svc", "metadata-svc", "ingest-rtmp", "transcoder-worker"}, "services are %s" % sorted(svcs))
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
    prefixes = {"bff": "CAUDAL_BFF_", "user-svc": "CAUDAL_USER_", "metadata-svc": "CAUDAL_METADATA_", "ingest-rtmp": "CAUDAL_INGEST_",
                "transcoder-worker": "CAUDAL_WORKER_"}
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


def statement_resources(st):
    """Every resource of a statement, quotes removed: ${...} strings or bare references."""
    res = statement_resource(st)
    items = re.findall(r'"[^"]*"|[^\s,\[\]]+', res[1:-1]) if res.startswith("[") else [res]
    return [r.strip('"') for r in items]


def role_grants(cfg, role):
    """{resource: actions} of the one inline policy on aws_iam_role.<role>, every statement a
    plain Allow; no managed policy may be attached."""
    attached = [a for a in cfg.of_type("aws_iam_role_policy_attachment").values() if refers_to(a.get("role"), "aws_iam_role", role)]
    expect(not attached, "managed policies are attached to the %s role" % role)
    policies = [p for p in cfg.of_type("aws_iam_role_policy").values() if refers_to(p.get("role"), "aws_iam_role", role)]
    expect(len(policies) == 1, "expected one inline policy on the %s role, found %d" % (role, len(policies)))
    statements = policy_statements(policies[0]["policy"])
    expect(statements, "the %s policy has no statements" % role)
    granted = {}
    for st in statements:
        expect('"Allow"' in st and "NotAction" not in st and "NotResource" not in st, "a statement of %s is not a plain Allow" % role)
        acts = statement_actions(st)
        expect(acts, "a statement of %s has no Action" % role)
        for r in statement_resources(st):
            granted.setdefault(r, set()).update(acts)
    return granted, statements


def list_prefixes(statements):
    """The s3:prefix values s3:ListBucket is limited to, or None when a listing statement has no
    such condition (or there is none)."""
    listing = [st for st in statements if "s3:ListBucket" in statement_actions(st)]
    out = []
    for st in listing:
        m = re.search(r'(StringLike(?:IfExists)?)\s*=\s*\{\s*"s3:prefix"\s*=\s*(\[[^\]]*\]|"[^"]*")', st)
        if not m:
            return None
        out.extend(re.findall(r'"([^"]+)"', m.group(2)))
    return out if listing else None


def media_objects(prefix_local):
    return "${aws_s3_bucket.media.arn}/${local.%s}/*" % prefix_local


MEDIA_BUCKET = "aws_s3_bucket.media.arn"
MEDIA_OBJECTS = media_objects("media_prefix")
# a deleted video's folders: a broadcast's live/<id>/, an upload's uploads/<id>/ and vod/<id>/
CLEANUP_PREFIXES = ["${local.media_prefix}/*", "${local.vod_prefix}/*", "${local.uploads_prefix}/*"]
INGEST_GRANTS = {
    MEDIA_OBJECTS: {"s3:PutObject", "s3:GetObject", "s3:DeleteObject"},
    media_objects("vod_prefix"): {"s3:DeleteObject"},
    media_objects("uploads_prefix"): {"s3:DeleteObject"},
    MEDIA_BUCKET: {"s3:ListBucket"},
}


@check("iam: ingest task role may only put/get under the media prefix, delete a deleted video's folders (live/, vod/, uploads/) and list the media bucket")
def _(cfg):
    td = cfg.of_type("aws_ecs_task_definition")
    expect(td, "no task definition")
    granted, _statements = role_grants(cfg, "ingest_task")
    expect(granted == INGEST_GRANTS, "the ingest role may %s" % sorted((r, sorted(a)) for r, a in granted.items()))


@check("iam: video deletion: the ingest task role (cleanup worker) may delete the objects of live/, vod/ and uploads/ and lists only those prefixes")
def _(cfg):
    roles = cfg.locals.get("task_roles", {})
    expect(roles.get("ingest-rtmp") == ref("aws_iam_role", "ingest_task", "arn"), "ingest-rtmp does not run with the ingest task role")
    td = cfg.resources.get(("aws_ecs_task_definition", "service"), {})
    expect(td.get("task_role_arn") == "${lookup(local.task_roles, each.key, null)}", "the task definitions do not take their role from local.task_roles")
    granted, statements = role_grants(cfg, "ingest_task")
    for prefix in ("media_prefix", "vod_prefix", "uploads_prefix"):
        expect("s3:DeleteObject" in granted.get(media_objects(prefix), set()), "the cleanup cannot delete under local.%s" % prefix)
    expect(all(r.startswith("${aws_s3_bucket.media.arn}/${local.") for r, a in granted.items() if "s3:DeleteObject" in a),
           "s3:DeleteObject reaches beyond the video folders")
    prefixes = list_prefixes(statements)
    expect(prefixes is not None, "s3:ListBucket is missing or not limited by s3:prefix (the cleanup lists a video's folders)")
    expect(sorted(prefixes) == sorted(CLEANUP_PREFIXES), "s3:prefix is %s" % prefixes)


BFF_GRANTS = {
    media_objects("uploads_prefix"): {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
    MEDIA_BUCKET: {"s3:ListBucket"},
}


@check("iam: bff task role: uploads/ only (originals as multipart writes, tail and state), listing only under uploads/")
def _(cfg):
    expect(cfg.locals.get("task_roles", {}).get("bff") == ref("aws_iam_role", "bff_task", "arn"), "bff does not run with the bff task role")
    granted, statements = role_grants(cfg, "bff_task")
    expect(granted == BFF_GRANTS, "the bff role may %s" % sorted((r, sorted(a)) for r, a in granted.items()))
    expect(list_prefixes(statements) == ["${local.uploads_prefix}/*"], "bff's listings are not limited to uploads/")
    expect(cfg.locals.get("uploads_prefix") == "uploads", "local.uploads_prefix is not bff's fixed uploads/ folder")


MEDIA_KEY_PREFIX = "${aws_s3_bucket.media.arn}/${local.media_prefix}/"
WORKER_GRANTS = {
    media_objects("uploads_prefix"): {"s3:GetObject"},
    media_objects("vod_prefix"): {"s3:PutObject", "s3:GetObject"},
    # artwork jobs of recordings: read the recording, write only its pictures, drop the on-air poster
    MEDIA_OBJECTS: {"s3:GetObject"},
    MEDIA_KEY_PREFIX + "*/poster.jpg": {"s3:PutObject"},
    MEDIA_KEY_PREFIX + "*/storyboard-*.jpg": {"s3:PutObject"},
    MEDIA_KEY_PREFIX + "*/storyboard.vtt": {"s3:PutObject"},
    MEDIA_KEY_PREFIX + "*-live/poster.jpg": {"s3:DeleteObject"},
}


@check("iam: transcode worker role: reads uploads/, writes vod/, and under live/ reads recordings and writes only their pictures")
def _(cfg):
    expect(cfg.locals.get("task_roles", {}).get("transcoder-worker") == ref("aws_iam_role", "worker_task", "arn"),
           "the worker does not run with the worker task role")
    granted, _statements = role_grants(cfg, "worker_task")
    expect(granted == WORKER_GRANTS, "the worker role may %s" % sorted((r, sorted(a)) for r, a in granted.items()))
    expect(cfg.locals.get("vod_prefix") == "vod" and cfg.locals.get("media_prefix") == "live", "the media prefixes are not live/ and vod/")


@check("ecs: transcode worker: `transcoder worker` from the transcoder image, a service in the app subnets without public IP, room for originals, no ingress")
def _(cfg):
    svc = services(cfg)["transcoder-worker"]
    expect(svc.get("image") == "${var.container_images.transcoder}", "the worker runs %r, not the transcoder image" % svc.get("image"))
    expect(svc.get("container_overrides", {}).get("command") == ["worker"], "the worker's command is %r, not [\"worker\"]" % svc.get("container_overrides"))
    td = cfg.resources.get(("aws_ecs_task_definition", "service"), {})
    expect(td.get("for_each") == "${local.services}", "the task definitions are not one per local.services")
    expect(re.search(r"\},\s*each\.value\.container_overrides\)\]\)\}$", td.get("container_definitions", "")),
           "the container definition does not take each service's container_overrides (the worker's command)")
    ecs = cfg.resources.get(("aws_ecs_service", "service"), {})
    expect(ecs.get("for_each") == "${local.services}", "the ECS services are not one per local.services")
    net = blocks(ecs, "network_configuration")[0]
    expect(net.get("assign_public_ip") is False and net.get("subnets") == "${aws_subnet.app[*].id}",
           "the services (the worker's too) are not in the app subnets without public IPs")
    expect(net.get("security_groups") == ["${each.value.security_group}"] and svc.get("security_group") == ref("aws_security_group", "worker", "id"),
           "the worker does not run in its own security group")
    expect(not [r for r in ingress_rules(cfg) if r[1] == ref("aws_security_group", "worker", "id")], "something may connect to the worker")
    size = cfg.variables.get("worker_size", {}).get("default", {})
    expect(as_number(size.get("desired_count")) and as_number(size.get("desired_count")) >= 1, "no worker runs by default")
    expect(re.search(r"desired_count\s*=\s*var\.worker_size\.desired_count", cfg.locals.get("service_sizes", "")),
           "the worker's task count is not var.worker_size.desired_count")
    # an original (bff's uploads.max_bytes: 20 GiB) plus the spool (4 GiB) and the ladder in flight
    expect(svc.get("ephemeral_gib") == "${var.worker_size.ephemeral_gib}" and (as_number(size.get("ephemeral_gib")) or 0) >= 50,
           "the worker has no room for a 20 GiB original (ephemeral_gib %r)" % size.get("ephemeral_gib"))
    env = svc.get("env", {})
    mounted = {"/" + v for v in svc.get("volumes", [])}
    for var in ("CAUDAL_WORKER_WORK_DIR", "CAUDAL_WORKER_TRANSCODE__SPOOL_DIR"):
        expect(env.get(var) in mounted, "%s (%r) is not on the task's ephemeral storage %s" % (var, env.get(var), sorted(mounted)))
    expect(env.get("CAUDAL_WORKER_STORAGE__BACKEND") == "s3" and env.get("CAUDAL_WORKER_STORAGE__BUCKET") == ref("aws_s3_bucket", "media", "id")
           and env.get("CAUDAL_WORKER_STORAGE__REGION") == "${var.region}", "the worker does not use the media bucket")
    expect(not any("ACCESS_KEY" in k for k in env), "the worker has static S3 keys (use the task role)")
    expect(env.get("CAUDAL_WORKER_OUTPUT_PREFIX") == "${local.vod_prefix}", "the worker does not write under local.vod_prefix")
    expect(env.get("CAUDAL_WORKER_METADATA_SVC_URL") == "${local.metadata_svc_url}", "the worker does not find metadata-svc")


def rule_sources(cfg, rtype, name, src):
    """The security groups a rule names: for a for_each over a local map, every value."""
    if src != "${each.value}":
        return [src]
    m = re.fullmatch(r"\$\{local\.([A-Za-z0-9_]+)\}", cfg.resources[(rtype, name)].get("for_each", ""))
    expect(m and isinstance(cfg.locals.get(m.group(1)), dict), "%s: for_each is not a local map" % name)
    return list(cfg.locals[m.group(1)].values())


NATS_CLIENTS = {ref("aws_security_group", g, "id") for g in ("bff", "ingest", "worker")}


@check("security groups: NATS: 4222 only from bff, ingest-rtmp and the worker; 6222 (routes) and 8222 (monitoring) only between the NATS servers")
def _(cfg):
    nats = ref("aws_security_group", "nats", "id")
    expect(("aws_security_group", "nats") in cfg.resources, "no aws_security_group.nats")
    rules = [r for r in ingress_rules(cfg) if r[1] == nats]
    by_port = {}
    for name, _sg, frm, to, proto, cidrs, src in rules:
        expect(not cidrs, "%s admits addresses %s" % (name, cidrs))
        expect(proto == "tcp" and as_number(frm) == as_number(to), "%s is not one tcp port (%s-%s/%s)" % (name, frm, to, proto))
        expect(as_number(frm) in (4222, 6222, 8222), "%s opens port %s" % (name, frm))
        rtype = "aws_vpc_security_group_ingress_rule" if ("aws_vpc_security_group_ingress_rule", name) in cfg.resources else None
        srcs = rule_sources(cfg, rtype, name, src) if rtype else ([src] if isinstance(src, str) else list(src or []))
        by_port.setdefault(int(as_number(frm)), set()).update(srcs)
    expect(by_port.get(4222) == NATS_CLIENTS, "4222 admits %s (want bff, ingest and the worker)" % sorted(by_port.get(4222, [])))
    expect(by_port.get(6222) == {nats}, "6222 admits %s (want the NATS servers only)" % sorted(by_port.get(6222, [])))
    expect(by_port.get(8222, {nats}) == {nats}, "8222 admits %s (want the NATS servers only)" % sorted(by_port.get(8222, [])))


def nats_task(cfg):
    td = cfg.resources.get(("aws_ecs_task_definition", "nats"))
    expect(td is not None, "no aws_ecs_task_definition.nats")
    return td


@check("nats: three JetStream servers, each its own ECS service (one task, old stopped first), name, Cloud Map name and routes to all")
def _(cfg):
    nodes = re.findall(r'"([^"]+)"', cfg.locals.get("nats_nodes", ""))
    expect(len(nodes) == 3 and len(set(nodes)) == 3, "the NATS servers are %s (want three)" % nodes)
    expect(cfg.locals.get("nats_nodes", "").startswith("${toset(["), "local.nats_nodes is not a set of names")
    svc = cfg.resources.get(("aws_ecs_service", "nats"))
    expect(svc is not None, "no aws_ecs_service.nats")
    expect(svc.get("for_each") == "${local.nats_nodes}" and as_number(svc.get("desired_count")) == 1, "not one single-task service per NATS server")
    expect(svc.get("task_definition") == "${aws_ecs_task_definition.nats[each.key].arn}", "a NATS service does not run its own task definition")
    expect((as_number(svc.get("deployment_maximum_percent")) or 200) <= 100,
           "a deployment may start a second server on the same store directory (deployment_maximum_percent %r)" % svc.get("deployment_maximum_percent"))
    net = blocks(svc, "network_configuration")[0]
    expect(net.get("assign_public_ip") is False and net.get("subnets") == "${aws_subnet.app[*].id}", "the NATS servers are not private")
    expect(net.get("security_groups") == [ref("aws_security_group", "nats", "id")], "the NATS servers are not in the nats security group")
    reg = blocks(svc, "service_registries")
    expect(reg and reg[0].get("registry_arn") == "${aws_service_discovery_service.nats[each.key].arn}", "a NATS server has no Cloud Map name of its own")
    sd = cfg.resources.get(("aws_service_discovery_service", "nats"), {})
    expect(sd.get("for_each") == "${local.nats_nodes}" and sd.get("name") == "${each.key}", "the Cloud Map names are not the server names")
    expect(blocks(sd, "dns_config")[0].get("namespace_id") == "${aws_service_discovery_private_dns_namespace.internal.id}",
           "the NATS names are not in the internal namespace")
    td = nats_task(cfg)
    expect(td.get("for_each") == "${local.nats_nodes}", "not one task definition per server")
    cd = td.get("container_definitions", "")
    expect(re.search(r"\bimage\s*=\s*var\.nats_image\b", cd), "the servers do not run var.nats_image")
    for flag in ('"--name", each.key', '"--jetstream"', '"--cluster_name", "${local.name}-jobs"', '"--cluster", "nats://0.0.0.0:6222"',
                 '"--routes", local.nats_routes', '"--client_advertise", "${each.key}.${local.namespace}:4222"'):
        expect(flag in cd, "the servers do not run with %s" % flag)
    routes = cfg.locals.get("nats_routes", "")
    expect("for n in sort(local.nats_nodes)" in routes and "nats-route://${n}.${local.namespace}:6222" in routes,
           "the routes do not name every server (%r)" % routes)
    image = cfg.variables.get("nats_image", {}).get("default", "")
    expect(re.fullmatch(r"nats:\d+\.\d+\.\d+(-alpine)?|nats@sha256:[0-9a-f]{64}", image), "nats_image default %r is not a pinned nats release" % image)


@check("nats: JetStream storage on encrypted EFS: one access point per server, TLS and IAM on the mount, mount targets in the app subnets, EFS open to NATS only")
def _(cfg):
    td = nats_task(cfg)
    cd = td.get("container_definitions", "")
    m = re.search(r'"--store_dir",\s*"([^"]+)"', cd)
    expect(m, "the servers have no --store_dir")
    mounts = re.findall(r'sourceVolume\s*=\s*"([^"]+)",\s*containerPath\s*=\s*"([^"]+)"', cd)
    on = [v for v, path in mounts if m.group(1) == path or m.group(1).startswith(path.rstrip("/") + "/")]
    expect(on, "the store directory %s is not on a mounted volume" % m.group(1))
    vols = [v for v in blocks(td, "volume") if v.get("name") == on[0]]
    expect(vols, "no volume %s" % on[0])
    efs = blocks(vols[0], "efs_volume_configuration")
    expect(efs, "the JetStream volume is not EFS")
    efs = efs[0]
    expect(efs.get("transit_encryption") == "ENABLED", "the EFS mount is not encrypted in transit")
    auth = blocks(efs, "authorization_config")
    expect(auth and auth[0].get("access_point_id") == "${aws_efs_access_point.nats[each.key].id}",
           "a server does not mount its own access point (servers would share a store directory)")
    expect(auth[0].get("iam") == "ENABLED", "the EFS mount is not authorised with the task role")
    fs_name = named("aws_efs_file_system", efs.get("file_system_id"))
    fs = cfg.resources[("aws_efs_file_system", fs_name)]
    expect(fs.get("encrypted") is True, "the EFS file system is not encrypted")
    named("aws_kms_key", fs.get("kms_key_id"))
    ap = cfg.resources.get(("aws_efs_access_point", "nats"), {})
    expect(ap.get("for_each") == "${local.nats_nodes}" and refers_to(ap.get("file_system_id"), "aws_efs_file_system", fs_name),
           "not one access point per server on the file system")
    expect(blocks(ap, "root_directory") and blocks(ap, "root_directory")[0].get("path") == "/${each.key}" and blocks(ap, "posix_user"),
           "the access points do not pin a directory of their own and a user")
    mts = [mt for mt in cfg.of_type("aws_efs_mount_target").values() if refers_to(mt.get("file_system_id"), "aws_efs_file_system", fs_name)]
    expect(mts, "the file system has no mount target")
    for mt in mts:
        expect(mt.get("subnet_id") == "${aws_subnet.app[count.index].id}" and mt.get("count") == "${length(aws_subnet.app)}",
               "the mount targets are not one per app subnet")
        expect(mt.get("security_groups") == [ref("aws_security_group", "efs", "id")], "a mount target is not in the efs security group")
    rules = [r for r in ingress_rules(cfg) if r[1] == ref("aws_security_group", "efs", "id")]
    expect(rules, "nothing may reach the EFS mount targets")
    for name, _sg, frm, to, proto, cidrs, src in rules:
        expect(not cidrs and src == ref("aws_security_group", "nats", "id") and as_number(frm) == 2049 and as_number(to) == 2049 and proto == "tcp",
               "%s admits more than the NATS servers on 2049" % name)
    pol = [p for p in cfg.of_type("aws_efs_file_system_policy").values() if refers_to(p.get("file_system_id"), "aws_efs_file_system", fs_name)]
    expect(pol and '"aws:SecureTransport" = "false"' in pol[0].get("policy", "") and "aws_iam_role.nats_task.arn" in pol[0].get("policy", ""),
           "the file system policy does not deny plain NFS and admit the NATS task role")
    expect(td.get("task_role_arn") == ref("aws_iam_role", "nats_task", "arn"), "the servers do not run with the NATS task role")


def nats_servers(cfg):
    """The server URLs local.nats_url names: written out, comma-separated, or made by
    join(",", [for n in sort(local.nats_nodes) : "<URL of ${n}>"]) (expanded here)."""
    url = cfg.locals.get("nats_url", "")
    nodes = re.findall(r'"([^"]+)"', cfg.locals.get("nats_nodes", ""))
    m = re.fullmatch(r'\$\{join\(",", \[for (\w+) in sort\(local\.nats_nodes\) : "([^"]*)"\]\)\}', url)
    if m:
        return [m.group(2).replace("${%s}" % m.group(1), n) for n in sorted(nodes)]
    expect(not re.search(r"\$\{(?!local\.namespace\})", url), "local.nats_url %r is neither a list of URLs nor a join over local.nats_nodes" % url)
    return [u.strip() for u in url.split(",") if u.strip()]


def jobs_replicas(cfg, value):
    """A JOBS__REPLICAS value as a number: "3", or local.X / tostring(local.X) of a number."""
    m = re.fullmatch(r"\$\{tostring\(local\.(\w+)\)\}|\$\{local\.(\w+)\}", value or "")
    return as_number(cfg.locals.get(m.group(1) or m.group(2)) if m else value)


JOBS_SETTINGS = (("bff", "CAUDAL_BFF_UPLOADS__JOBS__"), ("ingest-rtmp", "CAUDAL_INGEST_JOBS__"), ("transcoder-worker", "CAUDAL_WORKER_JOBS__"))


@check("ecs: job queue wiring: bff (uploads into the media bucket), ingest-rtmp and the worker name all three NATS servers (Cloud Map names, 4222) and keep a stream replica on each")
def _(cfg):
    nodes = re.findall(r'"([^"]+)"', cfg.locals.get("nats_nodes", ""))
    expect(len(nodes) == 3 and len(set(nodes)) == 3, "the NATS servers are %s (want three)" % nodes)
    # the client connects to any server of the list that answers: each must be one, none missing
    hosts = []
    for url in nats_servers(cfg):
        m = re.fullmatch(r"nats://([a-z0-9-]+)\.\$\{local\.namespace\}:4222", url)
        expect(m, "local.nats_url names %r, not nats://<a NATS server>.<namespace>:4222" % url)
        hosts.append(m.group(1))
    expect(sorted(hosts) == sorted(nodes), "local.nats_url names %s (want each NATS server of %s once)" % (hosts, sorted(nodes)))
    svcs = services(cfg)
    replicas = {}
    for svc, prefix in JOBS_SETTINGS:
        env = svcs[svc]["env"]
        expect(env.get(prefix + "URL") == "${local.nats_url}", "%s: %sURL is not local.nats_url" % (svc, prefix))
        expect(prefix + "REPLICAS" in env, "%s: %sREPLICAS is not set (the default is 1 replica)" % (svc, prefix))
        replicas[svc] = jobs_replicas(cfg, env[prefix + "REPLICAS"])
    # each creates or updates the streams with its own configuration: they must agree
    expect(len(set(replicas.values())) == 1, "the services ask for different stream replicas: %s" % replicas)
    expect(replicas["bff"] == len(nodes), "the streams' replica count is %r (want %d, one on each NATS server)" % (replicas["bff"], len(nodes)))
    env = svcs["bff"]["env"]
    expect(env.get("CAUDAL_BFF_UPLOADS__STORAGE__BACKEND") == "s3", "bff stores uploads with backend %r" % env.get("CAUDAL_BFF_UPLOADS__STORAGE__BACKEND"))
    expect(env.get("CAUDAL_BFF_UPLOADS__STORAGE__BUCKET") == ref("aws_s3_bucket", "media", "id")
           and env.get("CAUDAL_BFF_UPLOADS__STORAGE__REGION") == "${var.region}", "bff does not store uploads in the media bucket")
    expect(not any("ACCESS_KEY" in k for k in env), "bff has static S3 keys (use the task role)")


@check("s3: uploaded originals (uploads/) are never served: both media buckets deny CloudFront that prefix, no behaviour names it")
def _(cfg):
    for bucket in ("media", "media_replica"):
        pol = for_bucket(cfg, "aws_s3_bucket_policy", bucket)
        expect(pol, "%s has no bucket policy" % bucket)
        denies = [st for st in policy_statements(pol[0]["policy"])
                  if '"Deny"' in st and '"cloudfront.amazonaws.com"' in st and statement_actions(st) & {"s3:GetObject", "s3:*"}
                  and any(r.endswith("/${local.uploads_prefix}/*") and re.search(r"aws_s3_bucket\.%s\b" % bucket, r) for r in statement_resources(st))]
        expect(denies, "%s does not deny CloudFront the uploads/ prefix" % bucket)
    d = distribution(cfg)
    for b in blocks(d, "ordered_cache_behavior"):
        p = cfg.resolve(b.get("path_pattern", ""))
        expect(not p.lstrip("/").startswith(cfg.resolve("${local.uploads_prefix}")), "behaviour %s serves uploads/" % p)


@check("logs: every CloudWatch log group has a retention and a KMS key")
def _(cfg):
    groups = cfg.of_type("aws_cloudwatch_log_group")
    expect(groups, "no log groups")
    for name, g in groups.items():
        expect(g.get("retention_in_days") is not None, "%s has no retention" % name)
        expect(g.get("kms_key_id"), "%s is not encrypted with a KMS key" % name)


# --- second region (cross_region_replication) -----------------------------------------------


@check("s3: replication: the media bucket replicates (delete markers too) to a versioned replica bucket in the replica region, on by default")
def _(cfg):
    expect(cfg.variables.get("cross_region_replication", {}).get("default") is True, "var.cross_region_replication does not default to true")
    prov = replica_provider(cfg)
    replica = cfg.resources.get(("aws_s3_bucket", "media_replica"))
    expect(replica is not None, "no aws_s3_bucket.media_replica")
    expect(replica.get("provider") == prov, "the replica bucket is not in the replica region (provider %r)" % replica.get("provider"))
    confs = for_bucket(cfg, "aws_s3_bucket_replication_configuration", "media")
    expect(len(confs) == 1, "expected one replication configuration on the media bucket, found %d" % len(confs))
    conf = confs[0]
    expect(conf.get("provider") is None, "the replication configuration is not in the media bucket's region")
    named("aws_iam_role", conf.get("role"))
    rules = blocks(conf, "rule")
    expect(rules, "the replication configuration has no rule")
    kms = sse_algorithm(cfg, "media").startswith("aws:kms")
    for r in rules:
        rid = r.get("id", "(no id)")
        expect(r.get("status") == "Enabled", "rule %s is not Enabled" % rid)
        f = blocks(r, "filter")
        # a rule without filter is V1, which cannot replicate delete markers
        expect(f, "rule %s has no filter" % rid)
        expect(not f[0].get("tag") and not f[0].get("and") and cfg.resolve(f[0].get("prefix", "")) in ("", cfg.resolve("${local.media_prefix}/")),
               "rule %s does not take every media object (filter %r)" % (rid, f[0]))
        dm = blocks(r, "delete_marker_replication")
        expect(dm and dm[0].get("status") == "Enabled", "rule %s does not replicate delete markers (deleted videos would stay in the replica)" % rid)
        dest = blocks(r, "destination")[0]
        expect(re.fullmatch(r"\$\{aws_s3_bucket\.media_replica(\[0\])?\.arn\}", dest.get("bucket", "")),
               "rule %s replicates to %r, not the replica bucket" % (rid, dest.get("bucket")))
        if kms:
            ssc = blocks(r, "source_selection_criteria")
            expect(ssc and blocks(ssc[0], "sse_kms_encrypted_objects") and blocks(ssc[0], "sse_kms_encrypted_objects")[0].get("status") == "Enabled",
                   "the media bucket uses SSE-KMS but rule %s skips KMS-encrypted objects" % rid)
            enc = blocks(dest, "encryption_configuration")
            key = enc and cfg.resources.get(("aws_kms_key", named("aws_kms_key", enc[0].get("replica_kms_key_id"))))
            expect(key and key.get("provider") == prov, "rule %s has no replica key in the replica region" % rid)
    for bucket in ("media", "media_replica"):
        expect(versioned(cfg, bucket), "%s is not versioned (replication needs versioning on both buckets)" % bucket)
        expect(ref("aws_s3_bucket_versioning", bucket) in conf.get("depends_on", []),
               "the replication configuration does not wait for %s's versioning" % bucket)


@check("s3: replica bucket: in the replica region, encrypted, blocks public access, owner-enforced, TLS-only, readable only by this distribution, old versions expire")
def _(cfg):
    prov = replica_provider(cfg)
    expect(("aws_s3_bucket", "media_replica") in cfg.resources, "no aws_s3_bucket.media_replica")
    for rtype in ("aws_s3_bucket_ownership_controls", "aws_s3_bucket_public_access_block", "aws_s3_bucket_versioning",
                  "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_lifecycle_configuration", "aws_s3_bucket_policy"):
        found = for_bucket(cfg, rtype, "media_replica")
        expect(len(found) == 1, "the replica bucket has %d %s" % (len(found), rtype))
        expect(found[0].get("provider") == prov, "the replica bucket's %s is not in the replica region" % rtype)
    algo = sse_algorithm(cfg, "media_replica")
    expect(algo in ("AES256", "aws:kms", "aws:kms:dsse"), "the replica's sse_algorithm is %r" % algo)
    pab = for_bucket(cfg, "aws_s3_bucket_public_access_block", "media_replica")[0]
    for key in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        expect(pab.get(key) is True, "the replica bucket: %s is not true" % key)
    private_to_cloudfront(cfg, "media_replica")
    lifecycle_cleans_up(cfg, "media_replica")


REPLICATION_GRANTS = {
    "aws_s3_bucket.media.arn": {"s3:GetReplicationConfiguration", "s3:ListBucket"},
    '"${aws_s3_bucket.media.arn}/*"': {"s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"},
    '"${aws_s3_bucket.media_replica[0].arn}/*"': {"s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"},
}


@check("iam: replication role: S3 (this account) may only read the media bucket's versions for replication and replicate into the replica bucket")
def _(cfg):
    confs = for_bucket(cfg, "aws_s3_bucket_replication_configuration", "media")
    expect(confs, "no replication configuration on the media bucket")
    role_name = named("aws_iam_role", confs[0].get("role"))
    trust = cfg.resources[("aws_iam_role", role_name)].get("assume_role_policy", "")
    expect('"s3.amazonaws.com"' in trust and '"aws:SourceAccount"' in trust, "the role is not for S3 of this account only")
    attached = [a for a in cfg.of_type("aws_iam_role_policy_attachment").values() if refers_to(a.get("role"), "aws_iam_role", role_name)]
    expect(not attached, "managed policies are attached to the replication role")
    policies = [p for p in cfg.of_type("aws_iam_role_policy").values() if refers_to(p.get("role"), "aws_iam_role", role_name)]
    expect(len(policies) == 1, "expected one inline policy on the replication role, found %d" % len(policies))
    granted = {}
    for st in policy_statements(policies[0]["policy"]):
        expect('"Allow"' in st and "NotAction" not in st and "NotResource" not in st, "a statement is not a plain Allow")
        granted.setdefault(statement_resource(st), set()).update(statement_actions(st))
    expect(granted == REPLICATION_GRANTS, "the role may %s" % sorted((r, sorted(a)) for r, a in granted.items()))


FAILOVER_CODES = [500, 502, 503, 504]


@check("cloudfront: media failover: with replication on, every S3 behaviour goes to an origin group of the media bucket then its replica (OAC), failing over on 500/502/503/504 only, GET/HEAD/OPTIONS only")
def _(cfg):
    d = distribution(cfg)
    primary = media_origin_id(cfg)
    replicas = [o for o in blocks(d, "origin") + dynamic_blocks(d, "origin") if refers_to(o.get("domain_name"), "aws_s3_bucket", "media_replica")]
    expect(len(replicas) == 1, "no single origin on aws_s3_bucket.media_replica")
    replica = replicas[0]
    expect("var.cross_region_replication" in replica.get("for_each", ""), "the replica origin is not there exactly when the bucket replicates")
    expect_oac(cfg, replica)
    groups = origin_groups(cfg)
    s3 = [b for b in blocks(d, "default_cache_behavior") + blocks(d, "ordered_cache_behavior") if targets(cfg, b)[1] == primary]
    patterns = {cfg.resolve(b.get("path_pattern", "")) for b in s3}
    expect(set(TOKEN_PATTERNS) <= patterns and any(POSTER_PATTERN.fullmatch(p) for p in patterns),
           "the media behaviours (/p/..., posters) do not all go to the media bucket without replication: %s" % sorted(patterns))
    for b in s3:
        where = b.get("path_pattern", "(default)")
        group = groups.get(targets(cfg, b)[0])
        expect(group, "%s does not go to an origin group with replication on" % where)
        members = [m.get("origin_id") for m in blocks(group, "member")]
        expect(members == [primary, replica["origin_id"]], "%s: the group's members are %s (want the media bucket, then its replica)" % (where, members))
        fc = blocks(group, "failover_criteria")
        codes = sorted(as_number(c) for c in (blocks(fc[0], "status_codes") if fc else []))
        # not 403/404: the media bucket is ahead of the replica, which could still hold deleted media
        expect(codes == FAILOVER_CODES, "%s fails over on %s (want %s)" % (where, codes, FAILOVER_CODES))
        expect(set(b.get("allowed_methods", [])) <= {"GET", "HEAD", "OPTIONS"}, "%s allows %s (an origin group fails over only GET, HEAD and OPTIONS)" % (where, b.get("allowed_methods")))


@check("rds: cross-region read replica: MariaDB replicates (by ARN) to an instance in the replica region, encrypted with that region's key, in its database subnets")
def _(cfg):
    prov = replica_provider(cfg)
    replicas = {n: db for n, db in cfg.of_type("aws_db_instance").items() if db.get("replicate_source_db")}
    expect(len(replicas) == 1, "expected one read replica (replicate_source_db), found %d" % len(replicas))
    name, db = next(iter(replicas.items()))
    expect(db.get("provider") == prov, "%s is not in the replica region (provider %r)" % (name, db.get("provider")))
    expect(db["replicate_source_db"] == ref("aws_db_instance", "user", "arn"),
           "%s replicates %r, not the primary's ARN (a cross-region replica names its source by ARN)" % (name, db["replicate_source_db"]))
    expect(db.get("storage_encrypted") is True, "%s: storage_encrypted is not true" % name)
    key = cfg.resources[("aws_kms_key", named("aws_kms_key", db.get("kms_key_id")))]
    expect(key.get("provider") == prov, "%s is not encrypted with a key of the replica region" % name)
    expect(not db.get("username") and not db.get("password"), "%s sets a user or password (a replica takes them from its source)" % name)
    sg = group_of(cfg, "aws_db_subnet_group", db, "db_subnet_group_name")
    expect(sg.get("subnet_ids") == "${aws_subnet.replica_database[*].id}", "%s is not in the replica region's database subnets" % name)
    expect(cfg.resources[("aws_subnet", "replica_database")].get("provider") == prov, "the replica database subnets are not in the replica region")


@check("docdb: global cluster: the metadata cluster is the primary of a global cluster whose secondary (encrypted with the replica region's key, with an instance) is in the replica region")
def _(cfg):
    prov = replica_provider(cfg)
    globals_ = cfg.of_type("aws_docdb_global_cluster")
    expect(len(globals_) == 1, "expected one aws_docdb_global_cluster, found %d" % len(globals_))
    gname, gc = next(iter(globals_.items()))
    expect(gc.get("provider") is None, "the global cluster is not made in the primary's region")
    expect(gc.get("source_db_cluster_identifier") == ref("aws_docdb_cluster", "metadata", "arn"),
           "the global cluster is made from %r, not aws_docdb_cluster.metadata" % gc.get("source_db_cluster_identifier"))
    expect(gc.get("storage_encrypted") is True, "the global cluster is not encrypted")
    primary = cfg.resources[("aws_docdb_cluster", "metadata")]
    ignored = [i for lc in blocks(primary, "lifecycle") for i in lc.get("ignore_changes", [])]
    expect("${global_cluster_identifier}" in ignored or "global_cluster_identifier" in ignored,
           "the primary cluster does not ignore global_cluster_identifier (every plan would take it out of the global cluster)")
    secondaries = {n: c for n, c in cfg.of_type("aws_docdb_cluster").items() if refers_to(c.get("global_cluster_identifier"), "aws_docdb_global_cluster", gname)}
    expect(len(secondaries) == 1 and "metadata" not in secondaries, "the global cluster's secondaries are %s" % sorted(secondaries))
    sname, sec = next(iter(secondaries.items()))
    expect(sec.get("provider") == prov, "%s is not in the replica region (provider %r)" % (sname, sec.get("provider")))
    expect(sec.get("storage_encrypted") is True, "%s: storage_encrypted is not true" % sname)
    key = cfg.resources[("aws_kms_key", named("aws_kms_key", sec.get("kms_key_id")))]
    expect(key.get("provider") == prov, "%s is not encrypted with a key of the replica region" % sname)
    expect(not sec.get("master_username") and not sec.get("master_password"), "%s sets a master user (a secondary takes it from the global cluster)" % sname)
    instances = [i for i in cfg.of_type("aws_docdb_cluster_instance").values() if refers_to(i.get("cluster_identifier"), "aws_docdb_cluster", sname)]
    expect(instances and all(i.get("provider") == prov for i in instances), "%s has no instance in the replica region" % sname)
    for inst in list(cfg.of_type("aws_docdb_cluster_instance").values()):
        cls = inst.get("instance_class", "")
        cls = cfg.variables.get("docdb_instance_class", {}).get("default", "") if cls == "${var.docdb_instance_class}" else cls
        expect(re.match(r"db\.r\d", cls), "instance class %r: a global cluster takes only r-family classes (db.r5, db.r6g, ...)" % cls)


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


def _service(files, service):
    block = [b for b in files["ecs.tf"]["locals"] if "services" in b][0]
    return block["services"][service]


def _service_env(files, service):
    block = [b for b in files["ecs.tf"]["locals"] if "services" in b][0]
    return block["services"][service]["env"]


def _service_secrets(files, service):
    block = [b for b in files["ecs.tf"]["locals"] if "services" in b][0]
    return block["services"][service]["secrets"]


def _nats_locals(files):
    return [b for b in files["main.tf"]["locals"] if "nats_url" in b][0]


def _ordered(files):
    return res(files, "cdn.tf", "aws_cloudfront_distribution", "main")["ordered_cache_behavior"]


def _behaviour(files, pattern):
    return [b for b in _ordered(files) if b["path_pattern"] == pattern][0]


def _dynamic(files, key):
    return res(files, "cdn.tf", "aws_cloudfront_distribution", "main")["dynamic"][key][0]["content"][0]


def _replication_rule(files):
    return res(files, "storage.tf", "aws_s3_bucket_replication_configuration", "media")["rule"][0]


def _policy_replace(files, fname, name, old, new):
    policy = res(files, fname, "aws_iam_role_policy" if fname == "iam.tf" else "aws_s3_bucket_policy", name)
    if old not in policy["policy"]:
        raise KeyError("%r is not in the policy" % old)
    policy["policy"] = policy["policy"].replace(old, new)


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
    ("rds: MariaDB", "a public MariaDB",
     lambda f: res(f, "database.tf", "aws_db_instance", "user").update(publicly_accessible=True)),
    ("rds: MariaDB", "an unencrypted MariaDB",
     lambda f: res(f, "database.tf", "aws_db_instance", "user").update(storage_encrypted=False)),
    ("docdb: DocumentDB", "an unencrypted DocumentDB",
     lambda f: res(f, "database.tf", "aws_docdb_cluster", "metadata").update(storage_encrypted=False)),
    ("docdb: DocumentDB", "DocumentDB without TLS",
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
    ("iam: ingest", "deletes outside the video folders",
     lambda f: _ingest_policy_replace(f, '"${aws_s3_bucket.media.arn}/${local.vod_prefix}/*",', '"${aws_s3_bucket.media.arn}/*",')),
    ("iam: ingest", "ingest writing uploaded originals",
     lambda f: _ingest_policy_replace(f, 'Action   = ["s3:PutObject", "s3:GetObject"]\n        Resource = "${aws_s3_bucket.media.arn}/${local.media_prefix}/*"',
                                      'Action   = ["s3:PutObject", "s3:GetObject"]\n        Resource = "${aws_s3_bucket.media.arn}/${local.uploads_prefix}/*"')),
    ("iam: video deletion", "an ingest role that cannot delete",
     lambda f: _ingest_policy_replace(f, '"s3:DeleteObject"', '"s3:GetObject"')),
    ("iam: video deletion", "a cleanup that cannot delete an upload's original",
     lambda f: _ingest_policy_replace(f, '          "${aws_s3_bucket.media.arn}/${local.uploads_prefix}/*",\n', '')),
    ("iam: video deletion", "listing the whole bucket",
     lambda f: _ingest_policy_replace(f, '"s3:prefix" = ["${local.media_prefix}/*", ', '"s3:prefix" = ["*", ')),
    ("iam: video deletion", "ingest-rtmp without its task role",
     lambda f: [b for b in f["ecs.tf"]["locals"] if "task_roles" in b][0]["task_roles"].pop("ingest-rtmp")),
    # uploads: bff, the transcode worker, the job queue
    ("iam: bff task role", "bff writing anywhere in the media bucket",
     lambda f: _policy_replace(f, "iam.tf", "bff_uploads", '"${aws_s3_bucket.media.arn}/${local.uploads_prefix}/*"', '"${aws_s3_bucket.media.arn}/*"')),
    ("iam: bff task role", "bff listing the whole bucket",
     lambda f: _policy_replace(f, "iam.tf", "bff_uploads", '"s3:prefix" = ["${local.uploads_prefix}/*"]', '"s3:prefix" = ["*"]')),
    ("iam: transcode worker role", "s3:* for the worker",
     lambda f: _policy_replace(f, "iam.tf", "worker_media", '["s3:PutObject", "s3:GetObject"]', '["s3:*"]')),
    ("iam: transcode worker role", "a worker that may overwrite live segments",
     lambda f: _policy_replace(f, "iam.tf", "worker_media", '"${aws_s3_bucket.media.arn}/${local.media_prefix}/*/poster.jpg"',
                               '"${aws_s3_bucket.media.arn}/${local.media_prefix}/*"')),
    ("iam: transcode worker role", "a worker that may delete originals",
     lambda f: _policy_replace(f, "iam.tf", "worker_media", 'Action   = "s3:GetObject"\n        Resource = "${aws_s3_bucket.media.arn}/${local.uploads_prefix}/*"',
                               'Action   = ["s3:GetObject", "s3:DeleteObject"]\n        Resource = "${aws_s3_bucket.media.arn}/${local.uploads_prefix}/*"')),
    ("iam: transcode worker role", "a worker that may list the bucket",
     lambda f: _policy_replace(f, "iam.tf", "worker_media", 'Sid      = "ReadOriginals"\n        Effect   = "Allow"\n        Action   = "s3:GetObject"',
                               'Sid      = "ReadOriginals"\n        Effect   = "Allow"\n        Action   = ["s3:GetObject", "s3:ListBucket"]')),
    ("ecs: transcode worker", "the worker running ingest-rtmp's image",
     lambda f: _service(f, "transcoder-worker").update(image="${var.container_images.ingest_rtmp}")),
    ("ecs: transcode worker", "the worker without its command",
     lambda f: _service(f, "transcoder-worker").update(container_overrides={})),
    ("ecs: transcode worker", "a container definition ignoring container_overrides",
     lambda f: res(f, "ecs.tf", "aws_ecs_task_definition", "service").update(
         container_definitions=res(f, "ecs.tf", "aws_ecs_task_definition", "service")["container_definitions"].replace(", each.value.container_overrides)", ", {})"))),
    ("ecs: transcode worker", "services with public IPs",
     lambda f: res(f, "ecs.tf", "aws_ecs_service", "service")["network_configuration"][0].update(assign_public_ip=True)),
    ("ecs: transcode worker", "20 GiB of ephemeral storage",
     lambda f: f["variables.tf"]["variable"]["worker_size"][0]["default"].update(ephemeral_gib=20)),
    ("ecs: transcode worker", "the work dir on the read-only root file system",
     lambda f: _service_env(f, "transcoder-worker").update(CAUDAL_WORKER_WORK_DIR="/var/tmp/work")),
    ("ecs: transcode worker", "an ingress rule to the worker",
     lambda f: f["security_groups.tf"]["resource"]["aws_vpc_security_group_ingress_rule"].update(worker_from_alb=[{
         "security_group_id": "${aws_security_group.worker.id}", "ip_protocol": "tcp", "from_port": 9087, "to_port": 9087,
         "referenced_security_group_id": "${aws_security_group.alb.id}", "description": "x"}])),
    ("ecs: job queue wiring", "bff without the job queue (uploads off)",
     lambda f: _service_env(f, "bff").pop("CAUDAL_BFF_UPLOADS__JOBS__URL")),
    ("ecs: job queue wiring", "ingest-rtmp without the job queue (no pictures for recordings)",
     lambda f: _service_env(f, "ingest-rtmp").pop("CAUDAL_INGEST_JOBS__URL")),
    ("ecs: job queue wiring", "a URL naming nats-1 only",
     lambda f: _nats_locals(f).update(nats_url="nats://nats-1.${local.namespace}:4222")),
    ("ecs: job queue wiring", "a URL naming an unknown host",
     lambda f: _nats_locals(f).update(
         nats_url="nats://nats-1.${local.namespace}:4222,nats://nats-2.${local.namespace}:4222,nats://nats-4.${local.namespace}:4222")),
    ("ecs: job queue wiring", "URLs on the routes' port (6222)",
     lambda f: _nats_locals(f).update(nats_url=_nats_locals(f)["nats_url"].replace(":4222", ":6222"))),
    ("ecs: job queue wiring", "one stream replica on ingest-rtmp",
     lambda f: _service_env(f, "ingest-rtmp").update(CAUDAL_INGEST_JOBS__REPLICAS="1")),
    ("ecs: job queue wiring", "stream replicas differing between services (5 on the worker)",
     lambda f: _service_env(f, "transcoder-worker").update(CAUDAL_WORKER_JOBS__REPLICAS="5")),
    ("ecs: job queue wiring", "the worker without JOBS__REPLICAS (1 replica by default)",
     lambda f: _service_env(f, "transcoder-worker").pop("CAUDAL_WORKER_JOBS__REPLICAS")),
    ("ecs: job queue wiring", "one stream replica everywhere",
     lambda f: _nats_locals(f).update(nats_replicas=1)),
    ("ecs: job queue wiring", "bff keeping uploads on its task's disk",
     lambda f: _service_env(f, "bff").update(CAUDAL_BFF_UPLOADS__STORAGE__BACKEND="local")),
    ("s3: uploaded originals", "CloudFront allowed to read originals",
     lambda f: _policy_replace(f, "storage.tf", "media", 'Sid       = "OriginalsAreNeverServed"\n        Effect    = "Deny"',
                               'Sid       = "OriginalsAreNeverServed"\n        Effect    = "Allow"')),
    ("s3: uploaded originals", "originals readable from the replica after a failover",
     lambda f: _policy_replace(f, "storage.tf", "media_replica", '"${aws_s3_bucket.media_replica[0].arn}/${local.uploads_prefix}/*"',
                               '"${aws_s3_bucket.media_replica[0].arn}/${local.vod_prefix}/*"')),
    ("s3: uploaded originals", "an /uploads/* behaviour",
     lambda f: _ordered(f).append(dict(_behaviour(f, "/p/*"), path_pattern="/${local.uploads_prefix}/*"))),
    ("security groups: NATS", "4222 open to user-svc",
     lambda f: f["security_groups.tf"]["locals"][0]["nats_clients"].update({"user-svc": "${aws_security_group.user_svc.id}"})),
    ("security groups: NATS", "4222 open to the VPC",
     lambda f: f["security_groups.tf"]["resource"]["aws_vpc_security_group_ingress_rule"].update(nats_from_vpc=[{
         "security_group_id": "${aws_security_group.nats.id}", "ip_protocol": "tcp", "from_port": 4222, "to_port": 4222,
         "cidr_ipv4": "${var.vpc_cidr}", "description": "x"}])),
    ("security groups: NATS", "routes (6222) open to bff",
     lambda f: res(f, "security_groups.tf", "aws_vpc_security_group_ingress_rule", "nats_routes").update(referenced_security_group_id="${aws_security_group.bff.id}")),
    ("security groups: NATS", "the clients' rule widened to 4222-8222",
     lambda f: res(f, "security_groups.tf", "aws_vpc_security_group_ingress_rule", "nats_from_clients").update(to_port=8222)),
    ("security groups: NATS", "monitoring (8222) open to the worker",
     lambda f: res(f, "security_groups.tf", "aws_vpc_security_group_ingress_rule", "nats_monitoring").update(referenced_security_group_id="${aws_security_group.worker.id}")),
    ("nats: three", "two NATS servers",
     lambda f: f["queue.tf"]["locals"][0].update(nats_nodes='${toset(["nats-1", "nats-2"])}')),
    ("nats: three", "one service of three interchangeable tasks",
     lambda f: res(f, "queue.tf", "aws_ecs_service", "nats").update(desired_count=3)),
    ("nats: three", "deployments starting a second server on the same store",
     lambda f: res(f, "queue.tf", "aws_ecs_service", "nats").update(deployment_maximum_percent=200)),
    ("nats: three", "servers without JetStream",
     lambda f: res(f, "queue.tf", "aws_ecs_task_definition", "nats").update(
         container_definitions=res(f, "queue.tf", "aws_ecs_task_definition", "nats")["container_definitions"].replace('"--jetstream",', ""))),
    ("nats: three", "routes naming one server",
     lambda f: f["queue.tf"]["locals"][0].update(nats_routes='${"nats-route://nats-1.${local.namespace}:6222"}')),
    ("nats: three", "an unpinned NATS image",
     lambda f: f["variables.tf"]["variable"]["nats_image"][0].update(default="nats:latest")),
    ("nats: three", "a NATS server with a public IP",
     lambda f: res(f, "queue.tf", "aws_ecs_service", "nats")["network_configuration"][0].update(assign_public_ip=True)),
    ("nats: JetStream", "an unencrypted EFS",
     lambda f: res(f, "queue.tf", "aws_efs_file_system", "nats").update(encrypted=False)),
    ("nats: JetStream", "plain NFS (no transit encryption)",
     lambda f: res(f, "queue.tf", "aws_ecs_task_definition", "nats")["volume"][0]["efs_volume_configuration"][0].update(transit_encryption="DISABLED")),
    ("nats: JetStream", "every server on one access point",
     lambda f: res(f, "queue.tf", "aws_ecs_task_definition", "nats")["volume"][0]["efs_volume_configuration"][0]["authorization_config"][0]
     .update(access_point_id='${aws_efs_access_point.nats["nats-1"].id}')),
    ("nats: JetStream", "the store directory on the container's own disk",
     lambda f: res(f, "queue.tf", "aws_ecs_task_definition", "nats").update(
         container_definitions=res(f, "queue.tf", "aws_ecs_task_definition", "nats")["container_definitions"].replace('"--store_dir", "/data"', '"--store_dir", "/tmp/js"'))),
    ("nats: JetStream", "EFS open to bff",
     lambda f: res(f, "security_groups.tf", "aws_vpc_security_group_ingress_rule", "efs_from_nats").update(referenced_security_group_id="${aws_security_group.bff.id}")),
    ("nats: JetStream", "EFS mount targets in the database subnets",
     lambda f: res(f, "queue.tf", "aws_efs_mount_target", "nats").update(subnet_id="${aws_subnet.database[count.index].id}")),
    ("nats: JetStream", "a file system policy allowing plain NFS",
     lambda f: res(f, "queue.tf", "aws_efs_file_system_policy", "nats").update(
         policy=res(f, "queue.tf", "aws_efs_file_system_policy", "nats")["policy"].replace('"aws:SecureTransport" = "false"', '"aws:SecureTransport" = "true"'))),
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
    # second region
    ("s3: replication:", "replication off by default",
     lambda f: f["variables.tf"]["variable"]["cross_region_replication"][0].update(default=False)),
    ("s3: replication:", "a disabled replication rule",
     lambda f: _replication_rule(f).update(status="Disabled")),
    ("s3: replication:", "replication into the media bucket itself",
     lambda f: _replication_rule(f)["destination"][0].update(bucket="${aws_s3_bucket.media.arn}")),
    ("s3: replication:", "delete markers left behind",
     lambda f: _replication_rule(f)["delete_marker_replication"][0].update(status="Disabled")),
    ("s3: replication:", "a V1 rule (no filter)",
     lambda f: _replication_rule(f).pop("filter")),
    ("s3: replication:", "an unversioned replica bucket",
     lambda f: f["storage.tf"]["resource"]["aws_s3_bucket_versioning"].pop("media_replica")),
    ("s3: replication:", "replication not waiting for versioning",
     lambda f: res(f, "storage.tf", "aws_s3_bucket_replication_configuration", "media").pop("depends_on")),
    ("s3: replication:", "the replica bucket in the media bucket's region",
     lambda f: res(f, "storage.tf", "aws_s3_bucket", "media_replica").pop("provider")),
    ("s3: replication:", "an SSE-KMS media bucket replicated without a replica key",
     lambda f: res(f, "storage.tf", "aws_s3_bucket_server_side_encryption_configuration", "media")["rule"][0]
     ["apply_server_side_encryption_by_default"][0].update(sse_algorithm="aws:kms")),
    ("s3: replica bucket:", "an unencrypted replica bucket",
     lambda f: f["storage.tf"]["resource"]["aws_s3_bucket_server_side_encryption_configuration"].pop("media_replica")),
    ("s3: replica bucket:", "a replica bucket honouring public ACLs",
     lambda f: res(f, "storage.tf", "aws_s3_bucket_public_access_block", "media_replica").update(ignore_public_acls=False)),
    ("s3: replica bucket:", "a replica bucket anyone may read",
     lambda f: _policy_replace(f, "storage.tf", "media_replica", 'Principal = { Service = "cloudfront.amazonaws.com" }', 'Principal = "*"')),
    ("s3: replica bucket:", "the replica's public access block in the media bucket's region",
     lambda f: res(f, "storage.tf", "aws_s3_bucket_public_access_block", "media_replica").pop("provider")),
    ("s3: replica bucket:", "replica versions that never expire",
     lambda f: res(f, "storage.tf", "aws_s3_bucket_lifecycle_configuration", "media_replica")["rule"][1].pop("noncurrent_version_expiration")),
    ("iam: replication role", "s3:* for replication",
     lambda f: _policy_replace(f, "iam.tf", "media_replication", '"s3:ReplicateObject"', '"s3:*"')),
    ("iam: replication role", "replicas written into the media bucket",
     lambda f: _policy_replace(f, "iam.tf", "media_replication", "${aws_s3_bucket.media_replica[0].arn}/*", "${aws_s3_bucket.media.arn}/*")),
    ("iam: replication role", "a role any account's S3 may assume",
     lambda f: res(f, "iam.tf", "aws_iam_role", "media_replication").update(
         assume_role_policy=res(f, "iam.tf", "aws_iam_role", "media_replication")["assume_role_policy"].replace("aws:SourceAccount", "aws:SourceIp"))),
    ("cloudfront: media failover", "a segment behaviour straight to the bucket",
     lambda f: _behaviour(f, "/p/*.ts").update(target_origin_id="media")),
    ("cloudfront: media failover", "a failover group whose secondary is the media bucket",
     lambda f: _dynamic(f, "origin_group")["member"][1].update(origin_id="media")),
    ("cloudfront: media failover", "the replica as the group's primary",
     lambda f: _dynamic(f, "origin_group")["member"].reverse()),
    ("cloudfront: media failover", "no failover on 503",
     lambda f: _dynamic(f, "origin_group")["failover_criteria"][0]["status_codes"].remove(503)),
    ("cloudfront: media failover", "failover on 404 (deleted media from the lagging replica)",
     lambda f: _dynamic(f, "origin_group")["failover_criteria"][0]["status_codes"].append(404)),
    ("cloudfront: media failover", "a replica origin without OAC",
     lambda f: _dynamic(f, "origin").pop("origin_access_control_id")),
    ("cloudfront: media failover", "a playlist behaviour allowing POST",
     lambda f: _behaviour(f, "/p/*.m3u8").update(allowed_methods=["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"])),
    ("rds: cross-region", "an unencrypted read replica",
     lambda f: res(f, "database.tf", "aws_db_instance", "user_replica").update(storage_encrypted=False)),
    ("rds: cross-region", "a replica naming its source by identifier",
     lambda f: res(f, "database.tf", "aws_db_instance", "user_replica").update(replicate_source_db="${aws_db_instance.user.identifier}")),
    ("rds: cross-region", "the read replica in the primary's region",
     lambda f: res(f, "database.tf", "aws_db_instance", "user_replica").pop("provider")),
    ("rds: cross-region", "a replica encrypted with the primary region's key",
     lambda f: res(f, "database.tf", "aws_db_instance", "user_replica").update(kms_key_id="${aws_kms_key.main.arn}")),
    ("rds: MariaDB", "a public read replica",
     lambda f: res(f, "database.tf", "aws_db_instance", "user_replica").update(publicly_accessible=True)),
    ("docdb: global cluster", "an unencrypted secondary cluster",
     lambda f: res(f, "database.tf", "aws_docdb_cluster", "metadata_replica").update(storage_encrypted=False)),
    ("docdb: global cluster", "a global cluster made from another cluster",
     lambda f: res(f, "database.tf", "aws_docdb_global_cluster", "metadata").update(source_db_cluster_identifier="${aws_docdb_cluster.other.arn}")),
    ("docdb: global cluster", "a secondary cluster outside the global cluster",
     lambda f: res(f, "database.tf", "aws_docdb_cluster", "metadata_replica").pop("global_cluster_identifier")),
    ("docdb: global cluster", "the secondary cluster in the primary's region",
     lambda f: res(f, "database.tf", "aws_docdb_cluster", "metadata_replica").pop("provider")),
    ("docdb: global cluster", "a secondary encrypted with the primary region's key",
     lambda f: res(f, "database.tf", "aws_docdb_cluster", "metadata_replica").update(kms_key_id="${aws_kms_key.main.arn}")),
    ("docdb: global cluster", "a primary that does not ignore its global_cluster_identifier",
     lambda f: res(f, "database.tf", "aws_docdb_cluster", "metadata").pop("lifecycle")),
    ("docdb: global cluster", "burstable instances (no global cluster on db.t4g)",
     lambda f: f["variables.tf"]["variable"]["docdb_instance_class"][0].update(default="db.t4g.medium")),
    ("docdb: DocumentDB", "a secondary cluster in the primary's database subnets",
     lambda f: res(f, "database.tf", "aws_docdb_subnet_group", "replica").update(subnet_ids="${aws_subnet.database[*].id}")),
    ("network:", "a replica database subnet routed to the internet",
     lambda f: res(f, "network.tf", "aws_route_table", "replica_database").update(route=[{"cidr_block": "0.0.0.0/0", "gateway_id": "x"}])),
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
