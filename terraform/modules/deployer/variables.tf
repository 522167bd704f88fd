variable "name_prefix" {
  description = "Prefix of the policy name, e.g. \"lh360-prod\"."
  type        = string
}

variable "lake_bucket_arn" {
  description = "ARN of the Delta lake bucket (lake_storage output lake_bucket_arn)."
  type        = string
}

variable "delta_log_folders" {
  description = "Lake folders whose tables' Delta logs (<folder>/<table>/_delta_log/) lh360 deploy reads: the layers and the ledgers (_lh360/runs, _lh360/checks)."
  type        = list(string)
  default     = ["bronze", "silver", "gold", "quarantine", "_lh360"]
}

variable "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the lake bucket (lake_storage output kms_key_arn)."
  type        = string
}

variable "glue_database_names" {
  description = "Glue databases lh360 deploy registers tables in, e.g. values(glue_athena output database_names)."
  type        = list(string)
}

variable "attach_to_roles" {
  description = "Names of existing IAM roles (the operators') to attach the policy to; empty attaches it nowhere."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
