variable "database_prefix" {
  description = "Prefix of the Glue database names: <prefix>_bronze, <prefix>_silver, <prefix>_gold and <prefix>_ledger (Glue lowercases names; use letters, digits and underscores)."
  type        = string
  default     = "lh360"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,100}$", var.database_prefix))
    error_message = "database_prefix must start with a lowercase letter and hold only lowercase letters, digits and underscores."
  }
}

variable "lake_uri" {
  description = "The target's lake URI, s3://<lake bucket> (lake_storage output lake_uri); each database's location is a folder under it."
  type        = string

  validation {
    condition     = can(regex("^s3://[a-z0-9.-]+(/.*)?$", var.lake_uri))
    error_message = "lake_uri must be an s3:// URI."
  }
}

variable "workgroup_name" {
  description = "Name of the Athena workgroup lh360 validates in (the target's athena.workgroup)."
  type        = string
  default     = "lh360"
}

variable "athena_output_location" {
  description = "S3 URI where the workgroup writes query results (lake_storage output athena_results_uri), ending with a slash."
  type        = string

  validation {
    condition     = can(regex("^s3://.+/$", var.athena_output_location))
    error_message = "athena_output_location must be an s3:// URI ending with a slash."
  }
}

variable "kms_key_arn" {
  description = "ARN of the KMS key used to encrypt query results (SSE_KMS); lake_storage output kms_key_arn."
  type        = string
}

variable "bytes_scanned_cutoff_per_query" {
  description = "Athena cancels any query of the workgroup that would scan more than this many bytes (at least 10 MB). Default 100 GiB."
  type        = number
  default     = 107374182400

  validation {
    condition     = var.bytes_scanned_cutoff_per_query >= 10485760
    error_message = "bytes_scanned_cutoff_per_query must be at least 10485760 (10 MB), Athena's minimum."
  }
}

variable "expected_bucket_owner" {
  description = "AWS account ID that must own the results bucket; Athena refuses to write results elsewhere. Null means the current account."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let terraform destroy delete the workgroup even when it holds saved queries or query history."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
