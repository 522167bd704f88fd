variable "name_prefix" {
  description = "Prefix of every bucket name and of the KMS alias, e.g. \"lh360-prod\". Buckets are <prefix>-landing, <prefix>-lake, <prefix>-athena-results and <prefix>-access-logs."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 characters of lowercase letters, digits and hyphens (it becomes part of S3 bucket names)."
  }
}

variable "landing_prefix" {
  description = "Key prefix inside the landing bucket where source systems drop files; the landing URI is s3://<landing bucket>/<landing_prefix>."
  type        = string
  default     = "raw"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.landing_prefix))
    error_message = "landing_prefix must be a relative key prefix without leading or trailing slashes, e.g. \"raw\"."
  }
}

variable "landing_retention_days" {
  description = "Days a landing file is kept before S3 expires it. Must exceed the longest time a file can wait for ingest (each file is ingested exactly once, so it is not needed afterwards)."
  type        = number
  default     = 90

  validation {
    condition     = var.landing_retention_days >= 7
    error_message = "landing_retention_days must be at least 7 so a delayed ingest never loses a file."
  }
}

variable "landing_noncurrent_version_retention_days" {
  description = "Days a noncurrent (overwritten or deleted) landing object version is kept; landing is versioned so an accidental overwrite can be undone."
  type        = number
  default     = 30

  validation {
    condition     = var.landing_noncurrent_version_retention_days >= 1
    error_message = "landing_noncurrent_version_retention_days must be at least 1."
  }
}

variable "athena_results_retention_days" {
  description = "Days Athena query results are kept in the results bucket."
  type        = number
  default     = 30

  validation {
    condition     = var.athena_results_retention_days >= 1
    error_message = "athena_results_retention_days must be at least 1."
  }
}

variable "access_log_retention_days" {
  description = "Days S3 server access logs are kept in the log bucket."
  type        = number
  default     = 365

  validation {
    condition     = var.access_log_retention_days >= 1
    error_message = "access_log_retention_days must be at least 1."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which an incomplete multipart upload is aborted (and its parts deleted) in every bucket."
  type        = number
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1
    error_message = "abort_incomplete_multipart_upload_days must be at least 1."
  }
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period, in days, before the customer-managed KMS key is deleted after a destroy (7-30)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30
    error_message = "kms_deletion_window_in_days must be between 7 and 30."
  }
}

variable "landing_eventbridge_enabled" {
  description = "Send landing bucket events to Amazon EventBridge (for event-driven triggering instead of cron)."
  type        = bool
  default     = false
}

variable "landing_queue_notifications" {
  description = "Optional SQS notifications for new landing files (e.g. for Auto Loader file-notification mode). Each item: queue_arn, and optionally events (default [\"s3:ObjectCreated:*\"]) and filter_suffix. filter_prefix is always the landing prefix."
  type = list(object({
    queue_arn     = string
    events        = optional(list(string), ["s3:ObjectCreated:*"])
    filter_suffix = optional(string)
  }))
  default = []
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete non-empty buckets. Keep false outside throw-away environments."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
