variable "aws_region" {
  description = "Region of the state bucket (the same as the environments' backend region)."
  type        = string
  default     = "sa-east-1"
}

variable "state_bucket_name" {
  description = "Globally unique name of the Terraform state bucket; put it in terraform/envs/<env>.s3.tfbackend."
  type        = string
}

variable "noncurrent_state_retention_days" {
  description = "Days old versions of state files are kept (to roll back a bad apply)."
  type        = number
  default     = 90
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = { project = "lh360", managed_by = "terraform" }
}
