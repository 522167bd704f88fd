# Glue databases for the medallion layers and the lh360 ledgers, and the Athena
# workgroup lh360 validates in. The tables themselves are registered by
# `lh360 deploy` (CREATE EXTERNAL TABLE ... TBLPROPERTIES ('table_type'='DELTA')).

data "aws_caller_identity" "current" {}

locals {
  lake_uri = trimsuffix(var.lake_uri, "/")

  databases = {
    bronze = { location = "${local.lake_uri}/bronze/", description = "lh360 bronze: raw landing data as Delta tables, one per spec" }
    silver = { location = "${local.lake_uri}/silver/", description = "lh360 silver: refined, deduplicated Delta tables" }
    gold   = { location = "${local.lake_uri}/gold/", description = "lh360 gold: aggregates recomputed from silver" }
    ledger = { location = "${local.lake_uri}/_lh360/", description = "lh360 ledgers: run history (runs) and check results (checks)" }
  }
}

resource "aws_glue_catalog_database" "this" {
  for_each = local.databases

  name         = "${var.database_prefix}_${each.key}"
  description  = each.value.description
  location_uri = each.value.location

  tags = var.tags
}

resource "aws_athena_workgroup" "this" {
  name          = var.workgroup_name
  description   = "lh360 validation and ad-hoc queries over the Delta lake"
  state         = "ENABLED"
  force_destroy = var.force_destroy

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff_per_query
    requester_pays_enabled             = false

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location       = var.athena_output_location
      expected_bucket_owner = coalesce(var.expected_bucket_owner, data.aws_caller_identity.current.account_id)

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }

  tags = var.tags
}
