# One customer-managed key for data at rest that is not public video: the databases,
# Performance Insights, Secrets Manager secrets, CloudWatch log groups and the job queue's EFS
# (EFS uses it through grants made for the principal that creates the file system, which the
# account-wide statement allows). A KMS key never leaves
# its region, so the replica region has its own for the database copies and their logs there.
# (Media in S3 uses SSE-S3 in both regions: see storage.tf.)

resource "aws_kms_key" "main" {
  description             = "${local.name}: databases, secrets and logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Access is then granted through IAM policies (the task execution role, operators).
        Sid       = "AccountAdministersKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsThisAccountsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:*"
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.main.key_id
}

# --- second region -------------------------------------------------------------------------

resource "aws_kms_key" "replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  description             = "${local.name}: database copies and logs in ${var.replica_region}"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsThisAccountsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.replica_region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.replica_region}:${local.account_id}:log-group:*"
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.replica[0].key_id
}
