# Secrets: generated here, stored in Secrets Manager (encrypted with the stack's KMS key), and
# handed to the containers by ECS as environment variables (task definition `secrets`), so no
# secret appears in a task definition, an image or a `_FILE` mount.
#
#   CAUDAL_USER_JWT_SECRET        user-svc  HS256 key of access tokens
#   CAUDAL_USER_DATABASE_URL      user-svc  mysql://caudal:<password>@<rds>:3306/caudal
#   CAUDAL_METADATA_MONGO_URL     metadata-svc  mongodb://caudal:<password>@<docdb>:27017/?tls=true...
#   CAUDAL_BFF_PLAYBACK__KEYS     bff  kid=secret[,kid2=secret2]: playback token keys; the same
#                                 secrets are in CloudFront's key value store (cdn.tf)

resource "random_password" "jwt" {
  length  = 64
  special = false
}

# Letters and digits only: the passwords go into connection URLs unescaped.
resource "random_password" "mariadb" {
  length  = 40
  special = false
}

resource "random_password" "docdb" {
  length  = 40
  special = false
}

# One secret per playback key id. Letters and digits only: the list is "kid=secret,kid=secret".
resource "random_password" "playback" {
  for_each = toset(var.playback_keys.key_ids)

  length  = 48
  special = false
}

locals {
  secret_recovery_days = 7

  user_database_url = format(
    "mysql://%s:%s@%s:%d/%s",
    aws_db_instance.user.username,
    random_password.mariadb.result,
    aws_db_instance.user.address,
    aws_db_instance.user.port,
    aws_db_instance.user.db_name,
  )

  # DocumentDB: TLS with the RDS CA bundle, replica set rs0, no retryable writes (unsupported).
  metadata_mongo_url = format(
    "mongodb://%s:%s@%s:%d/?tls=true&tlsCAFile=%s&replicaSet=rs0&readPreference=secondaryPreferred&retryWrites=false",
    aws_docdb_cluster.metadata.master_username,
    random_password.docdb.result,
    aws_docdb_cluster.metadata.endpoint,
    aws_docdb_cluster.metadata.port,
    var.docdb_ca_file,
  )

  playback_keys = join(",", [for id in var.playback_keys.key_ids : "${id}=${random_password.playback[id].result}"])
}

resource "aws_secretsmanager_secret" "jwt" {
  #checkov:skip=CKV2_AWS_57:Rotating the JWT key signs everyone out (no second key is accepted during a rollover); rotate by tainting random_password.jwt in a maintenance window.
  name                    = "${local.name}/user-svc/jwt-secret"
  description             = "HS256 key user-svc signs access tokens with (CAUDAL_USER_JWT_SECRET)"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = local.secret_recovery_days
}

resource "aws_secretsmanager_secret_version" "jwt" {
  secret_id     = aws_secretsmanager_secret.jwt.id
  secret_string = random_password.jwt.result
}

resource "aws_secretsmanager_secret" "user_database_url" {
  #checkov:skip=CKV2_AWS_57:The value is a whole connection URL read by user-svc at start; automatic rotation would need a custom rotation Lambda that rewrites the URL and restarts the service. Rotate by tainting random_password.mariadb.
  name                    = "${local.name}/user-svc/database-url"
  description             = "MariaDB URL with credentials for user-svc (CAUDAL_USER_DATABASE_URL)"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = local.secret_recovery_days
}

resource "aws_secretsmanager_secret_version" "user_database_url" {
  secret_id     = aws_secretsmanager_secret.user_database_url.id
  secret_string = local.user_database_url
}

resource "aws_secretsmanager_secret" "metadata_mongo_url" {
  #checkov:skip=CKV2_AWS_57:The value is a whole connection URL read by metadata-svc at start; automatic rotation would need a custom rotation Lambda that rewrites the URL and restarts the service. Rotate by tainting random_password.docdb.
  name                    = "${local.name}/metadata-svc/mongo-url"
  description             = "DocumentDB URL with credentials for metadata-svc (CAUDAL_METADATA_MONGO_URL)"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = local.secret_recovery_days
}

resource "aws_secretsmanager_secret_version" "metadata_mongo_url" {
  secret_id     = aws_secretsmanager_secret.metadata_mongo_url.id
  secret_string = local.metadata_mongo_url
}

resource "aws_secretsmanager_secret" "playback_keys" {
  #checkov:skip=CKV2_AWS_57:Playback keys rotate by key id (add a kid, switch the signer, drop the old kid; README "Playback tokens") so that CloudFront and bff never disagree; a Secrets Manager rotation Lambda would change bff's copy without CloudFront's key value store.
  name                    = "${local.name}/bff/playback-keys"
  description             = "Playback token keys kid=secret[,kid=secret] bff signs with (CAUDAL_BFF_PLAYBACK__KEYS); CloudFront verifies with the same keys"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = local.secret_recovery_days
}

resource "aws_secretsmanager_secret_version" "playback_keys" {
  secret_id     = aws_secretsmanager_secret.playback_keys.id
  secret_string = local.playback_keys
}
