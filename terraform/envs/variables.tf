variable "environment" {
  description = "Environment name (dev or prod), used in tags; it must match the <env>.tfvars and <env>.s3.tfbackend files applied."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod (one <env>.tfvars and <env>.s3.tfbackend per environment)."
  }
}

variable "aws_region" {
  description = "AWS region of every resource (the target's aws.region)."
  type        = string
  default     = "sa-east-1"
}

variable "name_prefix" {
  description = "Prefix of bucket, role, key and Databricks object names, e.g. \"lh360-prod\" or \"lh360-dev\"; bucket names must be globally unique, so add an organisation suffix if needed."
  type        = string
}

variable "landing_retention_days" {
  description = "Days a landing file is kept before it expires; longer than any ingest delay you can tolerate."
  type        = number
  default     = 90
}

variable "glue_database_prefix" {
  description = "Prefix of the Glue databases: <prefix>_bronze, _silver, _gold and _ledger."
  type        = string
}

variable "athena_workgroup_name" {
  description = "Name of the Athena workgroup lh360 validates in."
  type        = string
}

variable "athena_bytes_scanned_cutoff_per_query" {
  description = "Athena cancels a query of the workgroup that would scan more bytes than this."
  type        = number
  default     = 107374182400
}

variable "databricks_host" {
  description = "URL of the existing Databricks workspace, e.g. https://dbc-1234abcd-5678.cloud.databricks.com."
  type        = string

  validation {
    condition     = startswith(var.databricks_host, "https://")
    error_message = "databricks_host must be an https:// URL."
  }
}

variable "databricks_profile" {
  description = "Optional ~/.databrickscfg profile for the databricks provider; null means DATABRICKS_* environment variables (unified auth)."
  type        = string
  default     = null
}

variable "databricks_account_id" {
  description = "Databricks account ID (UUID); the external ID of the cross-account role. Not a secret."
  type        = string
  default     = null
}

variable "create_cross_account_role" {
  description = "Create the workspace's cross-account IAM role here (false when the workspace credential is managed elsewhere)."
  type        = bool
  default     = true
}

variable "cross_account_policy_type" {
  description = "Databricks cross-account policy flavour: restricted, customer or managed."
  type        = string
  default     = "restricted"
}

variable "vpc_id" {
  description = "Customer-managed VPC of the workspace (for the restricted cross-account policy)."
  type        = string
  default     = null
}

variable "security_group_id" {
  description = "Security group of the workspace (for the restricted cross-account policy)."
  type        = string
  default     = null
}

variable "catalog_name" {
  description = "Unity Catalog catalog of this environment (the target's databricks.catalog)."
  type        = string
}

variable "owner_group" {
  description = "Account group owning the catalog, schemas, storage credential and external locations."
  type        = string
}

variable "reader_groups" {
  description = "Groups that may read gold and use the SQL warehouse."
  type        = list(string)
  default     = []
}

variable "service_principal_name" {
  description = "Display name of the Databricks service principal lh360 runs as."
  type        = string
}

variable "databricks_workspace_dir" {
  description = "Workspace folder for the lh360 Spark job code (the target's databricks.workspace_dir)."
  type        = string
  default     = "/Workspace/Shared/lh360"
}

variable "warehouse_cluster_size" {
  description = "Size of the serverless SQL warehouse."
  type        = string
  default     = "2X-Small"
}

variable "warehouse_auto_stop_mins" {
  description = "Idle minutes before the SQL warehouse stops."
  type        = number
  default     = 10
}

variable "tags" {
  description = "Extra tags for every AWS resource and the SQL warehouse."
  type        = map(string)
  default     = {}
}

variable "deployer_roles" {
  description = "Existing IAM roles (operators) that get the lh360 deploy policy; empty creates the policy only."
  type        = list(string)
  default     = []
}
