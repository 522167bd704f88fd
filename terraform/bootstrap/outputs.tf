output "state_bucket_name" {
  description = "Name of the Terraform state bucket: the bucket of terraform/envs/<env>.s3.tfbackend."
  value       = aws_s3_bucket.this.id
}

output "state_kms_key_arn" {
  description = "ARN of the KMS key encrypting the state (terraform/envs names it by its alias in the backend block)."
  value       = aws_kms_key.this.arn
}

output "backend_config" {
  description = "The S3 backend settings of terraform/envs for this account: bucket in <env>.s3.tfbackend; region, encrypt, kms_key_id and use_lockfile in envs/versions.tf."
  value = {
    bucket       = aws_s3_bucket.this.id
    region       = var.aws_region
    encrypt      = true
    kms_key_id   = aws_kms_alias.this.name
    use_lockfile = true
  }
}
