output "state_bucket_name" {
  description = "Name of the Terraform state bucket, for the backend \"s3\" blocks of envs/dev and envs/prod."
  value       = aws_s3_bucket.this.id
}

output "state_kms_key_arn" {
  description = "ARN of the KMS key encrypting the state bucket (add kms_key_id to a backend block to encrypt state objects with it explicitly)."
  value       = aws_kms_key.this.arn
}
