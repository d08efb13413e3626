# VPC in two AZs with three subnet tiers:
#   public   (ALB, NLB, NAT gateways)         - route to the internet gateway
#   app      (Fargate tasks)                  - egress through NAT; S3 through a gateway endpoint
#   database (RDS MariaDB, DocumentDB)        - no route out of the VPC at all
# and, with cross_region_replication, a VPC in replica_region with only the database tier (the
# MariaDB read replica and DocumentDB's secondary cluster): no internet or NAT gateway, no route
# out, flow logs.

resource "aws_vpc" "main" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = local.name }
}

# The default security group of the VPC allows nothing (every resource has its own group).
resource "aws_default_security_group" "default" {
  vpc_id = aws_vpc.main.id

  tags = { Name = "${local.name}-default-unused" }
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id

  tags = { Name = local.name }
}

resource "aws_subnet" "public" {
  count = 2

  vpc_id                  = aws_vpc.main.id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index)
  map_public_ip_on_launch = false

  tags = { Name = "${local.name}-public-${local.azs[count.index]}", Tier = "public" }
}

resource "aws_subnet" "app" {
  count = 2

  vpc_id            = aws_vpc.main.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 10 + count.index)

  tags = { Name = "${local.name}-app-${local.azs[count.index]}", Tier = "app" }
}

resource "aws_subnet" "database" {
  count = 2

  vpc_id            = aws_vpc.main.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 20 + count.index)

  tags = { Name = "${local.name}-database-${local.azs[count.index]}", Tier = "database" }
}

resource "aws_eip" "nat" {
  count = var.single_nat_gateway ? 1 : 2

  domain = "vpc"

  tags = { Name = "${local.name}-nat-${count.index}" }
}

resource "aws_nat_gateway" "main" {
  count = var.single_nat_gateway ? 1 : 2

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id

  tags = { Name = "${local.name}-${local.azs[count.index]}" }

  depends_on = [aws_internet_gateway.main]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }

  tags = { Name = "${local.name}-public" }
}

resource "aws_route_table_association" "public" {
  count = 2

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "app" {
  count = 2

  vpc_id = aws_vpc.main.id

  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.main[var.single_nat_gateway ? 0 : count.index].id
  }

  tags = { Name = "${local.name}-app-${local.azs[count.index]}" }
}

resource "aws_route_table_association" "app" {
  count = 2

  subnet_id      = aws_subnet.app[count.index].id
  route_table_id = aws_route_table.app[count.index].id
}

# No default route: the databases cannot reach (or be reached from) outside the VPC.
resource "aws_route_table" "database" {
  vpc_id = aws_vpc.main.id

  tags = { Name = "${local.name}-database" }
}

resource "aws_route_table_association" "database" {
  count = 2

  subnet_id      = aws_subnet.database[count.index].id
  route_table_id = aws_route_table.database.id
}

# Segment uploads from ingest go to S3 without crossing the NAT gateways (no NAT data charge).
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.main.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.app[*].id

  tags = { Name = "${local.name}-s3" }
}

# --- VPC flow logs (rejected and accepted connections, e.g. RTMP clients at the NLB) --------

resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = "/vpc/${local.name}/flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_flow_log" "main" {
  vpc_id                   = aws_vpc.main.id
  traffic_type             = "ALL"
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn             = aws_iam_role.flow_logs.arn
  max_aggregation_interval = 600
}

resource "aws_iam_role" "flow_logs" {
  name = "${local.name}-vpc-flow-logs"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "vpc-flow-logs.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
      }
    }]
  })
}

resource "aws_iam_role_policy" "flow_logs" {
  name = "write-flow-logs"
  role = aws_iam_role.flow_logs.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      Resource = "${aws_cloudwatch_log_group.flow_logs.arn}:*"
    }]
  })
}

# --- second region: database subnets only ----------------------------------------------------

# Zones by name, as for the deployment region.
data "aws_availability_zones" "replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  state = "available"

  filter {
    name   = "zone-name"
    values = ["${var.replica_region}a", "${var.replica_region}b", "${var.replica_region}c"]
  }
}

locals {
  replica_azs = var.cross_region_replication ? slice(sort(data.aws_availability_zones.replica[0].names), 0, 2) : []
}

resource "aws_vpc" "replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  cidr_block           = var.replica_vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = "${local.name}-replica" }
}

resource "aws_default_security_group" "replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  vpc_id = aws_vpc.replica[0].id

  tags = { Name = "${local.name}-replica-default-unused" }
}

# The same /24 positions as the deployment region's database tier.
resource "aws_subnet" "replica_database" {
  provider = aws.replica
  count    = var.cross_region_replication ? 2 : 0

  vpc_id            = aws_vpc.replica[0].id
  availability_zone = local.replica_azs[count.index]
  cidr_block        = cidrsubnet(var.replica_vpc_cidr, 8, 20 + count.index)

  tags = { Name = "${local.name}-replica-database-${local.replica_azs[count.index]}", Tier = "database" }
}

# No routes: the copies replicate over AWS's own links, not through this VPC.
resource "aws_route_table" "replica_database" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  vpc_id = aws_vpc.replica[0].id

  tags = { Name = "${local.name}-replica-database" }
}

resource "aws_route_table_association" "replica_database" {
  provider = aws.replica
  count    = var.cross_region_replication ? 2 : 0

  subnet_id      = aws_subnet.replica_database[count.index].id
  route_table_id = aws_route_table.replica_database[0].id
}

resource "aws_cloudwatch_log_group" "replica_flow_logs" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  name              = "/vpc/${local.name}-replica/flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.replica[0].arn
}

resource "aws_flow_log" "replica" {
  provider = aws.replica
  count    = var.cross_region_replication ? 1 : 0

  vpc_id                   = aws_vpc.replica[0].id
  traffic_type             = "ALL"
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.replica_flow_logs[0].arn
  iam_role_arn             = aws_iam_role.flow_logs.arn
  max_aggregation_interval = 600
}

# The flow-log role (IAM is global) also writes to the replica region's log group.
resource "aws_iam_role_policy" "replica_flow_logs" {
  count = var.cross_region_replication ? 1 : 0

  name = "write-replica-flow-logs"
  role = aws_iam_role.flow_logs.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      Resource = "${aws_cloudwatch_log_group.replica_flow_logs[0].arn}:*"
    }]
  })
}
