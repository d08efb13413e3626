# What operators and streamers need after `terraform apply`.

output "rtmp_url" {
  description = "RTMP server URL for OBS (\"Server\"); the stream key is the user's key from the studio."
  value       = local.rtmp_url
}

output "rtmps_url" {
  description = "RTMPS server URL for OBS when rtmps_certificate_arn is set (empty otherwise)."
  value       = local.rtmps_url
}

output "cloudfront_domain_name" {
  description = "CloudFront domain serving the pages, the API and the HLS media (point site_aliases here)."
  value       = aws_cloudfront_distribution.main.domain_name
}

output "site_url" {
  description = "Public URL of the site (first site alias, else the CloudFront domain)."
  value       = local.site_url
}

output "api_url" {
  description = "Base URL of the /v1 API used by the web and mobile apps."
  value       = "${local.site_url}/v1"
}

output "playback_url_example" {
  description = "Shape of a live stream's master playlist URL as bff hands it out: media is served only under a playback token (posters excepted)."
  value       = "${local.site_url}/p/<kid>.<exp>.<sig>/${local.media_prefix}/<video id>/master.m3u8"
}

output "playback_key_store_arn" {
  description = "CloudFront key value store holding the playback token keys (kid -> secret)."
  value       = aws_cloudfront_key_value_store.playback_keys.arn
}

output "alb_dns_name" {
  description = "DNS name of the bff ALB: origin_domain_name must resolve to it (alias/CNAME)."
  value       = aws_lb.app.dns_name
}

output "nlb_dns_name" {
  description = "DNS name of the RTMP NLB: rtmp_domain_name, when set, must resolve to it."
  value       = aws_lb.rtmp.dns_name
}

output "media_bucket" {
  description = "S3 bucket holding segments, playlists and recordings."
  value       = aws_s3_bucket.media.id
}

output "logs_bucket" {
  description = "S3 bucket receiving CloudFront, ALB and S3 access logs."
  value       = aws_s3_bucket.logs.id
}

output "ecs_cluster_name" {
  description = "ECS cluster running the five services and the three NATS servers."
  value       = aws_ecs_cluster.main.name
}

output "job_queue_url" {
  description = "NATS URLs of the three servers, comma-separated (JetStream job queue), bff, ingest-rtmp and the transcode worker connect to; reachable only from their security groups."
  value       = local.nats_url
}

output "mariadb_endpoint" {
  description = "RDS MariaDB endpoint (private; user-svc only)."
  value       = aws_db_instance.user.endpoint
}

output "docdb_endpoint" {
  description = "DocumentDB cluster endpoint (private; metadata-svc only)."
  value       = aws_docdb_cluster.metadata.endpoint
}

# The copies in replica_region (null without cross_region_replication).

output "media_replica_bucket" {
  description = "S3 bucket in replica_region holding the replica of the media bucket (CloudFront's failover origin)."
  value       = one(aws_s3_bucket.media_replica[*].id)
}

output "mariadb_replica_endpoint" {
  description = "Endpoint of the MariaDB cross-region read replica in replica_region (private; read-only until promoted)."
  value       = one(aws_db_instance.user_replica[*].endpoint)
}

output "docdb_replica_endpoint" {
  description = "Cluster endpoint of DocumentDB's secondary cluster in replica_region (private; read-only until the global cluster fails over to it)."
  value       = one(aws_docdb_cluster.metadata_replica[*].endpoint)
}

output "docdb_global_cluster_id" {
  description = "DocumentDB global cluster (failover-global-cluster / switchover-global-cluster take it)."
  value       = one(aws_docdb_global_cluster.metadata[*].id)
}

output "secret_arns" {
  description = "Secrets Manager secrets handed to the services."
  value = {
    jwt_secret         = aws_secretsmanager_secret.jwt.arn
    user_database_url  = aws_secretsmanager_secret.user_database_url.arn
    metadata_mongo_url = aws_secretsmanager_secret.metadata_mongo_url.arn
    playback_keys      = aws_secretsmanager_secret.playback_keys.arn
  }
}
