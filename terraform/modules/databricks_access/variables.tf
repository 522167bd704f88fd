variable "name_prefix" {
  description = "Prefix of the IAM role and policy names, e.g. \"lh360-prod\"."
  type        = string
}

variable "landing_bucket_arn" {
  description = "ARN of the landing bucket (lake_storage output landing_bucket_arn). The Unity Catalog role may only read it."
  type        = string
}

variable "landing_prefix" {
  description = "Key prefix of the landing zone inside the landing bucket (lake_storage output landing_prefix); reads are limited to it."
  type        = string
  default     = "raw"
}

variable "lake_bucket_arn" {
  description = "ARN of the Delta lake bucket (lake_storage output lake_bucket_arn). The Unity Catalog role reads and writes it."
  type        = string
}

variable "lake_write_prefixes" {
  description = "Lake prefixes the Unity Catalog role may read and write (tables, the Spark job's state, the catalog's managed storage); the rest of the lake, the ledgers included, stays out of its reach."
  type        = list(string)
  default     = ["bronze", "silver", "gold", "quarantine", "_lh360/state", "_unity_catalog"]
}

variable "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the buckets (lake_storage output kms_key_arn)."
  type        = string
}

variable "storage_credential_name" {
  description = "Name of the Unity Catalog storage credential that wraps the role; null means <name_prefix>-storage."
  type        = string
  default     = null
}

variable "storage_credential_owner" {
  description = "Account-level group that owns the storage credential. A group, never a person's e-mail."
  type        = string

  validation {
    condition     = !strcontains(var.storage_credential_owner, "@")
    error_message = "storage_credential_owner must be a group name, not a user e-mail."
  }
}

variable "unity_catalog_master_role_arn" {
  description = "ARN of the Databricks Unity Catalog master role that assumes the storage-credential role (the value for the AWS commercial partition)."
  type        = string
  default     = "arn:aws:iam::414351767826:role/unity-catalog-prod-UCMasterRole-14S5ZJVKOTYTL"
}

variable "create_cross_account_role" {
  description = "Create the cross-account IAM role that Databricks uses to run classic compute in this AWS account (register its ARN as the workspace credential configuration). Set false when the workspace's credential role is managed elsewhere."
  type        = bool
  default     = true
}

variable "databricks_account_id" {
  description = "Databricks account ID (a UUID from the account console); the cross-account role trusts Databricks only with this sts:ExternalId. Required when create_cross_account_role is true."
  type        = string
  default     = null
}

variable "databricks_aws_account_id" {
  description = "AWS account ID of the Databricks control plane trusted by the cross-account role."
  type        = string
  default     = "414351767826"
}

variable "cross_account_policy_type" {
  description = "Databricks cross-account policy flavour: \"restricted\" (customer-managed VPC, actions limited to vpc_id, security_group_id and this region - the least privilege), \"customer\" (customer-managed VPC) or \"managed\" (Databricks-managed VPC)."
  type        = string
  default     = "restricted"

  validation {
    condition     = contains(["restricted", "customer", "managed"], var.cross_account_policy_type)
    error_message = "cross_account_policy_type must be one of restricted, customer, managed."
  }
}

variable "vpc_id" {
  description = "ID of the workspace's customer-managed VPC; required when cross_account_policy_type is \"restricted\"."
  type        = string
  default     = null
}

variable "security_group_id" {
  description = "ID of the workspace's security group; required when cross_account_policy_type is \"restricted\"."
  type        = string
  default     = null
}

variable "iam_propagation_delay" {
  description = "Time to wait after creating the Unity Catalog role before Databricks validates it (IAM is eventually consistent), e.g. \"20s\"."
  type        = string
  default     = "20s"
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
