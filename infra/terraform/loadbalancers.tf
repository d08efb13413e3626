# Load balancers:
#   ALB (public subnets, HTTPS 443) -> bff tasks; reached only by CloudFront (security group
#        on CloudFront's origin-facing prefix list + a secret header checked by the listener).
#        Low-latency HLS (/<media prefix>/*/ll.m3u8, .../ll_*) -> ingest-rtmp's live origin.
#   NLB (public subnets, TCP 1935, optional TLS 443 for RTMPS) -> ingest-rtmp tasks.

# --- ALB for bff ---------------------------------------------------------------------------

resource "aws_lb" "app" {
  #checkov:skip=CKV2_AWS_28:WAF belongs at the edge: the ALB only accepts CloudFront (prefix list and origin header), where cloudfront_web_acl_arn attaches one.
  name                       = "${local.name}-app"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = aws_subnet.public[*].id
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = 60

  access_logs {
    bucket  = aws_s3_bucket.logs.id
    prefix  = "alb"
    enabled = true
  }

  depends_on = [aws_s3_bucket_policy.logs]
}

resource "aws_lb_target_group" "bff" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; bff speaks plain HTTP to it inside the private app subnets, on a port only the ALB's security group can reach.
  name                 = "${local.name}-bff"
  port                 = 8080
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = aws_vpc.main.id
  deregistration_delay = 30

  health_check {
    path                = "/healthz"
    port                = "9080"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "app_https" {
  load_balancer_arn = aws_lb.app.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.alb_certificate_arn

  # Anything that did not come through CloudFront (no origin header) is refused.
  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = "forbidden"
      status_code  = "403"
    }
  }
}

resource "aws_lb_listener_rule" "bff_from_cloudfront" {
  listener_arn = aws_lb_listener.app_https.arn
  priority     = 10

  condition {
    http_header {
      http_header_name = "X-Caudal-Origin-Verify"
      values           = [random_password.origin_verify.result]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.bff.arn
  }
}

# Low-latency HLS: ingest's live origin (its HTTP listener). Any instance answers for any
# broadcast (it forwards to the instance running it), so plain round robin is right.
resource "aws_lb_target_group" "live_origin" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; ingest speaks plain HTTP to it inside the private app subnets, on a port only the ALB's and ingest's security groups can reach.
  name                 = "${local.name}-live-origin"
  port                 = 8081
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = aws_vpc.main.id
  deregistration_delay = 30

  health_check {
    path                = "/healthz"
    port                = "8081"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener_rule" "live_origin_from_cloudfront" {
  listener_arn = aws_lb_listener.app_https.arn
  # before bff's rule: the same secret header, narrowed to the live edge's names
  priority = 5

  condition {
    http_header {
      http_header_name = "X-Caudal-Origin-Verify"
      values           = [random_password.origin_verify.result]
    }
  }

  condition {
    path_pattern {
      values = ["/${local.media_prefix}/*/ll.m3u8", "/${local.media_prefix}/*/ll_*"]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.live_origin.arn
  }
}

# --- NLB for RTMP --------------------------------------------------------------------------

resource "aws_lb" "rtmp" {
  #checkov:skip=CKV_AWS_91:NLB access logs exist only for TLS listeners; the RTMP listener is plain TCP. VPC flow logs record every connection, ingest-rtmp logs every publish.
  name                             = "${local.name}-rtmp"
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = aws_subnet.public[*].id
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection
}

resource "aws_lb_target_group" "rtmp" {
  name        = "${local.name}-rtmp"
  port        = 1935
  protocol    = "TCP"
  target_type = "ip"
  vpc_id      = aws_vpc.main.id

  # A broadcast is one long TCP connection: give a draining task time to let it end.
  deregistration_delay   = 120
  connection_termination = false

  health_check {
    protocol            = "HTTP"
    port                = "8081"
    path                = "/healthz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "rtmp" {
  load_balancer_arn = aws_lb.rtmp.arn
  port              = 1935
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.rtmp.arn
  }
}

# RTMPS: TLS ends on the NLB, ingest-rtmp still gets plain RTMP on 1935.
resource "aws_lb_listener" "rtmps" {
  count = local.rtmps_enabled ? 1 : 0

  load_balancer_arn = aws_lb.rtmp.arn
  port              = 443
  protocol          = "TLS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.rtmps_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.rtmp.arn
  }
}
