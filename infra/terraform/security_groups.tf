# Security groups: one per role, every rule names its peer group (least privilege).
#
#   internet --1935 (443 RTMPS)--> nlb --1935, 8081 health--> ingest-rtmp
#   CloudFront --443--> alb --8080, 9080 health--> bff
#                           --8081--> ingest-rtmp (live origin of low-latency HLS)
#   ingest-rtmp --8081--> ingest-rtmp (a request for another instance's broadcast is forwarded)
#   bff, ingest-rtmp --8082--> user-svc     --3306-->  rds        (MariaDB)
#   bff, ingest-rtmp, worker --8083--> metadata-svc --27017--> docdb      (DocumentDB)
#   bff, ingest-rtmp, worker --4222--> nats (job queue); nats --6222--> nats (routes),
#                            nats --8222--> nats (monitoring: nothing else reaches it)
#   nats --2049--> efs (JetStream files)
#   every task --443--> AWS APIs / image registry (through NAT; S3 through the gateway endpoint)
#   replica region: replica_rds, replica_docdb admit nothing (no service runs there; the copies
#   replicate over AWS's links). A failover that moves the services there adds their rules.

data "aws_ec2_managed_prefix_list" "cloudfront" {
  name = "com.amazonaws.global.cloudfront.origin-facing"
}

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "bff ALB: HTTPS from CloudFront origin-facing addresses only"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-alb" }
}

resource "aws_security_group" "nlb" {
  name        = "${local.name}-nlb"
  description = "RTMP NLB: publishers from rtmp_allowed_cidrs"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-nlb" }
}

resource "aws_security_group" "bff" {
  name        = "${local.name}-bff"
  description = "bff tasks"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-bff" }
}

resource "aws_security_group" "user_svc" {
  name        = "${local.name}-user-svc"
  description = "user-svc tasks"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-user-svc" }
}

resource "aws_security_group" "metadata_svc" {
  name        = "${local.name}-metadata-svc"
  description = "metadata-svc tasks"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-metadata-svc" }
}

resource "aws_security_group" "ingest" {
  name        = "${local.name}-ingest-rtmp"
  description = "ingest-rtmp tasks (RTMP server and transcoder)"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-ingest-rtmp" }
}

resource "aws_security_group" "worker" {
  name        = "${local.name}-transcoder-worker"
  description = "transcode worker tasks: no ingress"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-transcoder-worker" }
}

resource "aws_security_group" "nats" {
  name        = "${local.name}-nats"
  description = "NATS job queue: 4222 from bff, ingest-rtmp and the worker; 6222 and 8222 between the servers"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-nats" }
}

resource "aws_security_group" "efs" {
  name        = "${local.name}-nats-efs"
  description = "EFS of the NATS servers: 2049 from them only"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-nats-efs" }
}

resource "aws_security_group" "rds" {
  name        = "${local.name}-rds"
  description = "MariaDB: 3306 from user-svc only"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-rds" }
}

resource "aws_security_group" "ingest_state" {
  name        = "${local.name}-ingest-state"
  description = "Redis (ingest shared state): 6379 from ingest-rtmp only"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-ingest-state" }
}

resource "aws_security_group" "docdb" {
  name        = "${local.name}-docdb"
  description = "DocumentDB: 27017 from metadata-svc only"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-docdb" }
}

# --- ALB -----------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "alb_https_from_cloudfront" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from CloudFront origin-facing servers"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = data.aws_ec2_managed_prefix_list.cloudfront.id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_bff" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Requests to bff"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  referenced_security_group_id = aws_security_group.bff.id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_bff_health" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Health checks of bff (/healthz on the metrics port)"
  ip_protocol                  = "tcp"
  from_port                    = 9080
  to_port                      = 9080
  referenced_security_group_id = aws_security_group.bff.id
}

# --- NLB -----------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "nlb_rtmp" {
  for_each = toset(var.rtmp_allowed_cidrs)

  security_group_id = aws_security_group.nlb.id
  description       = "RTMP publishers"
  ip_protocol       = "tcp"
  from_port         = 1935
  to_port           = 1935
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "nlb_rtmps" {
  for_each = local.rtmps_enabled ? toset(var.rtmp_allowed_cidrs) : toset([])

  security_group_id = aws_security_group.nlb.id
  description       = "RTMPS publishers (TLS terminated on the NLB)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_ingest" {
  security_group_id            = aws_security_group.nlb.id
  description                  = "RTMP to ingest-rtmp"
  ip_protocol                  = "tcp"
  from_port                    = 1935
  to_port                      = 1935
  referenced_security_group_id = aws_security_group.ingest.id
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_ingest_health" {
  security_group_id            = aws_security_group.nlb.id
  description                  = "Health checks of ingest-rtmp (/healthz)"
  ip_protocol                  = "tcp"
  from_port                    = 8081
  to_port                      = 8081
  referenced_security_group_id = aws_security_group.ingest.id
}

# --- bff -----------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "bff_from_alb" {
  security_group_id            = aws_security_group.bff.id
  description                  = "API and pages from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "bff_health_from_alb" {
  security_group_id            = aws_security_group.bff.id
  description                  = "Health checks from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = 9080
  to_port                      = 9080
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "bff_to_user_svc" {
  security_group_id            = aws_security_group.bff.id
  description                  = "Calls to user-svc"
  ip_protocol                  = "tcp"
  from_port                    = 8082
  to_port                      = 8082
  referenced_security_group_id = aws_security_group.user_svc.id
}

resource "aws_vpc_security_group_egress_rule" "bff_to_metadata_svc" {
  security_group_id            = aws_security_group.bff.id
  description                  = "Calls to metadata-svc"
  ip_protocol                  = "tcp"
  from_port                    = 8083
  to_port                      = 8083
  referenced_security_group_id = aws_security_group.metadata_svc.id
}

# --- ingest-rtmp ---------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "ingest_rtmp_from_nlb" {
  security_group_id            = aws_security_group.ingest.id
  description                  = "RTMP from the NLB"
  ip_protocol                  = "tcp"
  from_port                    = 1935
  to_port                      = 1935
  referenced_security_group_id = aws_security_group.nlb.id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_ingest_origin" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Low-latency HLS requests (and health checks) to ingest's live origin"
  ip_protocol                  = "tcp"
  from_port                    = 8081
  to_port                      = 8081
  referenced_security_group_id = aws_security_group.ingest.id
}

resource "aws_vpc_security_group_ingress_rule" "ingest_origin_from_alb" {
  security_group_id            = aws_security_group.ingest.id
  description                  = "Low-latency HLS from the ALB (CloudFront)"
  ip_protocol                  = "tcp"
  from_port                    = 8081
  to_port                      = 8081
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "ingest_origin_from_ingest" {
  security_group_id            = aws_security_group.ingest.id
  description                  = "Live-origin requests forwarded by another ingest instance"
  ip_protocol                  = "tcp"
  from_port                    = 8081
  to_port                      = 8081
  referenced_security_group_id = aws_security_group.ingest.id
}

resource "aws_vpc_security_group_egress_rule" "ingest_to_ingest_origin" {
  security_group_id            = aws_security_group.ingest.id
  description                  = "Live-origin requests forwarded to the instance running the broadcast"
  ip_protocol                  = "tcp"
  from_port                    = 8081
  to_port                      = 8081
  referenced_security_group_id = aws_security_group.ingest.id
}

resource "aws_vpc_security_group_ingress_rule" "ingest_health_from_nlb" {
  security_group_id            = aws_security_group.ingest.id
  description                  = "Health checks from the NLB"
  ip_protocol                  = "tcp"
  from_port                    = 8081
  to_port                      = 8081
  referenced_security_group_id = aws_security_group.nlb.id
}

resource "aws_vpc_security_group_egress_rule" "ingest_to_user_svc" {
  security_group_id            = aws_security_group.ingest.id
  description                  = "Stream-key checks at user-svc"
  ip_protocol                  = "tcp"
  from_port                    = 8082
  to_port                      = 8082
  referenced_security_group_id = aws_security_group.user_svc.id
}

resource "aws_vpc_security_group_egress_rule" "ingest_to_metadata_svc" {
  security_group_id            = aws_security_group.ingest.id
  description                  = "Broadcast records at metadata-svc"
  ip_protocol                  = "tcp"
  from_port                    = 8083
  to_port                      = 8083
  referenced_security_group_id = aws_security_group.metadata_svc.id
}

resource "aws_vpc_security_group_egress_rule" "ingest_to_state" {
  security_group_id            = aws_security_group.ingest.id
  description                  = "Key leases and heartbeats in Redis"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = aws_security_group.ingest_state.id
}

resource "aws_vpc_security_group_ingress_rule" "ingest_state_from_ingest" {
  security_group_id            = aws_security_group.ingest_state.id
  description                  = "Redis from ingest-rtmp"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = aws_security_group.ingest.id
}

# --- user-svc ------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "user_svc_from_bff" {
  security_group_id            = aws_security_group.user_svc.id
  description                  = "API calls from bff"
  ip_protocol                  = "tcp"
  from_port                    = 8082
  to_port                      = 8082
  referenced_security_group_id = aws_security_group.bff.id
}

resource "aws_vpc_security_group_ingress_rule" "user_svc_from_ingest" {
  security_group_id            = aws_security_group.user_svc.id
  description                  = "Stream-key checks from ingest-rtmp"
  ip_protocol                  = "tcp"
  from_port                    = 8082
  to_port                      = 8082
  referenced_security_group_id = aws_security_group.ingest.id
}

resource "aws_vpc_security_group_egress_rule" "user_svc_to_rds" {
  security_group_id            = aws_security_group.user_svc.id
  description                  = "MariaDB"
  ip_protocol                  = "tcp"
  from_port                    = 3306
  to_port                      = 3306
  referenced_security_group_id = aws_security_group.rds.id
}

# --- metadata-svc --------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "metadata_svc_from_bff" {
  security_group_id            = aws_security_group.metadata_svc.id
  description                  = "Catalog calls from bff"
  ip_protocol                  = "tcp"
  from_port                    = 8083
  to_port                      = 8083
  referenced_security_group_id = aws_security_group.bff.id
}

resource "aws_vpc_security_group_ingress_rule" "metadata_svc_from_worker" {
  security_group_id            = aws_security_group.metadata_svc.id
  description                  = "Video status, renditions and pictures from the transcode worker"
  ip_protocol                  = "tcp"
  from_port                    = 8083
  to_port                      = 8083
  referenced_security_group_id = aws_security_group.worker.id
}

resource "aws_vpc_security_group_ingress_rule" "metadata_svc_from_ingest" {
  security_group_id            = aws_security_group.metadata_svc.id
  description                  = "Broadcast records from ingest-rtmp"
  ip_protocol                  = "tcp"
  from_port                    = 8083
  to_port                      = 8083
  referenced_security_group_id = aws_security_group.ingest.id
}

resource "aws_vpc_security_group_egress_rule" "metadata_svc_to_docdb" {
  security_group_id            = aws_security_group.metadata_svc.id
  description                  = "DocumentDB"
  ip_protocol                  = "tcp"
  from_port                    = 27017
  to_port                      = 27017
  referenced_security_group_id = aws_security_group.docdb.id
}

# --- transcode worker: no ingress; calls metadata-svc and the queue -------------------------

resource "aws_vpc_security_group_egress_rule" "worker_to_metadata_svc" {
  security_group_id            = aws_security_group.worker.id
  description                  = "Video status, renditions and pictures at metadata-svc"
  ip_protocol                  = "tcp"
  from_port                    = 8083
  to_port                      = 8083
  referenced_security_group_id = aws_security_group.metadata_svc.id
}

# --- job queue (NATS): clients on 4222, the servers among themselves on 6222 and 8222 ---------

locals {
  nats_clients = {
    bff               = aws_security_group.bff.id
    ingest-rtmp       = aws_security_group.ingest.id
    transcoder-worker = aws_security_group.worker.id
  }
}

resource "aws_vpc_security_group_ingress_rule" "nats_from_clients" {
  for_each = local.nats_clients

  security_group_id            = aws_security_group.nats.id
  description                  = "NATS clients: ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = 4222
  to_port                      = 4222
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_egress_rule" "clients_to_nats" {
  for_each = local.nats_clients

  security_group_id            = each.value
  description                  = "Job queue (NATS)"
  ip_protocol                  = "tcp"
  from_port                    = 4222
  to_port                      = 4222
  referenced_security_group_id = aws_security_group.nats.id
}

resource "aws_vpc_security_group_ingress_rule" "nats_routes" {
  security_group_id            = aws_security_group.nats.id
  description                  = "Cluster routes from the other NATS servers"
  ip_protocol                  = "tcp"
  from_port                    = 6222
  to_port                      = 6222
  referenced_security_group_id = aws_security_group.nats.id
}

resource "aws_vpc_security_group_egress_rule" "nats_routes" {
  security_group_id            = aws_security_group.nats.id
  description                  = "Cluster routes to the other NATS servers"
  ip_protocol                  = "tcp"
  from_port                    = 6222
  to_port                      = 6222
  referenced_security_group_id = aws_security_group.nats.id
}

resource "aws_vpc_security_group_ingress_rule" "nats_monitoring" {
  security_group_id            = aws_security_group.nats.id
  description                  = "NATS monitoring (/healthz, /jsz) from the NATS servers only"
  ip_protocol                  = "tcp"
  from_port                    = 8222
  to_port                      = 8222
  referenced_security_group_id = aws_security_group.nats.id
}

resource "aws_vpc_security_group_egress_rule" "nats_monitoring" {
  security_group_id            = aws_security_group.nats.id
  description                  = "NATS monitoring of the other servers"
  ip_protocol                  = "tcp"
  from_port                    = 8222
  to_port                      = 8222
  referenced_security_group_id = aws_security_group.nats.id
}

resource "aws_vpc_security_group_egress_rule" "nats_to_efs" {
  security_group_id            = aws_security_group.nats.id
  description                  = "JetStream files on EFS (NFS over TLS)"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.efs.id
}

resource "aws_vpc_security_group_ingress_rule" "efs_from_nats" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from the NATS servers"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.nats.id
}

# --- every task: HTTPS out (image pulls, Secrets Manager, CloudWatch Logs, S3, EFS IAM) ------

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  for_each = {
    bff               = aws_security_group.bff.id
    user-svc          = aws_security_group.user_svc.id
    metadata-svc      = aws_security_group.metadata_svc.id
    ingest-rtmp       = aws_security_group.ingest.id
    transcoder-worker = aws_security_group.worker.id
    nats              = aws_security_group.nats.id
  }

  security_group_id = each.value
  description       = "HTTPS to AWS APIs and the image registry"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# --- databases: only the owning service gets in; no egress rules at all --------------------

resource "aws_vpc_security_group_ingress_rule" "rds_from_user_svc" {
  security_group_id            = aws_security_group.rds.id
  description                  = "MariaDB from user-svc"
  ip_protocol                  = "tcp"
  from_port                    = 3306
  to_port                      = 3306
  referenced_security_group_id = aws_security_group.user_svc.id
}

resource "aws_vpc_security_group_ingress_rule" "docdb_from_metadata_svc" {
  security_group_id            = aws_security_group.docdb.id
  description                  = "DocumentDB from metadata-svc"
  ip_protocol                  = "tcp"
  from_port                    = 27017
  to_port                      = 27017
  referenced_security_group_id = aws_security_group.metadata_svc.id
}

# --- second region: the database copies, closed ------------------------------------------

resource "aws_security_group" "replica_rds" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  name        = "${local.name}-replica-rds"
  description = "MariaDB read replica: no ingress until services run in this region"
  vpc_id      = aws_vpc.replica[0].id

  tags = { Name = "${local.name}-replica-rds" }
}

resource "aws_security_group" "replica_docdb" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  name        = "${local.name}-replica-docdb"
  description = "DocumentDB secondary cluster: no ingress until services run in this region"
  vpc_id      = aws_vpc.replica[0].id

  tags = { Name = "${local.name}-replica-docdb" }
}
