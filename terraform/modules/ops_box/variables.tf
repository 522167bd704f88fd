variable "name_prefix" {
  description = "Prefix of the role, policy and instance profile names, e.g. \"lh360-prod\"."
  type        = string
}

variable "landing_bucket_arn" {
  description = "ARN of the landing bucket (lake_storage output landing_bucket_arn); the ops box may list and read the landing prefix."
  type        = string
}

variable "landing_prefix" {
  description = "Key prefix of the landing zone (lake_storage output landing_prefix)."
  type        = string
  default     = "raw"
}

variable "lake_bucket_arn" {
  description = "ARN of the Delta lake bucket (lake_storage output lake_bucket_arn); the ops box reads and writes only <lake>/_lh360/ itself, and reads the rest only through Athena."
  type        = string
}

variable "ledger_prefix" {
  description = "Folder of the lh360 ledgers inside the lake bucket."
  type        = string
  default     = "_lh360"
}

variable "delta_log_layers" {
  description = "Lake folders whose tables' Delta logs (<layer>/<table>/_delta_log/) the ops box reads directly: bronze for the ingest state of lh360 landing, and every layer validate checks, for the table version it records."
  type        = list(string)
  default     = ["bronze", "silver", "gold"]
}

variable "athena_results_bucket_arn" {
  description = "ARN of the Athena results bucket (lake_storage output athena_results_bucket_arn)."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the buckets and the query results (lake_storage output kms_key_arn)."
  type        = string
}

variable "athena_workgroup_arn" {
  description = "ARN of the Athena workgroup the ops box may run queries in (glue_athena output workgroup_arn)."
  type        = string
}

variable "glue_database_names" {
  description = "Glue databases the ops box may read, e.g. values(glue_athena output database_names)."
  type        = list(string)
}

variable "create_instance_profile" {
  description = "Create an EC2 instance profile for the role (for an ops box that is an EC2 instance)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
