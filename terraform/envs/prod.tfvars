# Example values for prod: replace the placeholders before the first apply.
environment = "prod"
aws_region  = "sa-east-1"
name_prefix = "lh360-prod"

landing_retention_days = 90

glue_database_prefix                  = "lh360"
athena_workgroup_name                 = "lh360"
athena_bytes_scanned_cutoff_per_query = 107374182400 # 100 GiB

databricks_host       = "https://dbc-1234abcd-5678.cloud.databricks.com"
databricks_account_id = "00000000-0000-0000-0000-000000000000"

create_cross_account_role = true
cross_account_policy_type = "restricted"
vpc_id                    = "vpc-0123456789abcdef0"
security_group_id         = "sg-0123456789abcdef0"

catalog_name             = "lakehouse360"
owner_group              = "lh360-admins"
reader_groups            = ["lh360-analysts"]
databricks_workspace_dir = "/Workspace/Shared/lh360"
service_principal_name   = "lh360"

warehouse_cluster_size   = "2X-Small"
warehouse_auto_stop_mins = 10

tags = {
  cost-center = "data-platform"
}
