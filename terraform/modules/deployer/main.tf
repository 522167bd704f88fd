# What `lh360 deploy` needs in AWS, as a managed policy for the operator who
# runs it (attach it to that person's role, group or SSO permission set, or list
# roles in attach_to_roles): read the Delta logs of the lake's tables, for the
# schema it registers, and create or update their Glue tables in the lh360
# databases. Nothing else: the ops box that runs lh360 from cron has no Glue
# write rights, and the databases themselves are Terraform's (glue_athena).
# tests/iam proves it against every request a recorded deploy makes.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id

  # <lake>/<folder>/<table>/_delta_log/: the logs only, never the data files.
  delta_log_prefixes = [for folder in var.delta_log_folders : "${trim(folder, "/")}/*/_delta_log/*"]

  glue_catalog_arn = "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"
  glue_database_arns = [
    for db in var.glue_database_names : "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${db}"
  ]
  glue_table_arns = [
    for db in var.glue_database_names : "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${db}/*"
  ]
}

data "aws_iam_policy_document" "this" {
  # The schema and partition columns of each table come from its Delta log.
  # ListBucket also makes a missing log file a 404 (a table not written yet is
  # "deferred"), not a 403.
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
    sid       = "ReadLakeDatabases"
    effect    = "Allow"
    actions   = ["glue:GetDatabase"]
    resources = concat([local.glue_catalog_arn], local.glue_database_arns)
  }

  # One CreateTable per new table, one UpdateTable per schema change: never a
  # drop, never another database.
  statement {
    sid       = "RegisterTables"
    effect    = "Allow"
    actions   = ["glue:GetTable", "glue:CreateTable", "glue:UpdateTable"]
    resources = concat([local.glue_catalog_arn], local.glue_database_arns, local.glue_table_arns)
  }

  statement {
    sid       = "UseLakeKeyThroughS3"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "this" {
  name        = "${var.name_prefix}-deployer"
  description = "lh360 ${var.name_prefix}: lh360 deploy - read the lake's Delta logs, register its tables in the lh360 Glue databases"
  policy      = data.aws_iam_policy_document.this.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each = toset(var.attach_to_roles)

  role       = each.value
  policy_arn = aws_iam_policy.this.arn
}
