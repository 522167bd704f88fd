# Outputs named lh360_* map one to one onto a databricks target in
# configs/lh360.yaml: `terraform output -json > outputs.json` then
# `lh360 init --from-terraform outputs.json`.

output "lh360_landing_uri" {
  description = "targets.<name>.landing: s3://<landing bucket>/raw."
  value       = module.lake_storage.landing_uri
}

output "lh360_lake_uri" {
  description = "targets.<name>.lake: s3://<lake bucket>."
  value       = module.lake_storage.lake_uri
}

output "lh360_aws_region" {
  description = "targets.<name>.aws.region."
  value       = var.aws_region
}

output "lh360_databricks_host" {
  description = "targets.<name>.databricks.host: the workspace URL (credentials stay in unified auth)."
  value       = var.databricks_host
}

output "lh360_databricks_catalog" {
  description = "targets.<name>.databricks.catalog."
  value       = module.databricks_workspace.catalog_name
}

output "lh360_databricks_warehouse_id" {
  description = "targets.<name>.databricks.warehouse_id: the serverless SQL warehouse."
  value       = module.databricks_workspace.warehouse_id
}

output "lh360_databricks_workspace_dir" {
  description = "targets.<name>.databricks.workspace_dir: where lh360 deploy uploads the Spark job code."
  value       = module.databricks_workspace.workspace_dir
}

output "lh360_athena_workgroup" {
  description = "targets.<name>.athena.workgroup."
  value       = module.glue_athena.workgroup_name
}

output "lh360_athena_databases" {
  description = "targets.<name>.athena.databases: Glue database names by role (bronze, silver, gold, ledger)."
  value       = module.glue_athena.database_names
}

output "lh360_athena_output" {
  description = "targets.<name>.athena.output: the workgroup's (enforced) result location."
  value       = module.glue_athena.output_location
}

output "databricks_service_principal_application_id" {
  description = "Client ID of the lh360 service principal; the ops box uses it as DATABRICKS_CLIENT_ID with an OAuth secret created out of band."
  value       = module.databricks_workspace.service_principal_application_id
}

output "databricks_warehouse_http_path" {
  description = "HTTP path of the SQL warehouse, for JDBC/ODBC clients."
  value       = module.databricks_workspace.warehouse_http_path
}

output "databricks_cross_account_role_arn" {
  description = "Cross-account role to register as the workspace credential configuration (null when not created here)."
  value       = module.databricks_access.cross_account_role_arn
}

output "unity_catalog_role_arn" {
  description = "IAM role behind the Unity Catalog storage credential."
  value       = module.databricks_access.unity_catalog_role_arn
}

output "ops_box_instance_profile_name" {
  description = "Instance profile to attach to the EC2 machine that runs lh360 from cron."
  value       = module.ops_box.instance_profile_name
}

output "ops_box_role_arn" {
  description = "IAM role of the ops box."
  value       = module.ops_box.role_arn
}

output "deployer_policy_arn" {
  description = "Managed policy for the operator who runs lh360 deploy (Glue registration)."
  value       = module.deployer.policy_arn
}

output "kms_key_arn" {
  description = "Customer-managed KMS key of the lake buckets and Athena results."
  value       = module.lake_storage.kms_key_arn
}
