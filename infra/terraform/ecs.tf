# ECS on Fargate: one service per Caudal process, all in the app subnets without public IPs.
#   bff           <- ALB (target group bff); takes uploads (tus) into uploads/<id>/, queues jobs
#   ingest-rtmp   <- NLB (target group rtmp); runs the live transcoder in-process
#   user-svc, metadata-svc: internal only, found through Cloud Map DNS (<name>.<project>.internal)
#   transcoder-worker: `transcoder worker`, pulls jobs from the queue (NATS JetStream, queue.tf):
#                 uploads into vod/<id>/, posters and storyboards of recordings; nothing calls it
#
# Configuration is the services' own CAUDAL_* environment variables (README "Configuration");
# secrets come from Secrets Manager through the task definitions' `secrets`.

resource "aws_ecs_cluster" "main" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_service_discovery_private_dns_namespace" "internal" {
  name        = local.namespace
  description = "Internal service names of ${local.name}"
  vpc         = aws_vpc.main.id
}

resource "aws_service_discovery_service" "internal" {
  for_each = toset(["user-svc", "metadata-svc"])

  name = each.value

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.internal.id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }
}

resource "aws_cloudwatch_log_group" "service" {
  for_each = local.services

  name              = "/ecs/${local.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

locals {
  common_env = {
    CAUDAL_LOG_JSON = "1"
    RUST_LOG        = "info"
  }

  # CPU, memory and task count of every service: var.service_sizes, and the worker's own.
  service_sizes = merge(var.service_sizes, {
    "transcoder-worker" = {
      cpu           = var.worker_size.cpu
      memory        = var.worker_size.memory
      desired_count = var.worker_size.desired_count
    }
  })

  # The services that call AWS (S3) and their task roles (iam.tf); the others get none.
  task_roles = {
    "bff"               = aws_iam_role.bff_task.arn
    "ingest-rtmp"       = aws_iam_role.ingest_task.arn
    "transcoder-worker" = aws_iam_role.worker_task.arn
  }

  # Keys (not ARNs) so that which services sit behind a load balancer is known at plan time.
  target_groups = {
    bff  = aws_lb_target_group.bff.arn
    rtmp = aws_lb_target_group.rtmp.arn
    live = aws_lb_target_group.live_origin.arn
  }

  services = {
    "bff" = {
      image          = var.container_images.bff
      port           = 8080
      extra_ports    = [9080]
      security_group = aws_security_group.bff.id
      target_group   = "bff"
      # a second target group (and container port) the tasks register in
      extra_target_group = ""
      extra_target_port  = 0
      discovery          = false
      stop_timeout       = 30
      ephemeral_gib      = 0
      # writable folders on the task's ephemeral storage, mounted at /<name>
      volumes = []
      # fields of the container definition beyond the common ones (e.g. command)
      container_overrides = {}
      env = {
        CAUDAL_BFF_LISTEN                     = "0.0.0.0:8080"
        CAUDAL_BFF_METRICS_LISTEN             = "0.0.0.0:9080"
        CAUDAL_BFF_USER_SVC_URL               = local.user_svc_url
        CAUDAL_BFF_METADATA_SVC_URL           = local.metadata_svc_url
        CAUDAL_BFF_EDGE_URL                   = local.site_url
        CAUDAL_BFF_RTMP_URL                   = local.rtmps_enabled ? local.rtmps_url : local.rtmp_url
        CAUDAL_BFF_CORS_ORIGINS               = jsonencode([local.site_url])
        CAUDAL_BFF_RATE_LIMIT__FORWARDED_HOPS = tostring(var.bff_forwarded_hops)
        CAUDAL_BFF_PLAYBACK__SIGNING_KEY_ID   = var.playback_keys.signing_key_id
        CAUDAL_BFF_PLAYBACK__TOKEN_TTL_SECS   = tostring(var.playback_token_ttl_secs)
        # resumable uploads (tus, /v1/uploads): on with the job queue's URL (its three servers);
        # originals go to uploads/<id>/ in the media bucket (task role: that prefix only). The
        # streams' replica count is the same for bff, ingest-rtmp and the worker (main.tf).
        CAUDAL_BFF_UPLOADS__JOBS__URL              = local.nats_url
        CAUDAL_BFF_UPLOADS__JOBS__REPLICAS         = tostring(local.nats_replicas)
        CAUDAL_BFF_UPLOADS__STORAGE__BACKEND       = "s3"
        CAUDAL_BFF_UPLOADS__STORAGE__BUCKET        = aws_s3_bucket.media.id
        CAUDAL_BFF_UPLOADS__STORAGE__REGION        = var.region
        CAUDAL_BFF_UPLOADS__STORAGE__PATH_STYLE    = "false"
        CAUDAL_BFF_UPLOADS__STORAGE__CREATE_BUCKET = "false"
      }
      secrets = {
        # Pinned to the secret's version: a changed key list changes the task definition, so
        # bff is redeployed with it (ECS reads secrets only when a task starts).
        CAUDAL_BFF_PLAYBACK__KEYS = "${aws_secretsmanager_secret.playback_keys.arn}:::${aws_secretsmanager_secret_version.playback_keys.version_id}"
      }
    }

    "user-svc" = {
      image          = var.container_images.user_svc
      port           = 8082
      extra_ports    = [9082]
      security_group = aws_security_group.user_svc.id
      target_group   = ""
      # a second target group (and container port) the tasks register in
      extra_target_group  = ""
      extra_target_port   = 0
      discovery           = true
      stop_timeout        = 30
      ephemeral_gib       = 0
      volumes             = []
      container_overrides = {}
      env = {
        CAUDAL_USER_LISTEN         = "0.0.0.0:8082"
        CAUDAL_USER_METRICS_LISTEN = "0.0.0.0:9082"
        CAUDAL_USER_DEMO__ENABLED  = "false"
        # the local provider takes no money: user-svc refuses to start with it unless this is
        # set, and clients never choose a payment's outcome (no test tokens)
        CAUDAL_USER_PAYMENT__LOCAL_ENABLED = tostring(var.payments_local_demo)
        CAUDAL_USER_PAYMENT__TEST_TOKENS   = "false"
      }
      secrets = {
        CAUDAL_USER_DATABASE_URL = aws_secretsmanager_secret.user_database_url.arn
        CAUDAL_USER_JWT_SECRET   = aws_secretsmanager_secret.jwt.arn
      }
    }

    "metadata-svc" = {
      image          = var.container_images.metadata_svc
      port           = 8083
      extra_ports    = [9083]
      security_group = aws_security_group.metadata_svc.id
      target_group   = ""
      # a second target group (and container port) the tasks register in
      extra_target_group  = ""
      extra_target_port   = 0
      discovery           = true
      stop_timeout        = 30
      ephemeral_gib       = 0
      volumes             = []
      container_overrides = {}
      env = {
        CAUDAL_METADATA_LISTEN         = "0.0.0.0:8083"
        CAUDAL_METADATA_METRICS_LISTEN = "0.0.0.0:9083"
        CAUDAL_METADATA_DATABASE       = "caudal"
      }
      secrets = {
        CAUDAL_METADATA_MONGO_URL = aws_secretsmanager_secret.metadata_mongo_url.arn
      }
    }

    "ingest-rtmp" = {
      image          = var.container_images.ingest_rtmp
      port           = 1935
      extra_ports    = [8081, 9081]
      security_group = aws_security_group.ingest.id
      target_group   = "rtmp"
      # a second target group (and container port) the tasks register in
      extra_target_group = "live"
      extra_target_port  = 8081
      discovery          = false
      # Fargate's maximum: a stopping task flushes every rung and writes the VOD playlists.
      stop_timeout        = 120
      ephemeral_gib       = 50
      volumes             = ["spool"]
      container_overrides = {}
      env = {
        CAUDAL_INGEST_RTMP_LISTEN             = "0.0.0.0:1935"
        CAUDAL_INGEST_HTTP_LISTEN             = "0.0.0.0:8081"
        CAUDAL_INGEST_METRICS_LISTEN          = "0.0.0.0:9081"
        CAUDAL_INGEST_APP                     = "live"
        CAUDAL_INGEST_USER_SVC_URL            = local.user_svc_url
        CAUDAL_INGEST_METADATA_SVC_URL        = local.metadata_svc_url
        CAUDAL_INGEST_MAX_PUBLISHERS          = tostring(var.ingest_max_publishers)
        CAUDAL_INGEST_SHARED_STATE_URL        = "redis://${aws_elasticache_replication_group.ingest_state.primary_endpoint_address}:6379"
        CAUDAL_INGEST_MEDIA_PREFIX            = local.media_prefix
        CAUDAL_INGEST_STORAGE__BACKEND        = "s3"
        CAUDAL_INGEST_STORAGE__BUCKET         = aws_s3_bucket.media.id
        CAUDAL_INGEST_STORAGE__REGION         = var.region
        CAUDAL_INGEST_STORAGE__PATH_STYLE     = "false"
        CAUDAL_INGEST_STORAGE__CREATE_BUCKET  = "false"
        CAUDAL_INGEST_TRANSCODE__SEGMENT_SECS = tostring(var.hls_segment_secs)
        # low-latency HLS: CMAF parts served by the live origin (0: standard HLS, MPEG-TS)
        CAUDAL_INGEST_TRANSCODE__PART_SECS      = tostring(var.ll_part_secs)
        CAUDAL_INGEST_TRANSCODE__SEGMENT_FORMAT = var.ll_part_secs > 0 ? "fmp4" : "ts"
        CAUDAL_INGEST_TRANSCODE__SPOOL_DIR      = "/spool"
        # a recorded broadcast queues a job for its poster and storyboard (the worker makes them)
        CAUDAL_INGEST_JOBS__URL      = local.nats_url
        CAUDAL_INGEST_JOBS__REPLICAS = tostring(local.nats_replicas)
      }
      # No secrets: S3 credentials come from the task role (empty access_key_id -> AWS chain).
      secrets = {}
    }

    # `transcoder worker` (the ENTRYPOINT is /usr/local/bin/transcoder; the command picks the
    # worker). One job at a time per task: an upload copied to /work, transcoded into
    # vod/<id>/ through the /spool, or a recording's poster and storyboard. Nothing may connect
    # to it (its metrics and /healthz on 9087 stay inside the task); like user-svc and
    # metadata-svc it has no health check: ECS replaces a task that exits.
    "transcoder-worker" = {
      image              = var.container_images.transcoder
      port               = 9087
      extra_ports        = []
      security_group     = aws_security_group.worker.id
      target_group       = ""
      extra_target_group = ""
      extra_target_port  = 0
      discovery          = false
      # Fargate's maximum: a stopping worker finishes the job in hand first; one that needs
      # longer is killed, and another worker takes the job when its lease lapses
      stop_timeout        = 120
      ephemeral_gib       = var.worker_size.ephemeral_gib
      volumes             = ["spool", "work"]
      container_overrides = { command = ["worker"] }
      env = {
        CAUDAL_WORKER_METRICS_LISTEN          = "0.0.0.0:9087"
        CAUDAL_WORKER_METADATA_SVC_URL        = local.metadata_svc_url
        CAUDAL_WORKER_JOBS__URL               = local.nats_url
        CAUDAL_WORKER_JOBS__REPLICAS          = tostring(local.nats_replicas)
        CAUDAL_WORKER_STORAGE__BACKEND        = "s3"
        CAUDAL_WORKER_STORAGE__BUCKET         = aws_s3_bucket.media.id
        CAUDAL_WORKER_STORAGE__REGION         = var.region
        CAUDAL_WORKER_STORAGE__PATH_STYLE     = "false"
        CAUDAL_WORKER_STORAGE__CREATE_BUCKET  = "false"
        CAUDAL_WORKER_OUTPUT_PREFIX           = local.vod_prefix
        CAUDAL_WORKER_WORK_DIR                = "/work"
        CAUDAL_WORKER_TRANSCODE__SPOOL_DIR    = "/spool"
        CAUDAL_WORKER_TRANSCODE__SEGMENT_SECS = tostring(var.hls_segment_secs)
      }
      # S3 through the task role, like ingest-rtmp.
      secrets = {}
    }
  }
}

resource "aws_ecs_task_definition" "service" {
  for_each = local.services

  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = local.service_sizes[each.key].cpu
  memory                   = local.service_sizes[each.key].memory
  execution_role_arn       = aws_iam_role.execution.arn
  # bff, ingest-rtmp and the worker call S3; user-svc and metadata-svc get no task role at all.
  task_role_arn = lookup(local.task_roles, each.key, null)

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  dynamic "ephemeral_storage" {
    for_each = each.value.ephemeral_gib > 0 ? [each.value.ephemeral_gib] : []
    content {
      size_in_gib = ephemeral_storage.value
    }
  }

  # Writable scratch space on a read-only root file system.
  volume {
    name = "tmp"
  }

  dynamic "volume" {
    for_each = each.value.volumes
    content {
      name = volume.value
    }
  }

  container_definitions = jsonencode([merge({
    name                   = each.key
    image                  = each.value.image
    essential              = true
    readonlyRootFilesystem = true
    stopTimeout            = each.value.stop_timeout
    linuxParameters        = { initProcessEnabled = true }

    portMappings = [for p in concat([each.value.port], each.value.extra_ports) : {
      containerPort = p
      protocol      = "tcp"
    }]

    environment = [for k, v in merge(local.common_env, each.value.env) : { name = k, value = v }]
    secrets     = [for k, arn in each.value.secrets : { name = k, valueFrom = arn }]

    mountPoints = concat(
      [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }],
      [for v in each.value.volumes : { sourceVolume = v, containerPath = "/${v}", readOnly = false }],
    )

    ulimits = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service[each.key].name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  }, each.value.container_overrides)])
}

resource "aws_ecs_service" "service" {
  for_each = local.services

  name                   = each.key
  cluster                = aws_ecs_cluster.main.id
  task_definition        = aws_ecs_task_definition.service[each.key].arn
  desired_count          = local.service_sizes[each.key].desired_count
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  propagate_tags         = "SERVICE"
  enable_execute_command = false

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.app[*].id
    security_groups  = [each.value.security_group]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = each.value.target_group == "" ? [] : [each.value.target_group]
    content {
      target_group_arn = local.target_groups[load_balancer.value]
      container_name   = each.key
      container_port   = each.value.port
    }
  }

  # ingest-rtmp: also the ALB's live origin of low-latency HLS (its HTTP port)
  dynamic "load_balancer" {
    for_each = each.value.extra_target_group == "" ? [] : [each.value.extra_target_group]
    content {
      target_group_arn = local.target_groups[load_balancer.value]
      container_name   = each.key
      container_port   = each.value.extra_target_port
    }
  }

  dynamic "service_registries" {
    for_each = each.value.discovery ? [each.key] : []
    content {
      registry_arn = aws_service_discovery_service.internal[service_registries.value].arn
    }
  }

  health_check_grace_period_seconds = each.value.target_group == "" ? null : 60

  # A target group must be attached to its load balancer (listener rule) before a service uses
  # it; CloudFront must know the playback keys before bff signs with them.
  depends_on = [
    aws_lb_listener_rule.bff_from_cloudfront,
    aws_lb_listener_rule.live_origin_from_cloudfront,
    aws_lb_listener.rtmp,
    aws_iam_role_policy.execution,
    aws_cloudfrontkeyvaluestore_key.playback,
  ]
}
