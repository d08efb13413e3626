# Every input of the deployment. Only the three without a default must be set
# (container_images, origin_domain_name, alb_certificate_arn); see terraform.tfvars.example.

# --- naming and placement -----------------------------------------------------------------

variable "region" {
  description = "AWS region of everything except CloudFront (global), its certificate (us-east-1) and the copies in replica_region."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "The region must look like eu-west-1."
  }
}

variable "project" {
  description = "Name prefix of every resource (lowercase letters, digits and dashes). Short: load balancer and target group names (\"<project>-<environment>-rtmp\") may have at most 32 characters."
  type        = string
  default     = "caudal"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,10}[a-z0-9]$", var.project))
    error_message = "The project must be 2-12 lowercase letters, digits or dashes, starting with a letter and not ending with a dash."
  }
}

variable "environment" {
  description = "Environment name, part of every resource name (prod, staging, ...)."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.environment))
    error_message = "The environment must be 2-8 lowercase letters or digits, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags put on every resource (on top of Project, Environment and ManagedBy)."
  type        = map(string)
  default     = {}
}

# --- network -------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR of the VPC; /16 to /20. Six /24-or-smaller subnets are cut from it (public, app, database in two AZs)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "The vpc_cidr must be a valid IPv4 CIDR between /16 and /20."
  }
}

variable "availability_zones" {
  description = "The two availability zones to use, e.g. [\"eu-west-1a\", \"eu-west-1b\"]. Empty: the first two available of <region>a, b and c."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || length(var.availability_zones) == 2
    error_message = "The availability_zones must be empty or name exactly two zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for both AZs (cheaper; the app subnets lose egress if that AZ fails) instead of one per AZ."
  type        = bool
  default     = false
}

# --- second region -------------------------------------------------------------------------

variable "cross_region_replication" {
  description = "Keep a copy of the data in replica_region: the media bucket replicates there (CloudFront falls back to the copy), MariaDB has a read replica there and DocumentDB a secondary cluster (global cluster). Needs DocumentDB instance classes of the r families (docdb_instance_class). See README, \"Second region\"."
  type        = bool
  default     = true
}

# Terraform 1.0 cannot compare two variables: replica_region must differ from region (a copy in
# the same region does not outlive the region, and DocumentDB refuses a secondary cluster there).
variable "replica_region" {
  description = "Second AWS region, holding the copies (cross_region_replication); must differ from region."
  type        = string
  default     = "eu-central-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.replica_region))
    error_message = "The replica_region must look like eu-central-1."
  }
}

variable "replica_vpc_cidr" {
  description = "CIDR of the replica region's VPC (database subnets only); /16 to /20. Keep it apart from vpc_cidr so that the two can be peered."
  type        = string
  default     = "10.41.0.0/16"

  validation {
    condition     = can(cidrhost(var.replica_vpc_cidr, 0)) && tonumber(split("/", var.replica_vpc_cidr)[1]) >= 16 && tonumber(split("/", var.replica_vpc_cidr)[1]) <= 20
    error_message = "The replica_vpc_cidr must be a valid IPv4 CIDR between /16 and /20."
  }
}

# --- containers ----------------------------------------------------------------------------

variable "container_images" {
  description = "Image of each service (registry/repo:tag or @sha256 digest). The ingest-rtmp image also runs the live transcoder (ffmpeg libraries inside); transcoder is the transcode worker's image (infra/containers/transcoder.Containerfile, run as `transcoder worker`)."
  type = object({
    bff          = string
    user_svc     = string
    metadata_svc = string
    ingest_rtmp  = string
    transcoder   = string
  })

  validation {
    condition = alltrue([
      for image in [var.container_images.bff, var.container_images.user_svc, var.container_images.metadata_svc, var.container_images.ingest_rtmp, var.container_images.transcoder] :
      length(trimspace(image)) > 0 && !can(regex("\\s", image))
    ])
    error_message = "Every container image must be a non-empty image reference without spaces."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the Fargate tasks: X86_64 or ARM64 (the images must match)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "The cpu_architecture must be X86_64 or ARM64."
  }
}

variable "service_sizes" {
  description = "Fargate CPU units, memory (MiB) and task count of each service. Transcoding is CPU-bound: one 1080p source with the full ladder needs about 4 vCPU with x264 veryfast."
  type = map(object({
    cpu           = number
    memory        = number
    desired_count = number
  }))
  default = {
    "bff"          = { cpu = 512, memory = 1024, desired_count = 2 }
    "user-svc"     = { cpu = 512, memory = 1024, desired_count = 2 }
    "metadata-svc" = { cpu = 512, memory = 1024, desired_count = 2 }
    "ingest-rtmp"  = { cpu = 4096, memory = 8192, desired_count = 2 }
  }

  validation {
    condition = (
      length(var.service_sizes) == 4 &&
      alltrue([for name in ["bff", "user-svc", "metadata-svc", "ingest-rtmp"] : contains(keys(var.service_sizes), name)]) &&
      alltrue([for s in values(var.service_sizes) : contains([256, 512, 1024, 2048, 4096, 8192, 16384], s.cpu) && s.memory >= 512 && s.desired_count >= 0])
    )
    error_message = "The service_sizes must have exactly bff, user-svc, metadata-svc and ingest-rtmp, each with a Fargate cpu value (256..16384), memory >= 512 and desired_count >= 0."
  }
}

variable "worker_size" {
  description = "The transcode worker (`transcoder worker`): Fargate CPU units, memory (MiB), task count, and ephemeral storage (GiB, 21-200) for the original it copies (up to bff's 20 GiB upload limit) and its segment spool. Each task transcodes one upload at a time, as fast as its CPUs allow."
  type = object({
    cpu           = number
    memory        = number
    desired_count = number
    ephemeral_gib = number
  })
  default = {
    cpu           = 2048
    memory        = 4096
    desired_count = 2
    ephemeral_gib = 100
  }

  validation {
    condition = (
      contains([1024, 2048, 4096, 8192, 16384], var.worker_size.cpu) &&
      var.worker_size.memory >= 2 * var.worker_size.cpu && var.worker_size.desired_count >= 0 &&
      var.worker_size.ephemeral_gib >= 21 && var.worker_size.ephemeral_gib <= 200
    )
    error_message = "The worker_size needs a Fargate cpu value of 1024..16384, memory of at least 2 MiB per CPU unit, desired_count >= 0 and ephemeral_gib between 21 and 200."
  }
}

variable "nats_image" {
  description = "Image of the job queue's NATS servers (JetStream). Pin a tag or digest; mirroring it into ECR avoids Docker Hub's pull limits on the NAT gateways' addresses. Default: the nats-server version crates/jobs is tested with (scripts/lib.sh)."
  type        = string
  default     = "nats:2.15.1-alpine"

  validation {
    condition     = length(trimspace(var.nats_image)) > 0 && !can(regex("\\s", var.nats_image)) && !can(regex(":latest$", var.nats_image))
    error_message = "The nats_image must be a pinned image reference (a tag other than latest, or a digest) without spaces."
  }
}

variable "nats_size" {
  description = "Fargate CPU units and memory (MiB) of each of the three NATS servers. The queue holds a few small messages per upload and recording."
  type = object({
    cpu    = number
    memory = number
  })
  default = {
    cpu    = 256
    memory = 512
  }

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.nats_size.cpu) && var.nats_size.memory >= 512
    error_message = "The nats_size needs a Fargate cpu value (256..4096) and memory >= 512."
  }
}

variable "ingest_state_node_type" {
  description = "ElastiCache node type of ingest's shared state (key leases and heartbeats: a few small keys per live broadcast)."
  type        = string
  default     = "cache.t4g.micro"

  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.ingest_state_node_type))
    error_message = "The ingest_state_node_type must be an ElastiCache node type such as cache.t4g.micro."
  }
}

variable "ingest_max_publishers" {
  description = "Live publishers one ingest task accepts (CAUDAL_INGEST_MAX_PUBLISHERS; connections that have not published yet are bounded apart). Size it with service_sizes[\"ingest-rtmp\"].cpu: each live source runs its own ladder."
  type        = number
  default     = 1

  validation {
    condition     = var.ingest_max_publishers >= 1 && var.ingest_max_publishers <= 64
    error_message = "The ingest_max_publishers must be between 1 and 64."
  }
}

variable "hls_segment_secs" {
  description = "HLS segment duration in seconds (CAUDAL_INGEST_TRANSCODE__SEGMENT_SECS)."
  type        = number
  default     = 2

  validation {
    condition     = var.hls_segment_secs >= 1 && var.hls_segment_secs <= 10 && floor(var.hls_segment_secs) == var.hls_segment_secs
    error_message = "The hls_segment_secs must be a whole number between 1 and 10."
  }
}

variable "ll_part_secs" {
  description = "Low-latency HLS: the part length in seconds (CAUDAL_INGEST_TRANSCODE__PART_SECS; live segments become CMAF). 0 turns it off: standard HLS with MPEG-TS segments."
  type        = number
  default     = 0.5

  validation {
    condition     = var.ll_part_secs == 0 || (var.ll_part_secs >= 0.2 && var.ll_part_secs <= 1)
    error_message = "The ll_part_secs must be 0 (off) or between 0.2 and 1."
  }
}

variable "bff_forwarded_hops" {
  description = "Proxies in front of bff that append to X-Forwarded-For (CAUDAL_BFF_RATE_LIMIT__FORWARDED_HOPS): CloudFront then the ALB, 2. bff takes the client address for rate limits from the entry that many from the right, which CloudFront wrote; entries a client forged further left are ignored. 0 would put every client in the ALB nodes' buckets."
  type        = number
  default     = 2

  validation {
    condition     = var.bff_forwarded_hops >= 0 && var.bff_forwarded_hops <= 5 && floor(var.bff_forwarded_hops) == var.bff_forwarded_hops
    error_message = "The bff_forwarded_hops must be a whole number from 0 to 5."
  }
}

# --- public endpoints ----------------------------------------------------------------------

variable "origin_domain_name" {
  description = "Host name CloudFront uses to reach the ALB over HTTPS (e.g. origin.caudal.example). Point it at the alb_dns_name output (done for you when route53_zone_id is set); alb_certificate_arn must cover it."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.origin_domain_name))
    error_message = "The origin_domain_name must be a lowercase DNS name such as origin.caudal.example."
  }
}

variable "alb_certificate_arn" {
  description = "ACM certificate (in var.region) for origin_domain_name, served by the ALB's HTTPS listener."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.alb_certificate_arn))
    error_message = "The alb_certificate_arn must be an ACM certificate ARN."
  }
}

variable "site_aliases" {
  description = "Public host names of the site (pages, /v1 API and media all on CloudFront), e.g. [\"caudal.example\"]. Empty: the CloudFront domain is used. Needs cloudfront_certificate_arn."
  type        = list(string)
  default     = []
}

variable "cloudfront_certificate_arn" {
  description = "ACM certificate in us-east-1 covering site_aliases. Empty: CloudFront's default *.cloudfront.net certificate."
  type        = string
  default     = ""

  validation {
    condition     = var.cloudfront_certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/.+$", var.cloudfront_certificate_arn))
    error_message = "The cloudfront_certificate_arn must be empty or an ACM certificate ARN in us-east-1."
  }
}

variable "rtmp_domain_name" {
  description = "Host name streamers put in OBS (e.g. live.caudal.example), pointed at the NLB. Empty: the NLB's own DNS name."
  type        = string
  default     = ""
}

variable "rtmp_allowed_cidrs" {
  description = "IPv4 ranges allowed to reach the RTMP listener (publishers). Everyone by default: streamers publish from anywhere, stream keys are the authentication."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.rtmp_allowed_cidrs) > 0 && alltrue([for c in var.rtmp_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "The rtmp_allowed_cidrs must be a non-empty list of IPv4 CIDRs."
  }
}

variable "rtmps_certificate_arn" {
  description = "ACM certificate (in var.region) for rtmp_domain_name. When set, the NLB also terminates RTMPS on 443 (OBS: rtmps://HOST:443/live), so stream keys do not cross the internet in clear text."
  type        = string
  default     = ""

  validation {
    condition     = var.rtmps_certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.rtmps_certificate_arn))
    error_message = "The rtmps_certificate_arn must be empty or an ACM certificate ARN."
  }
}

variable "route53_zone_id" {
  description = "Public Route 53 zone holding origin_domain_name, rtmp_domain_name and site_aliases. Empty: create those DNS records yourself from the outputs."
  type        = string
  default     = ""
}

# --- CDN -----------------------------------------------------------------------------------

variable "cors_allowed_origins" {
  description = "Origins allowed to fetch playlists and segments cross-origin (Access-Control-Allow-Origin on media). [\"*\"] lets any site embed the player."
  type        = list(string)
  default     = ["*"]

  validation {
    condition     = length(var.cors_allowed_origins) > 0 && alltrue([for o in var.cors_allowed_origins : o == "*" || can(regex("^https?://[^/\\s]+$", o))])
    error_message = "Each CORS origin must be \"*\" or scheme://host[:port] without a path."
  }
}

variable "cloudfront_price_class" {
  description = "CloudFront price class: PriceClass_100 (NA/EU), PriceClass_200 or PriceClass_All."
  type        = string
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.cloudfront_price_class)
    error_message = "The cloudfront_price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "origin_shield_region" {
  description = "Region of CloudFront Origin Shield in front of the media bucket (usually var.region). Empty: no Origin Shield. Worth it with many viewers per stream: one origin fetch per segment instead of one per edge."
  type        = string
  default     = ""

  validation {
    condition     = var.origin_shield_region == "" || can(regex("^[a-z]{2}-[a-z]+-[0-9]$", var.origin_shield_region))
    error_message = "The origin_shield_region must be empty or a region such as eu-west-1."
  }
}

variable "cloudfront_web_acl_arn" {
  description = "ARN of a WAFv2 web ACL (scope CLOUDFRONT, us-east-1) to attach to the distribution. Empty: none."
  type        = string
  default     = ""
}

# One variable, so that the signing key id can be checked against the list (Terraform 1.0 cannot
# compare two variables).
variable "playback_keys" {
  description = "Playback token keys: key_ids are every key id (kid) CloudFront accepts and bff knows, signing_key_id the one bff signs with. Terraform generates a secret per id. Rotate by adding a new id, then switching signing_key_id, then removing the old id one token lifetime later (README \"Playback tokens\")."
  type = object({
    key_ids        = list(string)
    signing_key_id = string
  })
  default = {
    key_ids        = ["k1"]
    signing_key_id = "k1"
  }

  validation {
    condition = (
      length(var.playback_keys.key_ids) >= 1 && length(var.playback_keys.key_ids) <= 4 &&
      length(distinct(var.playback_keys.key_ids)) == length(var.playback_keys.key_ids) &&
      alltrue([for id in var.playback_keys.key_ids : can(regex("^[A-Za-z0-9_-]{1,16}$", id))]) &&
      contains(var.playback_keys.key_ids, var.playback_keys.signing_key_id)
    )
    error_message = "The playback_keys need 1 to 4 distinct key_ids of 1-16 A-Z a-z 0-9 _ -, and signing_key_id must be one of them."
  }
}

variable "playback_token_ttl_secs" {
  description = "How long a playback token handed out by bff opens its video, seconds (CAUDAL_BFF_PLAYBACK__TOKEN_TTL_SECS). The watch page renews it before it runs out; revoked access stops playback within this time. Also the wait between switching signing_key_id and removing the old key."
  type        = number
  default     = 300

  validation {
    condition     = var.playback_token_ttl_secs >= 10 && var.playback_token_ttl_secs <= 86400 && floor(var.playback_token_ttl_secs) == var.playback_token_ttl_secs
    error_message = "The playback_token_ttl_secs must be a whole number between 10 and 86400."
  }
}

# --- storage -------------------------------------------------------------------------------

variable "recordings_ia_after_days" {
  description = "Move media objects to S3 Standard-IA this many days after upload (by then a broadcast is a recording). 0 keeps everything in Standard."
  type        = number
  default     = 30

  validation {
    condition     = var.recordings_ia_after_days == 0 || var.recordings_ia_after_days >= 30
    error_message = "The recordings_ia_after_days must be 0 (off) or at least 30 (the S3 minimum for Standard-IA)."
  }
}

variable "media_noncurrent_days" {
  description = "Days a replaced or deleted media object version is kept. Live playlists are rewritten every segment, so keep this short."
  type        = number
  default     = 1

  validation {
    condition     = var.media_noncurrent_days >= 1 && var.media_noncurrent_days <= 365
    error_message = "The media_noncurrent_days must be between 1 and 365."
  }
}

variable "access_log_retention_days" {
  description = "Days S3 keeps CloudFront, ALB and S3 access logs in the logs bucket."
  type        = number
  default     = 90

  validation {
    condition     = var.access_log_retention_days >= 1
    error_message = "The access_log_retention_days must be positive."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps service, database and VPC flow logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ..., 365, ..., 3653)."
  }
}

# --- databases -----------------------------------------------------------------------------

variable "db_instance_class" {
  description = "RDS instance class of the MariaDB database (user-svc)."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_engine_version" {
  description = "MariaDB engine version (major.minor); the parameter group family follows it."
  type        = string
  default     = "10.11"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+(\\.[0-9]+)?$", var.db_engine_version))
    error_message = "The db_engine_version must look like 10.11 or 10.11.9."
  }
}

variable "db_allocated_storage_gb" {
  description = "Initial gp3 storage of the MariaDB instance, GiB; storage autoscaling may grow it to db_max_allocated_storage_gb."
  type        = number
  default     = 20

  validation {
    condition     = var.db_allocated_storage_gb >= 20
    error_message = "The db_allocated_storage_gb must be at least 20."
  }
}

variable "db_max_allocated_storage_gb" {
  description = "Upper bound of MariaDB storage autoscaling, GiB."
  type        = number
  default     = 200
}

variable "db_multi_az" {
  description = "Run MariaDB with a synchronous standby in the second AZ."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery) for MariaDB and DocumentDB."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 7 && var.db_backup_retention_days <= 35
    error_message = "The db_backup_retention_days must be between 7 and 35."
  }
}

variable "docdb_instance_class" {
  description = "Instance class of the DocumentDB instances (metadata-svc), in both regions. A global cluster (cross_region_replication) takes only memory-optimised classes (db.r5, db.r6g, ...); the burstable db.t3/db.t4g classes work only without it."
  type        = string
  default     = "db.r6g.large"
}

variable "docdb_instance_count" {
  description = "DocumentDB instances: one writer, the rest readers in other AZs (2 or more for failover)."
  type        = number
  default     = 2

  validation {
    condition     = var.docdb_instance_count >= 1 && var.docdb_instance_count <= 16
    error_message = "The docdb_instance_count must be between 1 and 16."
  }
}

variable "docdb_engine_version" {
  description = "DocumentDB engine version (MongoDB API compatibility)."
  type        = string
  default     = "5.0.0"

  validation {
    condition     = contains(["4.0.0", "5.0.0"], var.docdb_engine_version)
    error_message = "The docdb_engine_version must be 4.0.0 or 5.0.0 (the parameter group family follows it)."
  }
}

variable "docdb_ca_file" {
  description = "Path, inside the metadata-svc image, of the Amazon RDS CA bundle (global-bundle.pem) DocumentDB's TLS certificate chains to."
  type        = string
  default     = "/etc/ssl/certs/rds-global-bundle.pem"
}

variable "deletion_protection" {
  description = "Deletion protection on the databases and load balancers. Turn off only to tear an environment down."
  type        = bool
  default     = true
}

variable "payments_local_demo" {
  description = "Run user-svc with its local payment provider, which takes no real money (a demo deployment only). false: user-svc refuses to start until a real provider is configured; Caudal has none built in yet."
  type        = bool
  default     = false
}
