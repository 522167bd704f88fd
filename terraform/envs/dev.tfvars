# Example values for dev: replace the placeholders before the first apply.
# dev shares the Databricks workspace with prod here, so every name differs.
environment = "dev"
aws_region  = "sa-east-1"
name_prefix = "lh360-dev"

landing_retention_days = 14

glue_database_prefix                  = "lh360_dev"
athena_workgroup_name                 = "lh360-dev"
athena_bytes_scanned_cutoff_per_query = 10737418240 # 10 GiB

databricks_host = "https://dbc-1234abcd-5678.cloud.databricks.com"

# The workspace's cross-account role belongs to prod.
create_cross_account_role = false

catalog_name             = "lakehouse360_dev"
owner_group              = "lh360-admins"
reader_groups            = []
databricks_workspace_dir = "/Workspace/Shared/lh360-dev"
service_principal_name   = "lh360-dev"

warehouse_cluster_size   = "2X-Small"
warehouse_auto_stop_mins = 5

tags = {
  cost-center = "data-platform"
}
