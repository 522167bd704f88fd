terraform {
  required_version = "~> 1.11"

  # Created once by terraform/bootstrap (see terraform/README.md). S3 native
  # locking (use_lockfile) replaces the DynamoDB lock table.
  backend "s3" {
    bucket       = "lh360-tfstate-sa-east-1"
    key          = "lh360/prod/terraform.tfstate"
    region       = "sa-east-1"
    encrypt      = true
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
