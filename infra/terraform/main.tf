# Names, shared values and look-ups used across the files.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# Zones are picked by name (not "the first two of whatever exists"), so the set never changes
# under a running deployment when AWS adds a zone.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = length(var.availability_zones) > 0 ? var.availability_zones : ["${var.region}a", "${var.region}b", "${var.region}c"]
  }
}

locals {
  name       = "${var.project}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  azs        = slice(sort(data.aws_availability_zones.selected.names), 0, 2)

  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  # Storage key prefixes in the media bucket. Broadcasts (CAUDAL_INGEST_MEDIA_PREFIX) and the
  # uploads' VOD ladders (CAUDAL_WORKER_OUTPUT_PREFIX) are served under playback tokens;
  # originals of uploads are written by bff under uploads/<id>/ (fixed in bff's code) and never
  # served (the media bucket policy denies CloudFront that prefix).
  media_prefix   = "live"
  vod_prefix     = "vod"
  uploads_prefix = "uploads"

  # Internal service discovery (Cloud Map private DNS): <service>.<namespace>
  namespace        = "${var.project}.internal"
  user_svc_url     = "http://user-svc.${local.namespace}:8082"
  metadata_svc_url = "http://metadata-svc.${local.namespace}:8083"
  # The job queue (NATS JetStream, queue.tf): the URLs of all three servers, comma-separated,
  # built from the names queue.tf registers in Cloud Map. The jobs crate's client connects to
  # any of them that answers (a task starting while nats-1 is down no longer waits for it),
  # learns the cluster from it and reconnects to whichever server is up.
  nats_url = join(",", [for n in sort(local.nats_nodes) : "nats://${n}.${local.namespace}:4222"])
  # JetStream replicas of the work and dead-letter streams: a copy on each of the three servers,
  # so losing one loses no job. bff, ingest-rtmp and the worker all get this one value: each
  # creates or updates the streams with its own configuration.
  nats_replicas = 3

  # Public URLs: the site (pages, /v1 API, media) is served by CloudFront.
  site_domain = length(var.site_aliases) > 0 ? var.site_aliases[0] : aws_cloudfront_distribution.main.domain_name
  site_url    = "https://${local.site_domain}"
  rtmp_host   = var.rtmp_domain_name != "" ? var.rtmp_domain_name : aws_lb.rtmp.dns_name
  rtmp_url    = "rtmp://${local.rtmp_host}:1935/live"
  rtmps_url   = var.rtmps_certificate_arn != "" ? "rtmps://${local.rtmp_host}:443/live" : ""

  rtmps_enabled = var.rtmps_certificate_arn != ""
}
