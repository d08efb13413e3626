# Redis (ElastiCache) for ingest-rtmp's shared state: one publisher per stream key across
# every ingest task (key leases, SET NX PX), and heartbeats that let a surviving task finish
# the broadcasts of a task that died (see the README's live path, step 9). Small, in the
# database subnets, reachable from ingest only. Its data is seconds-lived: no backups needed.

resource "aws_elasticache_subnet_group" "ingest_state" {
  name       = "${local.name}-ingest-state"
  subnet_ids = aws_subnet.database[*].id
}

resource "aws_elasticache_replication_group" "ingest_state" {
  #checkov:skip=CKV_AWS_30:ingest-rtmp's Redis client is built without TLS (like user-svc's MariaDB client, see CKV2_AWS_69); the group is in the database subnets and reachable from ingest's security group only. Enable transit encryption with a rediss:// URL once the client has a TLS feature.
  #checkov:skip=CKV_AWS_31:An AUTH token needs transit encryption (CKV_AWS_30); access is limited by security group meanwhile.
  replication_group_id       = "${local.name}-ingest-state"
  description                = "ingest-rtmp shared state: stream-key leases and broadcast heartbeats"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.ingest_state_node_type
  port                       = 6379
  num_cache_clusters         = 2
  automatic_failover_enabled = true
  multi_az_enabled           = true
  subnet_group_name          = aws_elasticache_subnet_group.ingest_state.name
  security_group_ids         = [aws_security_group.ingest_state.id]
  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.main.arn
  transit_encryption_enabled = false
  auto_minor_version_upgrade = true
  snapshot_retention_limit   = 0
  apply_immediately          = false

  tags = { Name = "${local.name}-ingest-state" }
}
