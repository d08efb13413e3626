# Optional DNS records, made only when route53_zone_id is set. Without it, create them from
# the outputs: origin_domain_name -> alb_dns_name, rtmp_domain_name -> nlb_dns_name,
# site_aliases -> cloudfront_domain_name.

locals {
  manage_dns = var.route53_zone_id != ""
}

resource "aws_route53_record" "origin" {
  count = local.manage_dns ? 1 : 0

  zone_id = var.route53_zone_id
  name    = var.origin_domain_name
  type    = "A"

  alias {
    name                   = aws_lb.app.dns_name
    zone_id                = aws_lb.app.zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "rtmp" {
  count = local.manage_dns && var.rtmp_domain_name != "" ? 1 : 0

  zone_id = var.route53_zone_id
  name    = var.rtmp_domain_name
  type    = "A"

  alias {
    name                   = aws_lb.rtmp.dns_name
    zone_id                = aws_lb.rtmp.zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "site" {
  for_each = local.manage_dns ? toset(var.site_aliases) : toset([])

  zone_id = var.route53_zone_id
  name    = each.value
  type    = "A"

  alias {
    name                   = aws_cloudfront_distribution.main.domain_name
    zone_id                = aws_cloudfront_distribution.main.hosted_zone_id
    evaluate_target_health = false
  }
}

resource "aws_route53_record" "site_ipv6" {
  for_each = local.manage_dns ? toset(var.site_aliases) : toset([])

  zone_id = var.route53_zone_id
  name    = each.value
  type    = "AAAA"

  alias {
    name                   = aws_cloudfront_distribution.main.domain_name
    zone_id                = aws_cloudfront_distribution.main.hosted_zone_id
    evaluate_target_health = false
  }
}
