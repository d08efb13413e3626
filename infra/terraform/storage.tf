# S3: the media bucket (HLS segments, playlists, recordings), its replica in the second region
# and the access-logs bucket.
#
# The media bucket is private; viewers get objects only through CloudFront (Origin Access
# Control, cdn.tf), ingest-rtmp, bff and the transcode worker write with their task roles
# (iam.tf). Originals of uploads (uploads/<id>/, bff) are never served: the bucket policy denies
# CloudFront that prefix, whatever a playback token opens. CloudFront adds the CORS
# headers, so the bucket has no CORS configuration. With cross_region_replication, S3 copies
# every new object and delete marker to the replica bucket (asynchronously), and CloudFront
# reads from the replica when the media bucket answers 5xx (cdn.tf).

# --- media ---------------------------------------------------------------------------------

resource "aws_s3_bucket" "media" {
  #checkov:skip=CKV_AWS_145:SSE-S3 on purpose. The objects are HLS media that CloudFront hands to any viewer; SSE-KMS would add a KMS request to every edge miss (every segment of every rung) for no confidentiality gain.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events: ingest-rtmp tells metadata-svc about renditions itself.
  bucket = "${local.name}-media-${local.account_id}"
}

resource "aws_s3_bucket_ownership_controls" "media" {
  bucket = aws_s3_bucket.media.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "media" {
  bucket = aws_s3_bucket.media.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "media" {
  bucket = aws_s3_bucket.media.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "media" {
  bucket = aws_s3_bucket.media.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "media" {
  bucket = aws_s3_bucket.media.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # Live playlists are rewritten after every segment: each rewrite leaves a noncurrent version.
  rule {
    id     = "expire-replaced-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.media_noncurrent_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "recordings-to-standard-ia"
    status = var.recordings_ia_after_days > 0 ? "Enabled" : "Disabled"

    filter {
      prefix = "${local.media_prefix}/"
    }

    transition {
      days          = max(var.recordings_ia_after_days, 30)
      storage_class = "STANDARD_IA"
    }
  }

  depends_on = [aws_s3_bucket_versioning.media]
}

resource "aws_s3_bucket_logging" "media" {
  bucket        = aws_s3_bucket.media.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/media/"
}

# Reads only by this account's CloudFront distribution, never of uploaded originals; TLS only.
resource "aws_s3_bucket_policy" "media" {
  bucket = aws_s3_bucket.media.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudFrontReadsThroughOriginAccessControl"
        Effect    = "Allow"
        Principal = { Service = "cloudfront.amazonaws.com" }
        Action    = "s3:GetObject"
        Resource  = "${aws_s3_bucket.media.arn}/*"
        Condition = {
          StringEquals = { "AWS:SourceArn" = aws_cloudfront_distribution.main.arn }
        }
      },
      {
        Sid       = "OriginalsAreNeverServed"
        Effect    = "Deny"
        Principal = { Service = "cloudfront.amazonaws.com" }
        Action    = "s3:GetObject"
        Resource  = "${aws_s3_bucket.media.arn}/${local.uploads_prefix}/*"
      },
      {
        Sid       = "DenyPlainHttp"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.media.arn, "${aws_s3_bucket.media.arn}/*"]
        Condition = {
          Bool = { "aws:SecureTransport" = "false" }
        }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.media]
}

# --- media replica (second region) -------------------------------------------------------
# The same settings as the media bucket: private, owner-enforced, versioned (replication needs
# versioning on both sides), SSE-S3, readable only by this distribution, the same lifecycle
# (lifecycle actions are not replicated: each bucket expires its own old versions).

resource "aws_s3_bucket" "media_replica" {
  #checkov:skip=CKV_AWS_145:SSE-S3 like the media bucket, whose objects arrive here with their encryption unchanged: public HLS media, and SSE-KMS would add a KMS request to every edge miss after a failover.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events of the replica.
  #checkov:skip=CKV_AWS_18:S3 server access logs can only go to a bucket in the same region, and only two principals touch this bucket: S3 replication (replication metrics, CloudTrail) and CloudFront, whose reads are in its standard logs in the logs bucket.
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  bucket = "${local.name}-media-${var.replica_region}-${local.account_id}"
}

resource "aws_s3_bucket_ownership_controls" "media_replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  bucket = aws_s3_bucket.media_replica[0].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "media_replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  bucket = aws_s3_bucket.media_replica[0].id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "media_replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  bucket = aws_s3_bucket.media_replica[0].id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "media_replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  bucket = aws_s3_bucket.media_replica[0].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "media_replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  bucket = aws_s3_bucket.media_replica[0].id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # Every playlist rewrite and every replicated delete marker leaves a noncurrent version here too.
  rule {
    id     = "expire-replaced-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.media_noncurrent_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "recordings-to-standard-ia"
    status = var.recordings_ia_after_days > 0 ? "Enabled" : "Disabled"

    filter {
      prefix = "${local.media_prefix}/"
    }

    transition {
      days          = max(var.recordings_ia_after_days, 30)
      storage_class = "STANDARD_IA"
    }
  }

  depends_on = [aws_s3_bucket_versioning.media_replica]
}

# Reads only by this account's CloudFront distribution (the failover origin), never of uploaded
# originals (replicated like every object); TLS only. S3
# replication writes with its role's permissions (iam.tf): same account, no grant needed here.
resource "aws_s3_bucket_policy" "media_replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  bucket = aws_s3_bucket.media_replica[0].id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudFrontReadsThroughOriginAccessControl"
        Effect    = "Allow"
        Principal = { Service = "cloudfront.amazonaws.com" }
        Action    = "s3:GetObject"
        Resource  = "${aws_s3_bucket.media_replica[0].arn}/*"
        Condition = {
          StringEquals = { "AWS:SourceArn" = aws_cloudfront_distribution.main.arn }
        }
      },
      {
        Sid       = "OriginalsAreNeverServed"
        Effect    = "Deny"
        Principal = { Service = "cloudfront.amazonaws.com" }
        Action    = "s3:GetObject"
        Resource  = "${aws_s3_bucket.media_replica[0].arn}/${local.uploads_prefix}/*"
      },
      {
        Sid       = "DenyPlainHttp"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.media_replica[0].arn, "${aws_s3_bucket.media_replica[0].arn}/*"]
        Condition = {
          Bool = { "aws:SecureTransport" = "false" }
        }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.media_replica]
}

# The whole bucket (live/, vod/ and the uploads' originals), delete markers included: a deleted video
# goes from the replica too. Objects are SSE-S3, so there is no KMS-encrypted object selection
# or replica key to set. Asynchronous: most objects arrive within seconds, without a time
# guarantee (S3 Replication Time Control would add a 15-minute SLA at a per-GB charge); the
# metrics (ReplicationLatency, OperationsPendingReplication in CloudWatch) show the lag. Objects
# written before replication was switched on need a one-off S3 Batch Replication job (README).
resource "aws_s3_bucket_replication_configuration" "media" {
  count = var.cross_region_replication ? 1 : 0

  bucket = aws_s3_bucket.media.id
  role   = aws_iam_role.media_replication[0].arn

  rule {
    id     = "media-to-${var.replica_region}"
    status = "Enabled"

    filter {}

    delete_marker_replication {
      status = "Enabled"
    }

    destination {
      bucket        = aws_s3_bucket.media_replica[0].arn
      storage_class = "STANDARD"

      metrics {
        status = "Enabled"
      }
    }
  }

  # S3 refuses a replication configuration until both buckets are versioned.
  depends_on = [aws_s3_bucket_versioning.media, aws_s3_bucket_versioning.media_replica]
}

# --- access logs (S3 server access logs, ALB access logs, CloudFront standard logs) --------

data "aws_elb_service_account" "current" {}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_144:Access logs are kept for access_log_retention_days in one region; replicating them is not worth the cost.
  #checkov:skip=CKV_AWS_145:ALB access logs can only be delivered to SSE-S3 buckets (AES256), not SSE-KMS.
  #checkov:skip=CKV2_AWS_62:Nothing consumes log object events.
  bucket = "${local.name}-logs-${local.account_id}"
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  #checkov:skip=CKV2_AWS_65:CloudFront standard logging delivers through bucket ACLs, so this bucket (logs only) must keep ACLs enabled (BucketOwnerPreferred).
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerPreferred"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket = aws_s3_bucket.logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "S3ServerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/s3/*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = aws_s3_bucket.media.arn }
        }
      },
      {
        # Regions opened before August 2022 deliver ALB logs from a regional ELB account ...
        Sid       = "AlbAccessLogsLegacyRegions"
        Effect    = "Allow"
        Principal = { AWS = data.aws_elb_service_account.current.arn }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/alb/AWSLogs/${local.account_id}/*"
      },
      {
        # ... newer regions from this service principal.
        Sid       = "AlbAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logdelivery.elasticloadbalancing.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/alb/AWSLogs/${local.account_id}/*"
      },
      {
        Sid       = "DenyPlainHttp"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]
        Condition = {
          Bool = { "aws:SecureTransport" = "false" }
        }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.logs]
}
