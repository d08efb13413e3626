# Databases, both in the database subnets (no route out of the VPC), encrypted with the
# stack's KMS key, reachable only from their one service's security group.
#   RDS MariaDB  -> user-svc     (users, stream keys, subscriptions, purchases, ledger)
#   DocumentDB   -> metadata-svc (the video catalog; MongoDB API)

# --- RDS MariaDB ---------------------------------------------------------------------------

resource "aws_db_subnet_group" "main" {
  name        = "${local.name}-database"
  description = "Database subnets of ${local.name} (no internet route)"
  subnet_ids  = aws_subnet.database[*].id
}

resource "aws_db_parameter_group" "user" {
  name_prefix = "${local.name}-mariadb-"
  description = "MariaDB settings for user-svc"
  family      = "mariadb${join(".", slice(split(".", var.db_engine_version), 0, 2))}"

  parameter {
    name  = "character_set_server"
    value = "utf8mb4"
  }

  parameter {
    name  = "collation_server"
    value = "utf8mb4_unicode_ci"
  }

  parameter {
    name  = "slow_query_log"
    value = "1"
  }

  parameter {
    name  = "long_query_time"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "user" {
  #checkov:skip=CKV2_AWS_69:Encryption in transit (require_secure_transport) would lock user-svc out: its sqlx is built without a TLS feature. Traffic stays inside the VPC between two security groups; enable it once user-svc connects with TLS.
  identifier     = "${local.name}-user"
  engine         = "mariadb"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  db_name  = "caudal"
  username = "caudal"
  password = random_password.mariadb.result
  port     = 3306

  allocated_storage     = var.db_allocated_storage_gb
  max_allocated_storage = var.db_max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.main.arn

  db_subnet_group_name   = aws_db_subnet_group.main.name
  vpc_security_group_ids = [aws_security_group.rds.id]
  publicly_accessible    = false
  multi_az               = var.db_multi_az
  parameter_group_name   = aws_db_parameter_group.user.name

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  allow_major_version_upgrade         = false
  apply_immediately                   = false
  maintenance_window                  = "sun:04:30-sun:05:30"

  backup_retention_period   = var.db_backup_retention_days
  backup_window             = "03:00-04:00"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.name}-user-final"

  enabled_cloudwatch_logs_exports       = ["error", "slowquery"]
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.main.arn
  performance_insights_retention_period = 7

  depends_on = [aws_cloudwatch_log_group.rds]
}

# Created here (not by RDS on first write) so they get a retention and the KMS key.
resource "aws_cloudwatch_log_group" "rds" {
  for_each = toset(["error", "slowquery"])

  name              = "/aws/rds/instance/${local.name}-user/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_iam_role" "rds_monitoring" {
  name = "${local.name}-rds-monitoring"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# --- DocumentDB ----------------------------------------------------------------------------
# DocumentDB has no public endpoint at all: it lives only in the database subnets.

resource "aws_docdb_subnet_group" "main" {
  name        = "${local.name}-docdb"
  description = "Database subnets of ${local.name} (no internet route)"
  subnet_ids  = aws_subnet.database[*].id
}

resource "aws_docdb_cluster_parameter_group" "metadata" {
  name_prefix = "${local.name}-docdb-"
  description = "DocumentDB settings for metadata-svc"
  family      = "docdb${join(".", slice(split(".", var.docdb_engine_version), 0, 2))}"

  parameter {
    name  = "tls"
    value = "enabled"
  }

  parameter {
    name  = "audit_logs"
    value = "enabled"
  }

  parameter {
    name  = "profiler"
    value = "enabled"
  }

  parameter {
    name  = "profiler_threshold_ms"
    value = "200"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_docdb_cluster" "metadata" {
  cluster_identifier = "${local.name}-metadata"
  engine             = "docdb"
  engine_version     = var.docdb_engine_version
  port               = 27017

  master_username = "caudal"
  master_password = random_password.docdb.result

  db_subnet_group_name            = aws_docdb_subnet_group.main.name
  vpc_security_group_ids          = [aws_security_group.docdb.id]
  db_cluster_parameter_group_name = aws_docdb_cluster_parameter_group.metadata.name

  storage_encrypted = true
  kms_key_id        = aws_kms_key.main.arn

  backup_retention_period      = var.db_backup_retention_days
  preferred_backup_window      = "03:00-04:00"
  preferred_maintenance_window = "sun:04:30-sun:05:30"
  deletion_protection          = var.deletion_protection
  skip_final_snapshot          = false
  final_snapshot_identifier    = "${local.name}-metadata-final"
  apply_immediately            = false

  enabled_cloudwatch_logs_exports = ["audit", "profiler"]

  depends_on = [aws_cloudwatch_log_group.docdb]
}

resource "aws_docdb_cluster_instance" "metadata" {
  count = var.docdb_instance_count

  identifier                 = "${local.name}-metadata-${count.index}"
  cluster_identifier         = aws_docdb_cluster.metadata.id
  instance_class             = var.docdb_instance_class
  auto_minor_version_upgrade = true
}

resource "aws_cloudwatch_log_group" "docdb" {
  for_each = toset(["audit", "profiler"])

  name              = "/aws/docdb/${local.name}-metadata/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}
