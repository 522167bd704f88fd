terraform {
  required_version = "~> 1.11"

  # Local state on purpose: this root creates the bucket every other root keeps
  # its state in. Keep terraform.tfstate of this folder safe (or migrate it into
  # the new bucket afterwards, see terraform/README.md).

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

provider "aws" {
  region = var.aws_region
}
