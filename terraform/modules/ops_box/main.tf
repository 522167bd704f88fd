# The IAM identity of the machine that runs lh360 from cron. It may:
#   * list and read the landing prefix, and see its unfinished uploads  (lh360 landing, plan)
#   * read the Delta logs (never the data files) of bronze, silver and gold:
#     which landing files are ingested, each table's version for the check ledger
#   * read and write the ledgers, <lake>/_lh360/  (every run; lh360 history)
#   * run queries in its Athena workgroup, reading the lake only through Athena
#   * read the Glue catalog of the lh360 databases
# and nothing else. tests/iam proves it against every request lh360 makes. Spark work runs on Databricks as the lh360 service principal;
# `lh360 deploy` (Glue/Unity Catalog DDL) is run by an operator, not by this box.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id

  landing_prefix = trim(var.landing_prefix, "/")
  ledger_prefix  = trim(var.ledger_prefix, "/")

  # <lake>/<layer>/<table>/_delta_log/: the log only, not the data files next to it.
  delta_log_prefixes = [for layer in var.delta_log_layers : "${trim(layer, "/")}/*/_delta_log/*"]

  glue_catalog_arn = "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"
  glue_database_arns = [
    for db in var.glue_database_names : "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${db}"
  ]
  glue_table_arns = [
    for db in var.glue_database_names : "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${db}/*"
  ]
}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "Ec2AssumesOpsBoxRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "LocateBuckets"
    effect    = "Allow"
    actions   = ["s3:GetBucketLocation"]
    resources = [var.landing_bucket_arn, var.lake_bucket_arn, var.athena_results_bucket_arn]
  }

  statement {
    sid       = "ListLandingPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.landing_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.landing_prefix, "${local.landing_prefix}/*"]
    }
  }

  statement {
    sid       = "ReadLandingFiles"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${var.landing_bucket_arn}/${local.landing_prefix}/*"]
  }

  # Uploads still in progress (lh360 landing). The action has no s3:prefix key,
  # so it is granted on the landing bucket, where only the landing zone lives.
  statement {
    sid       = "ListLandingUploads"
    effect    = "Allow"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [var.landing_bucket_arn]
  }

  # lh360 landing / run open bronze's log to know which landing files are
  # ingested, validate reads each checked table's version: the Delta log only.
  # ListBucket also makes a missing log file (_last_checkpoint) a 404, not a 403.
  statement {
    sid       = "ListDeltaLogs"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.lake_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.delta_log_prefixes
    }
  }

  statement {
    sid       = "ReadDeltaLogs"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [for prefix in local.delta_log_prefixes : "${var.lake_bucket_arn}/${prefix}"]
  }

  statement {
    sid       = "ListLedgers"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.lake_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.ledger_prefix, "${local.ledger_prefix}/*"]
    }
  }

  # Delta appends, checkpoints and log clean-up of the runs and checks ledgers.
  statement {
    sid       = "ReadWriteLedgers"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.lake_bucket_arn}/${local.ledger_prefix}/*"]
  }

  # Athena reads table data with the caller's credentials; allow that only
  # when the request comes through Athena, never directly from the box.
  statement {
    sid       = "ReadLakeThroughAthena"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [var.lake_bucket_arn, "${var.lake_bucket_arn}/*"]

    condition {
      test     = "ForAnyValue:StringEquals"
      variable = "aws:CalledVia"
      values   = ["athena.amazonaws.com"]
    }
  }

  statement {
    sid    = "AthenaQueryResults"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:ListBucket",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [var.athena_results_bucket_arn, "${var.athena_results_bucket_arn}/*"]
  }

  statement {
    sid    = "RunQueriesInWorkgroup"
    effect = "Allow"
    actions = [
      "athena:GetWorkGroup",
      "athena:StartQueryExecution",
      "athena:StopQueryExecution",
      "athena:GetQueryExecution",
      "athena:BatchGetQueryExecution",
      "athena:GetQueryResults",
      "athena:GetQueryRuntimeStatistics",
    ]
    resources = [var.athena_workgroup_arn]
  }

  statement {
    sid    = "ReadGlueCatalog"
    effect = "Allow"
    actions = [
      "glue:GetDatabase",
      "glue:GetDatabases",
      "glue:GetTable",
      "glue:GetTables",
      "glue:GetPartition",
      "glue:GetPartitions",
      "glue:BatchGetPartition",
    ]
    resources = concat([local.glue_catalog_arn], local.glue_database_arns, local.glue_table_arns)
  }

  statement {
    sid       = "UseLakeKeyThroughS3"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = "${var.name_prefix}-ops-box"
  description          = "lh360 ${var.name_prefix}: the cron machine that runs lh360"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_policy" "this" {
  name        = "${var.name_prefix}-ops-box"
  description = "lh360 ${var.name_prefix}: read landing, read/write the ledgers, query Athena in its workgroup, read Glue"
  policy      = data.aws_iam_policy_document.this.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "this" {
  role       = aws_iam_role.this.name
  policy_arn = aws_iam_policy.this.arn
}

resource "aws_iam_instance_profile" "this" {
  count = var.create_instance_profile ? 1 : 0

  name = "${var.name_prefix}-ops-box"
  role = aws_iam_role.this.name

  tags = var.tags
}
