# IAM for the ECS tasks.
#   execution role (ECS agent): pull images, write logs, read exactly the four secrets.
#   ingest-rtmp task role: put/get/delete objects under live/ and list the media bucket (only
#   under live/ when a listing names a prefix), nothing else.
#   bff, user-svc, metadata-svc: no task role (they call no AWS API).
# IAM for S3 replication (cross_region_replication): S3 reads the media bucket's new versions
# and writes them into the replica bucket, nothing else.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.name}-ecs-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution" {
  name = "read-service-secrets"
  role = aws_iam_role.execution.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect = "Allow"
        Action = "secretsmanager:GetSecretValue"
        Resource = [
          aws_secretsmanager_secret.jwt.arn,
          aws_secretsmanager_secret.user_database_url.arn,
          aws_secretsmanager_secret.metadata_mongo_url.arn,
          aws_secretsmanager_secret.playback_keys.arn,
        ]
      },
      {
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = aws_kms_key.main.arn
        Condition = {
          StringEquals = { "kms:ViaService" = "secretsmanager.${var.region}.amazonaws.com" }
        }
      },
    ]
  })
}

resource "aws_iam_role" "ingest_task" {
  name               = "${local.name}-ingest-rtmp-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "ingest_media" {
  name = "media-bucket-read-write"
  role = aws_iam_role.ingest_task.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "SegmentsAndPlaylists"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject"]
        Resource = "${aws_s3_bucket.media.arn}/${local.media_prefix}/*"
      },
      {
        # ingest-rtmp runs the cleanup of deleted videos: it lists a video's prefix and deletes
        # its objects (delete markers; the lifecycle rule expires the old versions).
        Sid      = "DeleteVideoMedia"
        Effect   = "Allow"
        Action   = "s3:DeleteObject"
        Resource = "${aws_s3_bucket.media.arn}/${local.media_prefix}/*"
      },
      {
        # Listings that name a prefix must stay under live/. IfExists: S3 also checks
        # ListBucket (without a prefix) to answer 404 rather than 403 for a missing key, which
        # the store maps to NotFound.
        Sid      = "ListMediaPrefix"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = aws_s3_bucket.media.arn
        Condition = {
          StringLikeIfExists = { "s3:prefix" = ["${local.media_prefix}/*"] }
        }
      },
    ]
  })
}

# --- S3 replication (storage.tf) -----------------------------------------------------------

resource "aws_iam_role" "media_replication" {
  count = var.cross_region_replication ? 1 : 0

  name = "${local.name}-media-replication"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "s3.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
      }
    }]
  })
}

# What S3 replication needs and no more: read the configuration and list the source, read object
# versions (with their ACLs and tags) for replication, and replicate objects, deletes and tags
# into the replica.
resource "aws_iam_role_policy" "media_replication" {
  count = var.cross_region_replication ? 1 : 0

  name = "replicate-media"
  role = aws_iam_role.media_replication[0].id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadReplicationConfiguration"
        Effect   = "Allow"
        Action   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
        Resource = aws_s3_bucket.media.arn
      },
      {
        Sid      = "ReadSourceVersions"
        Effect   = "Allow"
        Action   = ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"]
        Resource = "${aws_s3_bucket.media.arn}/*"
      },
      {
        Sid      = "WriteReplicas"
        Effect   = "Allow"
        Action   = ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
        Resource = "${aws_s3_bucket.media_replica[0].arn}/*"
      },
    ]
  })
}
