# The job queue: NATS with JetStream, a three-server cluster on ECS Fargate.
#
#   bff (uploads) ----------.                                        .--> transcoder-worker tasks
#                            +--4222--> nats-1, nats-2, nats-3 --4222--'
#   ingest-rtmp (records) --'          6222 between them (routes); JetStream files on EFS (2049)
#
# Design: one ECS service per server (nats-1, nats-2, nats-3, one task each), not one service
# of three tasks. A JetStream server must keep its name and its store across restarts (the
# cluster's RAFT groups know their peers by server name), and a route list has to name each
# server: ECS tasks of one service are interchangeable and an ECS service has only one Cloud
# Map registry, so a single service could neither pin a store directory to a server nor give
# each server a name of its own. Here each server has
#   - a fixed server name and its own EFS access point (/nats-N, one directory per server),
#   - its own Cloud Map name, nats-N.<project>.internal, used for the routes (every server lists
#     all three; the entry naming itself is ignored) and advertised to clients,
#   - deployments that stop the old task before starting the new one (maximum 100 %), so two
#     processes never share a store directory.
# Clients get local.nats_url (all three servers, see main.tf) and connect to any that answers.
# JetStream keeps its meta data in a RAFT group of the three servers (one may be down).
# Streams: the jobs crate creates CAUDAL_JOBS and CAUDAL_JOBS_DEAD itself with the replica
# count bff, ingest-rtmp and the worker are given (local.nats_replicas = 3, README "The job
# queue"): each stream has a copy on every server and stays available while one is down.

locals {
  nats_nodes = toset(["nats-1", "nats-2", "nats-3"])

  # Every server solicits routes to all three (itself included: ignored once detected).
  nats_routes = join(",", [for n in sort(local.nats_nodes) : "nats-route://${n}.${local.namespace}:6222"])
}

# --- JetStream storage: EFS, encrypted, one access point (directory, user) per server ---------

# No AWS Backup plan: EFS keeps the files in several AZs, and the queue holds jobs in flight
# only, so a point-in-time copy would bring back finished jobs (re-run, harmless) and miss newer
# ones. A job lost with the store is not queued again by itself: its upload stays `processing`
# (bff's sweeper re-queues only jobs it could not queue), and a recording lacks its pictures.
resource "aws_efs_file_system" "nats" {
  creation_token   = "${local.name}-nats"
  encrypted        = true
  kms_key_id       = aws_kms_key.main.arn
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"

  tags = { Name = "${local.name}-nats" }
}

resource "aws_efs_access_point" "nats" {
  for_each = local.nats_nodes

  file_system_id = aws_efs_file_system.nats.id

  # every file operation as this user, whatever the container runs as
  posix_user {
    uid = 1000
    gid = 1000
  }

  root_directory {
    path = "/${each.key}"

    creation_info {
      owner_uid   = 1000
      owner_gid   = 1000
      permissions = "0750"
    }
  }

  tags = { Name = "${local.name}-${each.key}" }
}

resource "aws_efs_mount_target" "nats" {
  count = length(aws_subnet.app)

  file_system_id  = aws_efs_file_system.nats.id
  subnet_id       = aws_subnet.app[count.index].id
  security_groups = [aws_security_group.efs.id]
}

# Mounts only by the NATS task role, through an access point, over TLS.
resource "aws_efs_file_system_policy" "nats" {
  file_system_id = aws_efs_file_system.nats.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "NatsServersMountThroughTheirAccessPoints"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.nats_task.arn }
        Action    = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
        Resource  = aws_efs_file_system.nats.arn
        Condition = {
          Bool         = { "elasticfilesystem:AccessedViaMountTarget" = "true" }
          StringEquals = { "elasticfilesystem:AccessPointArn" = [for n in sort(local.nats_nodes) : aws_efs_access_point.nats[n].arn] }
        }
      },
      {
        Sid       = "DenyPlainNfs"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "*"
        Resource  = aws_efs_file_system.nats.arn
        Condition = {
          Bool = { "aws:SecureTransport" = "false" }
        }
      },
    ]
  })
}

# --- names: nats-N.<project>.internal -------------------------------------------------------

resource "aws_service_discovery_service" "nats" {
  for_each = local.nats_nodes

  name = each.key

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

# --- the servers ------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "nats" {
  for_each = local.nats_nodes

  name              = "/ecs/${local.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_ecs_task_definition" "nats" {
  for_each = local.nats_nodes

  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.nats_size.cpu
  memory                   = var.nats_size.memory
  execution_role_arn       = aws_iam_role.execution.arn
  # mounts the EFS access point (IAM authorization, file system policy above)
  task_role_arn = aws_iam_role.nats_task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "jetstream"

    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.nats.id
      transit_encryption = "ENABLED"

      authorization_config {
        access_point_id = aws_efs_access_point.nats[each.key].id
        iam             = "ENABLED"
      }
    }
  }

  # The image's entrypoint runs nats-server with these flags (no configuration file).
  container_definitions = jsonencode([{
    name                   = "nats"
    image                  = var.nats_image
    essential              = true
    user                   = "1000:1000"
    readonlyRootFilesystem = true
    stopTimeout            = 30
    linuxParameters        = { initProcessEnabled = true }

    command = [
      "--name", each.key,
      "--port", "4222",
      "--http_port", "8222",
      "--jetstream",
      "--store_dir", "/data",
      "--cluster_name", "${local.name}-jobs",
      "--cluster", "nats://0.0.0.0:6222",
      "--routes", local.nats_routes,
      # stable names, not task addresses, for the other servers and for clients to reconnect to
      "--cluster_advertise", "${each.key}.${local.namespace}:6222",
      "--client_advertise", "${each.key}.${local.namespace}:4222",
    ]

    portMappings = [for p in [4222, 6222, 8222] : { containerPort = p, protocol = "tcp" }]

    # the Go runtime sees the host's memory, not the task's: keep it under the task's size
    environment = [{ name = "GOMEMLIMIT", value = "${floor(var.nats_size.memory * 0.8)}MiB" }]

    mountPoints = [{ sourceVolume = "jetstream", containerPath = "/data", readOnly = false }]

    ulimits = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.nats[each.key].name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

resource "aws_ecs_service" "nats" {
  for_each = local.nats_nodes

  name                   = each.key
  cluster                = aws_ecs_cluster.main.id
  task_definition        = aws_ecs_task_definition.nats[each.key].arn
  desired_count          = 1
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  propagate_tags         = "SERVICE"
  enable_execute_command = false

  # Never two servers on one store directory: the old task stops before the new one starts.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.app[*].id
    security_groups  = [aws_security_group.nats.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.nats[each.key].arn
  }

  # EFS must be mountable (mount targets, the policy letting the role in) when a task starts.
  depends_on = [
    aws_efs_mount_target.nats,
    aws_efs_file_system_policy.nats,
    aws_iam_role_policy.execution,
    aws_iam_role_policy.nats_efs,
  ]
}
