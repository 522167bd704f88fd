locals {
  # What Databricks writes under the lake bucket, by external location name: the
  # Unity Catalog role may write nowhere else, and each gets its own external
  # location (whose validation then writes only where the role may).
  lake_prefixes = {
    bronze     = "bronze"
    silver     = "silver"
    gold       = "gold"
    quarantine = "quarantine"
    state      = "_lh360/state"
    catalog    = "_unity_catalog"
  }

  tags = merge(
    {
      project     = "lh360"
      environment = var.environment
      managed_by  = "terraform"
    },
    var.tags,
  )
}

module "lake_storage" {
  source = "../modules/lake_storage"

  name_prefix            = var.name_prefix
  landing_prefix         = "raw"
  landing_retention_days = var.landing_retention_days

  tags = local.tags
}

module "glue_athena" {
  source = "../modules/glue_athena"

  database_prefix                = var.glue_database_prefix
  lake_uri                       = module.lake_storage.lake_uri
  workgroup_name                 = var.athena_workgroup_name
  athena_output_location         = module.lake_storage.athena_results_uri
  kms_key_arn                    = module.lake_storage.kms_key_arn
  bytes_scanned_cutoff_per_query = var.athena_bytes_scanned_cutoff_per_query

  tags = local.tags
}

# IAM roles and the Unity Catalog storage credential that wraps the UC role.
module "databricks_access" {
  source = "../modules/databricks_access"

  name_prefix         = var.name_prefix
  landing_bucket_arn  = module.lake_storage.landing_bucket_arn
  landing_prefix      = module.lake_storage.landing_prefix
  lake_bucket_arn     = module.lake_storage.lake_bucket_arn
  lake_write_prefixes = values(local.lake_prefixes)
  kms_key_arn         = module.lake_storage.kms_key_arn

  storage_credential_owner = var.owner_group

  create_cross_account_role = var.create_cross_account_role
  databricks_account_id     = var.databricks_account_id
  cross_account_policy_type = var.cross_account_policy_type
  vpc_id                    = var.vpc_id
  security_group_id         = var.security_group_id

  tags = local.tags
}

module "databricks_workspace" {
  source = "../modules/databricks_workspace"

  name_prefix   = var.name_prefix
  catalog_name  = var.catalog_name
  owner_group   = var.owner_group
  reader_groups = var.reader_groups

  storage_credential_name = module.databricks_access.storage_credential_name
  landing_uri             = module.lake_storage.landing_uri
  lake_uri                = module.lake_storage.lake_uri
  lake_locations          = local.lake_prefixes
  catalog_storage_root    = "${module.lake_storage.lake_uri}/${local.lake_prefixes.catalog}"

  service_principal_name   = var.service_principal_name
  workspace_dir            = var.databricks_workspace_dir
  warehouse_cluster_size   = var.warehouse_cluster_size
  warehouse_auto_stop_mins = var.warehouse_auto_stop_mins

  tags = local.tags
}

module "ops_box" {
  source = "../modules/ops_box"

  name_prefix               = var.name_prefix
  landing_bucket_arn        = module.lake_storage.landing_bucket_arn
  landing_prefix            = module.lake_storage.landing_prefix
  lake_bucket_arn           = module.lake_storage.lake_bucket_arn
  athena_results_bucket_arn = module.lake_storage.athena_results_bucket_arn
  kms_key_arn               = module.lake_storage.kms_key_arn
  athena_workgroup_arn      = module.glue_athena.workgroup_arn
  glue_database_names       = values(module.glue_athena.database_names)

  tags = local.tags
}

# The managed policy for whoever runs `lh360 deploy` (Glue registration).
module "deployer" {
  source = "../modules/deployer"

  name_prefix         = var.name_prefix
  lake_bucket_arn     = module.lake_storage.lake_bucket_arn
  kms_key_arn         = module.lake_storage.kms_key_arn
  glue_database_names = values(module.glue_athena.database_names)
  attach_to_roles     = var.deployer_roles

  tags = local.tags
}
