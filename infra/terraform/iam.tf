# IAM for the ECS tasks. Media bucket key layout: live/<id>/ broadcasts (ingest-rtmp),
# uploads/<id>/ originals and upload state (bff), vod/<id>/ the uploads' ladders (the worker).
#   execution role (ECS agent): pull images, write logs, read exactly the four secrets.
#   ingest-rtmp task role: put/get/delete objects under live/; delete under vod/ and uploads/ (the
#   cleanup of deleted videos, which ingest-rtmp runs); list the media bucket (only under those
#   three prefixes when a listing names a prefix), nothing else.
#   bff task role: uploads/ only (multipart writes of originals, the upload state, listing).
#   transcoder-worker task role: read uploads/; write vod/; read live/ and write (delete) only
#   the pictures of recordings there; no listing.
#   NATS task role: mount its EFS access point, nothing else.
#   user-svc, metadata-svc: no task role (they call no AWS API).
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
        # ingest-rtmp runs the cleanup of deleted videos: it lists a video's folders (a
        # broadcast's live/<id>/; an upload's uploads/<id>/ and vod/<id>/) and deletes their
        # objects (delete markers; the lifecycle rule expires the old versions).
        Sid    = "DeleteVideoMedia"
        Effect = "Allow"
        Action = "s3:DeleteObject"
        Resource = [
          "${aws_s3_bucket.media.arn}/${local.media_prefix}/*",
          "${aws_s3_bucket.media.arn}/${local.vod_prefix}/*",
          "${aws_s3_bucket.media.arn}/${local.uploads_prefix}/*",
        ]
      },
      {
        # Listings that name a prefix must stay under those folders. IfExists: S3 also checks
        # ListBucket (without a prefix) to answer 404 rather than 403 for a missing key, which
        # the store maps to NotFound.
        Sid      = "ListMediaPrefix"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = aws_s3_bucket.media.arn
        Condition = {
          StringLikeIfExists = { "s3:prefix" = ["${local.media_prefix}/*", "${local.vod_prefix}/*", "${local.uploads_prefix}/*"] }
        }
      },
    ]
  })
}

# --- bff: uploads (tus) ---------------------------------------------------------------------

resource "aws_iam_role" "bff_task" {
  name               = "${local.name}-bff-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "bff_uploads" {
  name = "media-bucket-uploads"
  role = aws_iam_role.bff_task.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # uploads/<id>/source (a multipart write: PutObject covers create, part and complete;
        # a cancelled upload aborts it), uploads/<id>/tail and uploads/<id>/state.json
        Sid      = "Uploads"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = "${aws_s3_bucket.media.arn}/${local.uploads_prefix}/*"
      },
      {
        # the sweeper lists uploads/, a resumed upload its tail; IfExists as for ingest (404 for
        # a missing state or tail, not 403)
        Sid      = "ListUploads"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = aws_s3_bucket.media.arn
        Condition = {
          StringLikeIfExists = { "s3:prefix" = ["${local.uploads_prefix}/*"] }
        }
      },
    ]
  })
}

# --- the transcode worker -------------------------------------------------------------------

resource "aws_iam_role" "worker_task" {
  name               = "${local.name}-transcoder-worker-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

# No s3:ListBucket: the worker never lists. Without it S3 answers 403 rather than 404 for a
# missing key, so an original that is gone is retried (jobs.max_deliver) before the video fails,
# instead of being refused at once.
resource "aws_iam_role_policy" "worker_media" {
  name = "media-bucket-transcode"
  role = aws_iam_role.worker_task.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadOriginals"
        Effect   = "Allow"
        Action   = "s3:GetObject"
        Resource = "${aws_s3_bucket.media.arn}/${local.uploads_prefix}/*"
      },
      {
        # the ladder, its playlists, the poster and the storyboard of an upload
        Sid      = "WriteLadders"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject"]
        Resource = "${aws_s3_bucket.media.arn}/${local.vod_prefix}/*"
      },
      {
        # artwork jobs of recordings (ingest queues them): the playlists and a few segments
        Sid      = "ReadRecordings"
        Effect   = "Allow"
        Action   = "s3:GetObject"
        Resource = "${aws_s3_bucket.media.arn}/${local.media_prefix}/*"
      },
      {
        # ... and their pictures: live/<id>/poster.jpg, storyboard-<n>.jpg and storyboard.vtt,
        # and the poster of a broadcast on air, live/<id>-live/poster.jpg
        Sid    = "RecordingPictures"
        Effect = "Allow"
        Action = "s3:PutObject"
        Resource = [
          "${aws_s3_bucket.media.arn}/${local.media_prefix}/*/poster.jpg",
          "${aws_s3_bucket.media.arn}/${local.media_prefix}/*/storyboard-*.jpg",
          "${aws_s3_bucket.media.arn}/${local.media_prefix}/*/storyboard.vtt",
        ]
      },
      {
        # the on-air poster, once the recording's own replaces it
        Sid      = "DropLivePosters"
        Effect   = "Allow"
        Action   = "s3:DeleteObject"
        Resource = "${aws_s3_bucket.media.arn}/${local.media_prefix}/*-live/poster.jpg"
      },
    ]
  })
}

# --- NATS (queue.tf): mount its EFS access point --------------------------------------------

resource "aws_iam_role" "nats_task" {
  name               = "${local.name}-nats-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "nats_efs" {
  name = "mount-jetstream-store"
  role = aws_iam_role.nats_task.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "MountThroughAccessPoints"
        Effect   = "Allow"
        Action   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
        Resource = aws_efs_file_system.nats.arn
        Condition = {
          StringEquals = { "elasticfilesystem:AccessPointArn" = [for n in sort(local.nats_nodes) : aws_efs_access_point.nats[n].arn] }
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
