output "landing_bucket_name" {
  description = "Name of the landing bucket."
  value       = aws_s3_bucket.this["landing"].id
}

output "landing_bucket_arn" {
  description = "ARN of the landing bucket."
  value       = aws_s3_bucket.this["landing"].arn
}

output "landing_prefix" {
  description = "Key prefix of the landing zone inside the landing bucket (no slashes at either end)."
  value       = var.landing_prefix
}

output "landing_uri" {
  description = "The target's landing URI for configs/lh360.yaml, s3://<landing bucket>/<landing prefix>."
  value       = "s3://${aws_s3_bucket.this["landing"].id}/${var.landing_prefix}"
}

output "lake_bucket_name" {
  description = "Name of the Delta lake bucket."
  value       = aws_s3_bucket.this["lake"].id
}

output "lake_bucket_arn" {
  description = "ARN of the Delta lake bucket."
  value       = aws_s3_bucket.this["lake"].arn
}

output "lake_uri" {
  description = "The target's lake URI for configs/lh360.yaml, s3://<lake bucket> (no trailing slash)."
  value       = "s3://${aws_s3_bucket.this["lake"].id}"
}

output "athena_results_bucket_name" {
  description = "Name of the Athena query results bucket."
  value       = aws_s3_bucket.this["athena_results"].id
}

output "athena_results_bucket_arn" {
  description = "ARN of the Athena query results bucket."
  value       = aws_s3_bucket.this["athena_results"].arn
}

output "athena_results_uri" {
  description = "Athena output location, s3://<results bucket>/ (with the trailing slash Athena expects)."
  value       = "s3://${aws_s3_bucket.this["athena_results"].id}/"
}

output "access_logs_bucket_name" {
  description = "Name of the bucket that receives the S3 server access logs of the three data buckets."
  value       = aws_s3_bucket.logs.id
}

output "kms_key_arn" {
  description = "ARN of the customer-managed KMS key encrypting the data buckets (also used for Athena results)."
  value       = aws_kms_key.this.arn
}

output "kms_key_id" {
  description = "Key ID of the customer-managed KMS key."
  value       = aws_kms_key.this.key_id
}

output "kms_alias_name" {
  description = "Alias of the customer-managed KMS key."
  value       = aws_kms_alias.this.name
}
