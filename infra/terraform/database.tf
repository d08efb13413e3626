# Databases, both in the database subnets (no route out of the VPC), encrypted with the
# stack's KMS key, reachable only from their one service's security group.
#   RDS MariaDB  -> user-svc     (users, stream keys, subscriptions, purchases, ledger)
#   DocumentDB   -> metadata-svc (the video catalog; MongoDB API)
# With cross_region_replication, each has a copy in replica_region (encrypted with that region's
# key, in its database subnets): a MariaDB cross-region read replica (binlog replication,
# asynchronous) and a DocumentDB global cluster whose secondary cluster replicates at the
# storage layer (typically under a second behind). Neither takes over by itself: promoting the
# replica and failing over the global cluster are manual (README, "Second region").

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

# --- MariaDB read replica (second region) ---------------------------------------------------
# Its own subnet group, parameter group (same settings), key and log groups in replica_region.
# Backups and Multi-AZ as the primary, so that a promoted replica is a production database.

resource "aws_db_subnet_group" "replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  name        = "${local.name}-replica-database"
  description = "Database subnets of ${local.name} in ${var.replica_region} (no internet route)"
  subnet_ids  = aws_subnet.replica_database[*].id
}

resource "aws_db_parameter_group" "user_replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  name_prefix = "${local.name}-mariadb-"
  description = "MariaDB settings for user-svc (read replica; same as the primary's)"
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

# engine, version, database name, user and password come from the source. RDS refuses a final
# snapshot of a read replica; the primary keeps its own.
resource "aws_db_instance" "user_replica" {
  #checkov:skip=CKV2_AWS_69:Encryption in transit (require_secure_transport) would lock user-svc out after a promotion, as on the primary: its sqlx is built without a TLS feature.
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  identifier          = "${local.name}-user-replica"
  replicate_source_db = aws_db_instance.user.arn
  instance_class      = var.db_instance_class

  max_allocated_storage = var.db_max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.replica[0].arn

  db_subnet_group_name   = aws_db_subnet_group.replica[0].name
  vpc_security_group_ids = [aws_security_group.replica_rds[0].id]
  publicly_accessible    = false
  multi_az               = var.db_multi_az
  parameter_group_name   = aws_db_parameter_group.user_replica[0].name

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  allow_major_version_upgrade         = false
  apply_immediately                   = false
  maintenance_window                  = "sun:04:30-sun:05:30"

  backup_retention_period = var.db_backup_retention_days
  backup_window           = "03:00-04:00"
  copy_tags_to_snapshot   = true
  deletion_protection     = var.deletion_protection
  skip_final_snapshot     = true

  enabled_cloudwatch_logs_exports       = ["error", "slowquery"]
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.replica[0].arn
  performance_insights_retention_period = 7

  depends_on = [aws_cloudwatch_log_group.rds_replica]
}

resource "aws_cloudwatch_log_group" "rds_replica" {
  provider = aws.replica
  for_each = var.cross_region_replication ? toset(["error", "slowquery"]) : toset([])

  name              = "/aws/rds/instance/${local.name}-user-replica/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.replica[0].arn
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

  # The global cluster (below) is made from this cluster, which then reports it as its
  # global_cluster_identifier: setting it here would be a cycle, and leaving the difference
  # would make every plan try to detach the cluster.
  lifecycle {
    ignore_changes = [global_cluster_identifier]
  }

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

# --- DocumentDB global cluster (second region) ----------------------------------------------
# The metadata cluster above becomes the global cluster's primary; the secondary cluster is
# read-only, replicates at the storage layer and has one instance (add instances when it takes
# over). Global clusters take only r-family instance classes (var.docdb_instance_class).

resource "aws_docdb_global_cluster" "metadata" {
  count = var.cross_region_replication ? 1 : 0

  global_cluster_identifier    = "${local.name}-metadata"
  source_db_cluster_identifier = aws_docdb_cluster.metadata.arn
  storage_encrypted            = true
  deletion_protection          = var.deletion_protection

  # Creating a secondary needs the primary to have an instance.
  depends_on = [aws_docdb_cluster_instance.metadata]
}

resource "aws_docdb_subnet_group" "replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  name        = "${local.name}-replica-docdb"
  description = "Database subnets of ${local.name} in ${var.replica_region} (no internet route)"
  subnet_ids  = aws_subnet.replica_database[*].id
}

resource "aws_docdb_cluster_parameter_group" "metadata_replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  name_prefix = "${local.name}-docdb-"
  description = "DocumentDB settings for metadata-svc (secondary cluster; same as the primary's)"
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

# No master user or password: a secondary takes them from the global cluster. No final
# snapshot: it holds the primary's data, which keeps its own.
resource "aws_docdb_cluster" "metadata_replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  cluster_identifier        = "${local.name}-metadata-replica"
  global_cluster_identifier = aws_docdb_global_cluster.metadata[0].id
  engine                    = "docdb"
  engine_version            = var.docdb_engine_version
  port                      = 27017

  db_subnet_group_name            = aws_docdb_subnet_group.replica[0].name
  vpc_security_group_ids          = [aws_security_group.replica_docdb[0].id]
  db_cluster_parameter_group_name = aws_docdb_cluster_parameter_group.metadata_replica[0].name

  storage_encrypted = true
  kms_key_id        = aws_kms_key.replica[0].arn

  backup_retention_period      = var.db_backup_retention_days
  preferred_backup_window      = "03:00-04:00"
  preferred_maintenance_window = "sun:04:30-sun:05:30"
  deletion_protection          = var.deletion_protection
  skip_final_snapshot          = true
  apply_immediately            = false

  enabled_cloudwatch_logs_exports = ["audit", "profiler"]

  depends_on = [aws_cloudwatch_log_group.docdb_replica]
}

resource "aws_docdb_cluster_instance" "metadata_replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  identifier                 = "${local.name}-metadata-replica-${count.index}"
  cluster_identifier         = aws_docdb_cluster.metadata_replica[0].id
  instance_class             = var.docdb_instance_class
  auto_minor_version_upgrade = true
}

resource "aws_cloudwatch_log_group" "docdb_replica" {
  provider = aws.replica
  for_each = var.cross_region_replication ? toset(["audit", "profiler"]) : toset([])

  name              = "/aws/docdb/${local.name}-metadata-replica/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.replica[0].arn
}
