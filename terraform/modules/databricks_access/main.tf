# How Databricks reaches this AWS account:
#   * aws_iam_role.this                     - the Unity Catalog storage-credential role:
#                                             read the landing prefix, read/write
#                                             lh360's lake prefixes, use the KMS key.
#   * databricks_storage_credential.this    - the Unity Catalog object wrapping that role.
#   * aws_iam_role.cross_account            - the workspace's cross-account role (optional).
#
# The credential and its role live together because each needs the other: the
# credential names the role's ARN, and the role trusts only the credential's
# external ID. Kept in one module, Terraform resolves that with a string-built
# ARN and nothing outside has to know (two modules referencing each other's
# outputs also stop checkov from rendering either module's variables).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id

  uc_role_name = "${var.name_prefix}-uc-access"
  # Built from strings, not from aws_iam_role.this.arn: the storage credential
  # needs this ARN before the role exists, and the role needs the credential's
  # external ID. Building it here breaks that cycle (as Databricks' own
  # Unity Catalog guide does).
  uc_role_arn = "arn:${local.partition}:iam::${local.account_id}:role/${local.uc_role_name}"

  uc_external_id = databricks_storage_credential.this.aws_iam_role[0].external_id

  landing_prefix      = trim(var.landing_prefix, "/")
  lake_write_prefixes = [for prefix in var.lake_write_prefixes : trim(prefix, "/")]
}

################################################################################
# Unity Catalog storage credential and its role
################################################################################

# Creating the credential does not assume the role (validation happens when an
# external location is created), so it can come first.
resource "databricks_storage_credential" "this" {
  name    = coalesce(var.storage_credential_name, "${var.name_prefix}-storage")
  owner   = var.storage_credential_owner
  comment = "lh360 ${var.name_prefix}: IAM role ${local.uc_role_name} (landing read-only, lake read/write)"

  aws_iam_role {
    role_arn = local.uc_role_arn
  }
}

data "aws_iam_policy_document" "unity_catalog_trust" {
  statement {
    sid     = "UnityCatalogMasterRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = [var.unity_catalog_master_role_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [local.uc_external_id]
    }
  }

  # Unity Catalog requires the role to be able to assume itself. The principal
  # is the account with an ArnLike condition on the role's own ARN, because IAM
  # rejects a trust policy that names a role that does not exist yet.
  statement {
    sid     = "ExplicitSelfRoleAssumption"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:PrincipalArn"
      values   = [local.uc_role_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [local.uc_external_id]
    }
  }
}

data "aws_iam_policy_document" "unity_catalog_access" {
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

  statement {
    sid       = "LocateBuckets"
    effect    = "Allow"
    actions   = ["s3:GetBucketLocation"]
    resources = [var.landing_bucket_arn, var.lake_bucket_arn]
  }

  # Listing reveals key names only; Spark and Unity Catalog list parents of the
  # paths they use. Reads and writes are limited to lh360's prefixes below.
  statement {
    sid       = "ListLake"
    effect    = "Allow"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [var.lake_bucket_arn]
  }

  # bronze/silver/gold/quarantine tables, the job's checkpoints, schema and
  # metrics (_lh360/state) and the catalog's managed storage: nothing else of
  # the lake (not the ledgers, which the ops box writes), no other bucket.
  statement {
    sid    = "ReadWriteLakePrefixes"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [for prefix in local.lake_write_prefixes : "${var.lake_bucket_arn}/${prefix}/*"]
  }

  statement {
    sid       = "UseLakeKeyThroughS3"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "AssumeSelf"
    effect    = "Allow"
    actions   = ["sts:AssumeRole"]
    resources = [local.uc_role_arn]
  }
}

resource "aws_iam_role" "this" {
  name                 = local.uc_role_name
  description          = "lh360 ${var.name_prefix}: Unity Catalog storage credential (landing read-only, lake read/write)"
  assume_role_policy   = data.aws_iam_policy_document.unity_catalog_trust.json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_policy" "unity_catalog" {
  name        = "${local.uc_role_name}-policy"
  description = "lh360 ${var.name_prefix}: what the Unity Catalog storage credential may do on the landing and lake buckets and their KMS key"
  policy      = data.aws_iam_policy_document.unity_catalog_access.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "unity_catalog" {
  role       = aws_iam_role.this.name
  policy_arn = aws_iam_policy.unity_catalog.arn
}

# Databricks validates an external location by assuming the role right away;
# give IAM time to propagate the new role and policy first. The
# storage_credential_name output waits for this.
resource "time_sleep" "unity_catalog_propagation" {
  create_duration = var.iam_propagation_delay

  triggers = {
    role_arn          = aws_iam_role.this.arn
    policy_attachment = aws_iam_role_policy_attachment.unity_catalog.id
    trust_policy      = sha256(aws_iam_role.this.assume_role_policy)
  }
}

################################################################################
# Cross-account role for the workspace (classic compute)
################################################################################

data "aws_iam_policy_document" "cross_account_trust" {
  count = var.create_cross_account_role ? 1 : 0

  statement {
    sid     = "DatabricksControlPlane"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${var.databricks_aws_account_id}:root"]
    }

    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [var.databricks_account_id]
    }
  }

  lifecycle {
    precondition {
      condition     = var.databricks_account_id != null
      error_message = "databricks_account_id is required when create_cross_account_role is true."
    }
  }
}

# Databricks' documented cross-account policy. "restricted" scopes every EC2
# action to this account, region, VPC and security group.
data "databricks_aws_crossaccount_policy" "this" {
  count = var.create_cross_account_role ? 1 : 0

  policy_type       = var.cross_account_policy_type
  aws_account_id    = var.cross_account_policy_type == "restricted" ? local.account_id : null
  region            = var.cross_account_policy_type == "restricted" ? local.region : null
  vpc_id            = var.cross_account_policy_type == "restricted" ? var.vpc_id : null
  security_group_id = var.cross_account_policy_type == "restricted" ? var.security_group_id : null

  lifecycle {
    precondition {
      condition     = var.cross_account_policy_type != "restricted" || (var.vpc_id != null && var.security_group_id != null)
      error_message = "cross_account_policy_type \"restricted\" needs vpc_id and security_group_id."
    }
  }
}

resource "aws_iam_role" "cross_account" {
  count = var.create_cross_account_role ? 1 : 0

  name               = "${var.name_prefix}-databricks-cross-account"
  description        = "lh360 ${var.name_prefix}: Databricks workspace cross-account role (classic compute in this account)"
  assume_role_policy = data.aws_iam_policy_document.cross_account_trust[0].json

  tags = var.tags
}

resource "aws_iam_role_policy" "cross_account" {
  count = var.create_cross_account_role ? 1 : 0

  name   = "${var.name_prefix}-databricks-cross-account"
  role   = aws_iam_role.cross_account[0].id
  policy = data.databricks_aws_crossaccount_policy.this[0].json
}
