# Terraform and provider versions, the AWS provider of the deployment region and the one of the
# second region (copies of the data, see cross_region_replication).

terraform {
  required_version = ">= 1.0"

  required_providers {
    # Any 5.x from 5.75 on: a release with CloudFront key value store keys and their
    # association with a function (cdn.tf); early 5.x releases also lack the cloudfront-js-2.0
    # runtime and security groups on network load balancers.
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.75"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.5"
    }
  }

  # The state holds generated secrets (database passwords, the JWT key, the playback keys, the
  # origin header): keep it in an encrypted, access-controlled backend, for example
  #
  # backend "s3" {
  #   bucket         = "my-terraform-state"
  #   key            = "caudal/prod.tfstate"
  #   region         = "eu-west-1"
  #   encrypt        = true
  #   dynamodb_table = "terraform-locks"
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

# The second region: the media bucket's replica, the MariaDB read replica, DocumentDB's secondary
# cluster and the small network and key they need (resources with provider = aws.replica).
provider "aws" {
  alias  = "replica"
  region = var.replica_region

  default_tags {
    tags = local.tags
  }
}
