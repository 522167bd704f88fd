# Storage for one lh360 target: the landing zone, the Delta lake and the Athena
# results, each with its own bucket, plus a bucket that receives their access logs.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # One entry per data bucket. Versioning is on for landing only: Databricks
  # advises against S3 versioning on Delta buckets (Delta keeps its own history
  # and VACUUM would otherwise leave every removed file behind as a version).
  buckets = {
    landing = {
      name                = "${var.name_prefix}-landing"
      versioning          = true
      expiration_days     = var.landing_retention_days
      expiration_prefix   = "${var.landing_prefix}/"
      noncurrent_days     = var.landing_noncurrent_version_retention_days
      access_log_prefix   = "landing/"
      description         = "landing zone: immutable source files, ingested exactly once"
      data_classification = "raw"
    }
    lake = {
      name                = "${var.name_prefix}-lake"
      versioning          = false
      expiration_days     = null
      expiration_prefix   = null
      noncurrent_days     = null
      access_log_prefix   = "lake/"
      description         = "Delta lake: bronze, silver, gold, quarantine and the lh360 ledgers"
      data_classification = "curated"
    }
    athena_results = {
      name                = "${var.name_prefix}-athena-results"
      versioning          = false
      expiration_days     = var.athena_results_retention_days
      expiration_prefix   = ""
      noncurrent_days     = null
      access_log_prefix   = "athena-results/"
      description         = "Athena query results of the lh360 workgroup"
      data_classification = "derived"
    }
  }

  log_bucket_name = "${var.name_prefix}-access-logs"

  notifications_enabled = var.landing_eventbridge_enabled || length(var.landing_queue_notifications) > 0
}

################################################################################
# KMS: one customer-managed key for the three data buckets
################################################################################

resource "aws_kms_key" "this" {
  description             = "lh360 ${var.name_prefix}: SSE-KMS key of the landing, lake and Athena results buckets"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days

  # The account administers the key; use is granted through IAM policies that
  # name this key (databricks_access, ops_box), never to "*".
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name_prefix}-lake"
  target_key_id = aws_kms_key.this.key_id
}

################################################################################
# Access-log bucket (S3 server access logging only delivers to SSE-S3 buckets)
################################################################################

resource "aws_s3_bucket" "logs" {
  # checkov:skip=CKV_AWS_18: this is the access-log target; logging it into itself would loop
  # checkov:skip=CKV_AWS_145: S3 server access log delivery supports only SSE-S3 (AES256) target buckets, not SSE-KMS
  # checkov:skip=CKV_AWS_144: cross-region replication of access logs is not required; lifecycle keeps them access_log_retention_days
  # checkov:skip=CKV2_AWS_62: nothing reacts to new access-log objects; event notifications would only add cost
  bucket        = local.log_bucket_name
  force_destroy = var.force_destroy

  tags = merge(var.tags, { "lh360:bucket" = "access-logs" })
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket = aws_s3_bucket.logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "AllowS3ServerAccessLogDelivery"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = [for b in aws_s3_bucket.this : b.arn] }
        }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.logs]
}

################################################################################
# Data buckets: landing, lake, athena_results
################################################################################

resource "aws_s3_bucket" "this" {
  # checkov:skip=CKV_AWS_21: versioning is set per bucket by aws_s3_bucket_versioning.this: on for landing; off for the Delta lake (Databricks advises against versioning Delta buckets) and for disposable Athena results
  # checkov:skip=CKV_AWS_144: no cross-region replication: it doubles storage and transfer cost and copies the data out of the region, and lh360 has no cross-region recovery objective yet
  # checkov:skip=CKV2_AWS_62: event notifications are optional (landing_eventbridge_enabled / landing_queue_notifications); lh360 runs from cron and lists landing itself
  for_each = local.buckets

  bucket        = each.value.name
  force_destroy = var.force_destroy

  tags = merge(var.tags, {
    "lh360:bucket"              = each.key
    "lh360:data-classification" = each.value.data_classification
  })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id

  versioning_configuration {
    # "Disabled" is valid only for buckets that were never versioned, which is
    # the case here: the lake and the results bucket are created unversioned.
    status = each.value.versioning ? "Enabled" : "Disabled"
  }
}

resource "aws_s3_bucket_logging" "this" {
  for_each = local.buckets

  bucket        = aws_s3_bucket.this[each.key].id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = each.value.access_log_prefix

  depends_on = [aws_s3_bucket_policy.logs]
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  dynamic "rule" {
    for_each = each.value.expiration_days == null ? [] : [each.value]

    content {
      id     = "expire-${each.key}"
      status = "Enabled"

      filter {
        prefix = rule.value.expiration_prefix
      }

      expiration {
        days = rule.value.expiration_days
      }
    }
  }

  dynamic "rule" {
    for_each = each.value.noncurrent_days == null ? [] : [each.value]

    content {
      id     = "expire-noncurrent-versions"
      status = "Enabled"

      filter {}

      noncurrent_version_expiration {
        noncurrent_days = rule.value.noncurrent_days
      }

      expiration {
        expired_object_delete_marker = true
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.this[each.key].arn, "${aws_s3_bucket.this[each.key].arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_notification" "landing" {
  count = local.notifications_enabled ? 1 : 0

  bucket      = aws_s3_bucket.this["landing"].id
  eventbridge = var.landing_eventbridge_enabled

  dynamic "queue" {
    for_each = var.landing_queue_notifications

    content {
      queue_arn     = queue.value.queue_arn
      events        = queue.value.events
      filter_prefix = "${var.landing_prefix}/"
      filter_suffix = queue.value.filter_suffix
    }
  }
}
