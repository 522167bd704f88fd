terraform {
  required_version = "~> 1.11"

  # One root for every environment: the bucket and the state key come from
  # <env>.s3.tfbackend (terraform init -reconfigure -backend-config=prod.s3.tfbackend),
  # the values from <env>.tfvars. The state bucket and its KMS key are created once
  # by terraform/bootstrap; encrypt = true without kms_key_id would ask S3 for
  # SSE-S3 (AES256) and bypass that key. S3 native locking (use_lockfile)
  # replaces the DynamoDB lock table.
  backend "s3" {
    region       = "sa-east-1"
    encrypt      = true
    kms_key_id   = "alias/lh360-terraform-state"
    use_lockfile = true
  }

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    databricks = {
      source  = "databricks/databricks"
      version = "~> 1.85"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }
}
