# CloudFront: the one public HTTPS entry point (it replaces the nginx edge of the local stack).
#
#   /p/*/ll.m3u8, /p/*/ll_* -> ALB/ingest low-latency HLS from the live origin: the blocking-reload
#                                        query in the cache key, the origin's Cache-Control
#   /p/*.ts, /p/*.m4s       -> S3 (OAC)  segments: immutable, cached up to a year
#   /p/*.m3u8               -> S3 (OAC)  playlists: cached at most 1 s (live windows move)
#   /p/*                    -> S3 (OAC)  anything else the transcoder writes: origin Cache-Control
#   /*/*/poster.jpg|png     -> S3 (OAC)  posters of public cards, unsigned
#   /v1/*                   -> ALB/bff   API: not cached, every method and header forwarded
#   everything else         -> ALB/bff   pages: not cached
#
# Media is served only under a playback token (/p/{kid}.{exp}.{sig}/{key}, handed out by bff):
# functions/playback-token.js checks it on viewer request, answers 403 without an origin fetch
# when it does not hold, and otherwise rewrites the uri to /{key}. CloudFront computes the cache
# key from the rewritten uri, so every viewer's token maps to one cached object. The HMAC keys
# (kid -> secret) live in a CloudFront key value store, so two keys can be valid at once.
#
# The ALB accepts only CloudFront's origin-facing addresses (security_groups.tf) that also
# carry the secret X-Caudal-Origin-Verify header (loadbalancers.tf).
#
# With cross_region_replication the S3 behaviours go to an origin group: the media bucket, then
# its replica in replica_region (same OAC) when the media bucket answers 500/502/503/504 or
# cannot be reached. The low-latency, API and page behaviours stay on the ALB (one region).

# One OAC for both buckets: it only says how CloudFront signs; each bucket's policy admits this
# distribution.
resource "aws_cloudfront_origin_access_control" "media" {
  name                              = "${local.name}-media"
  description                       = "CloudFront signs its requests to the private media bucket and its replica"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

# Segments never change once written (ingest stores them with Cache-Control immutable, one year).
resource "aws_cloudfront_cache_policy" "hls_segments" {
  name        = "${local.name}-hls-segments"
  comment     = "HLS/CMAF segments: immutable, long TTL"
  min_ttl     = 0
  default_ttl = 31536000
  max_ttl     = 31536000

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = false
    enable_accept_encoding_brotli = false

    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

# Live playlists change every segment: never cached longer than 1 s, whatever the origin says.
resource "aws_cloudfront_cache_policy" "hls_playlists" {
  name        = "${local.name}-hls-playlists"
  comment     = "HLS playlists: at most 1 s"
  min_ttl     = 0
  default_ttl = 1
  max_ttl     = 1

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = true
    enable_accept_encoding_brotli = true

    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

# Low-latency HLS (ingest's live origin): players asking for the same part share one entry
# (the blocking-reload query is the only query in the key) and CloudFront collapses their
# misses into one origin request. The origin's Cache-Control decides: 1 s for a playlist as it
# is, 6 s for an answer to a blocking request, 300 s for parts; no-store for 400 and 503.
resource "aws_cloudfront_cache_policy" "hls_low_latency" {
  name        = "${local.name}-hls-low-latency"
  comment     = "LL-HLS: blocking-reload query in the key, origin Cache-Control"
  min_ttl     = 0
  default_ttl = 1
  max_ttl     = 300

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = true
    enable_accept_encoding_brotli = true

    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "whitelist"
      query_strings {
        items = ["_HLS_msn", "_HLS_part", "_HLS_skip"]
      }
    }
  }
}

# Posters, thumbnails, VOD files: the origin's Cache-Control, a day when it sends none (the
# settings of Managed-CachingOptimized, defined here so that the cache key is visibly the object
# key only).
resource "aws_cloudfront_cache_policy" "media_other" {
  name        = "${local.name}-media-other"
  comment     = "Other media objects: origin Cache-Control, a day by default"
  min_ttl     = 1
  default_ttl = 86400
  max_ttl     = 31536000

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = true
    enable_accept_encoding_brotli = true

    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

# Media may be played from other sites (embeds, native players): CloudFront adds the CORS
# headers itself and answers preflights (functions/playback-token.js), so the bucket needs no
# CORS configuration.
resource "aws_cloudfront_response_headers_policy" "media" {
  #checkov:skip=CKV_AWS_259:HSTS is sent for a year with override; includeSubDomains and preload would commit every subdomain of the operator's domain to HTTPS (and to browser preload lists), which only the domain owner can decide.
  name    = "${local.name}-media"
  comment = "CORS and security headers for HLS media"

  cors_config {
    access_control_allow_credentials = false
    access_control_max_age_sec       = 86400
    origin_override                  = true

    access_control_allow_headers {
      items = ["*"]
    }
    access_control_allow_methods {
      items = ["GET", "HEAD", "OPTIONS"]
    }
    access_control_allow_origins {
      items = var.cors_allowed_origins
    }
    access_control_expose_headers {
      items = ["Content-Length", "Content-Range", "Accept-Ranges", "Age", "Date"]
    }
  }

  security_headers_config {
    content_type_options {
      override = true
    }
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = false
      override                   = true
    }
  }
}

# Pages and API: bff answers CORS itself (CAUDAL_BFF_CORS_ORIGINS); CloudFront adds HSTS.
resource "aws_cloudfront_response_headers_policy" "app" {
  #checkov:skip=CKV_AWS_259:HSTS is sent for a year with override; includeSubDomains and preload would commit every subdomain of the operator's domain to HTTPS (and to browser preload lists), which only the domain owner can decide.
  name    = "${local.name}-app"
  comment = "Security headers for the pages and the API"

  security_headers_config {
    content_type_options {
      override = true
    }
    referrer_policy {
      referrer_policy = "strict-origin-when-cross-origin"
      override        = false
    }
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = false
      override                   = true
    }
  }
}

# kid -> secret of the playback token keys (the same secrets bff signs with, secrets.tf).
resource "aws_cloudfront_key_value_store" "playback_keys" {
  name    = "${local.name}-playback-keys"
  comment = "Playback token keys: kid -> HMAC secret (functions/playback-token.js)"
}

resource "aws_cloudfrontkeyvaluestore_key" "playback" {
  for_each = toset(var.playback_keys.key_ids)

  key_value_store_arn = aws_cloudfront_key_value_store.playback_keys.arn
  key                 = each.value
  value               = random_password.playback[each.value].result
}

# Viewer request on every media behaviour: token check and uri rewrite, unsigned posters, CORS
# preflight.
resource "aws_cloudfront_function" "playback_token" {
  name    = "${local.name}-playback-token"
  runtime = "cloudfront-js-2.0"
  comment = "Checks playback tokens, answers CORS preflight for media"
  publish = true
  code = templatefile("${path.module}/functions/playback-token.js", {
    allowed_origins = jsonencode(var.cors_allowed_origins)
    # the store's id is the last part of its ARN (the resource's "id" is its name)
    kvs_id = element(split("/", aws_cloudfront_key_value_store.playback_keys.arn), 1)
  })
  key_value_store_associations = [aws_cloudfront_key_value_store.playback_keys.arn]
}

# Where the S3 behaviours go: the failover group with a replica, else the media bucket itself.
locals {
  media_origin_id = var.cross_region_replication ? "media-failover" : "media"
}

data "aws_cloudfront_cache_policy" "caching_disabled" {
  name = "Managed-CachingDisabled"
}

# Everything the viewer sent (Authorization, cookies, query) except Host: the ALB's
# certificate is for origin_domain_name.
data "aws_cloudfront_origin_request_policy" "all_viewer_except_host" {
  name = "Managed-AllViewerExceptHostHeader"
}

resource "random_password" "origin_verify" {
  length  = 48
  special = false
}

resource "aws_cloudfront_distribution" "main" {
  #checkov:skip=CKV2_AWS_47:The web ACL is optional and managed outside this stack (cloudfront_web_acl_arn), so its rule groups (Log4j included) cannot be checked here; media is static objects and the API has bff's own rate limits.
  #checkov:skip=CKV_AWS_174:TLSv1.2_2021 is set whenever cloudfront_certificate_arn is given; with the default *.cloudfront.net certificate CloudFront only accepts TLSv1 as the setting.
  #checkov:skip=CKV2_AWS_42:A custom certificate is optional (site_aliases + cloudfront_certificate_arn); without one the *.cloudfront.net certificate is used.
  #checkov:skip=CKV_AWS_374:A public video platform serves every country; geo restriction is a business decision, not a default.
  #checkov:skip=CKV_AWS_305:The default behaviour goes to bff, which serves "/" itself; a default root object would only apply to S3 origins.
  enabled         = true
  is_ipv6_enabled = true
  http_version    = "http2and3"
  price_class     = var.cloudfront_price_class
  comment         = "${local.name}: pages, /v1 API and HLS media"
  aliases         = var.site_aliases
  web_acl_id      = var.cloudfront_web_acl_arn == "" ? null : var.cloudfront_web_acl_arn

  origin {
    origin_id                = "media"
    domain_name              = aws_s3_bucket.media.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.media.id

    # With a replica to fall back to, give up on an unreachable bucket after 2 x 3 s instead of
    # CloudFront's 3 x 10 s: a live player holds only a few segments.
    connection_attempts = var.cross_region_replication ? 2 : 3
    connection_timeout  = var.cross_region_replication ? 3 : 10

    dynamic "origin_shield" {
      for_each = var.origin_shield_region == "" ? [] : [var.origin_shield_region]
      content {
        enabled              = true
        origin_shield_region = origin_shield.value
      }
    }
  }

  # The replica bucket: reached only on failover, so no Origin Shield (its region would be the
  # media bucket's, where the trouble is).
  dynamic "origin" {
    for_each = var.cross_region_replication ? [1] : []
    content {
      origin_id                = "media-replica"
      domain_name              = aws_s3_bucket.media_replica[0].bucket_regional_domain_name
      origin_access_control_id = aws_cloudfront_origin_access_control.media.id
    }
  }

  # Failover on the 5xx answers of an S3 outage only. Not on 403/404: the media bucket is the
  # one ingest writes, so it is always ahead of the replica (replication is asynchronous). A key
  # it does not have is a segment asked for before it exists, or a deleted video; the replica,
  # lagging, has the first no sooner and may still hold the second until its delete marker
  # arrives. Failing over on them would double every such miss and could serve deleted media.
  # (The group's id comes from for_each: checkov 3.3.30 reads the members of a dynamic origin
  # group only then, and CKV_AWS_310 checks this failover.)
  dynamic "origin_group" {
    for_each = var.cross_region_replication ? ["media-failover"] : []
    content {
      origin_id = origin_group.value

      failover_criteria {
        status_codes = [500, 502, 503, 504]
      }

      member {
        origin_id = "media"
      }

      member {
        origin_id = "media-replica"
      }
    }
  }

  origin {
    origin_id   = "bff"
    domain_name = var.origin_domain_name

    custom_origin_config {
      http_port                = 80
      https_port               = 443
      origin_protocol_policy   = "https-only"
      origin_ssl_protocols     = ["TLSv1.2"]
      origin_read_timeout      = 30
      origin_keepalive_timeout = 5
    }

    custom_header {
      name  = "X-Caudal-Origin-Verify"
      value = random_password.origin_verify.result
    }
  }

  # Pages (/, watch pages, static files): bff, not cached.
  default_cache_behavior {
    target_origin_id           = "bff"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.caching_disabled.id
    origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_viewer_except_host.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.app.id
  }

  ordered_cache_behavior {
    path_pattern               = "/v1/*"
    target_origin_id           = "bff"
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.caching_disabled.id
    origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_viewer_except_host.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.app.id
  }

  # Low-latency HLS under a playback token, before the media behaviours (the first match wins):
  # the live origin in ingest, through the ALB (its listener rule sends these names there).
  ordered_cache_behavior {
    path_pattern               = "/p/*/ll.m3u8"
    target_origin_id           = "bff"
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.hls_low_latency.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.media.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.playback_token.arn
    }
  }

  ordered_cache_behavior {
    path_pattern               = "/p/*/ll_*"
    target_origin_id           = "bff"
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.hls_low_latency.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.media.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.playback_token.arn
    }
  }

  # Media under a playback token. The behaviour is chosen on the viewer's path (/p/...); the
  # cache key and the S3 request use the path the function rewrote (/{key}). The S3 behaviours
  # allow no more than GET, HEAD and OPTIONS, the methods an origin group fails over (OPTIONS is
  # answered by the function at the edge anyway).
  ordered_cache_behavior {
    path_pattern               = "/p/*.m3u8"
    target_origin_id           = local.media_origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.hls_playlists.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.media.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.playback_token.arn
    }
  }

  ordered_cache_behavior {
    path_pattern               = "/p/*.ts"
    target_origin_id           = local.media_origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.hls_segments.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.media.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.playback_token.arn
    }
  }

  ordered_cache_behavior {
    path_pattern               = "/p/*.m4s"
    target_origin_id           = local.media_origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.hls_segments.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.media.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.playback_token.arn
    }
  }

  ordered_cache_behavior {
    path_pattern               = "/p/*"
    target_origin_id           = local.media_origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.media_other.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.media.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.playback_token.arn
    }
  }

  # Posters of public cards, unsigned. "*" also matches "/": the function serves only
  # /{seg1}/{seg2}/poster.jpg|png and answers 403 to anything deeper.
  ordered_cache_behavior {
    path_pattern               = "/*/*/poster.jpg"
    target_origin_id           = local.media_origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.media_other.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.media.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.playback_token.arn
    }
  }

  ordered_cache_behavior {
    path_pattern               = "/*/*/poster.png"
    target_origin_id           = local.media_origin_id
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.media_other.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.media.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.playback_token.arn
    }
  }

  # A playlist or segment asked for a moment before it exists must not stay "missing" for
  # CloudFront's default 10 s (S3 answers 403 for a missing key when the reader cannot list).
  custom_error_response {
    error_code            = 403
    error_caching_min_ttl = 1
  }

  custom_error_response {
    error_code            = 404
    error_caching_min_ttl = 1
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = var.cloudfront_certificate_arn == ""
    acm_certificate_arn            = var.cloudfront_certificate_arn == "" ? null : var.cloudfront_certificate_arn
    ssl_support_method             = var.cloudfront_certificate_arn == "" ? null : "sni-only"
    minimum_protocol_version       = var.cloudfront_certificate_arn == "" ? "TLSv1" : "TLSv1.2_2021"
  }

  logging_config {
    bucket          = aws_s3_bucket.logs.bucket_domain_name
    prefix          = "cloudfront/"
    include_cookies = false
  }

  depends_on = [aws_s3_bucket_ownership_controls.logs]
}
