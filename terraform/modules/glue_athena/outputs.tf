output "workgroup_name" {
  description = "Name of the Athena workgroup (the target's athena.workgroup)."
  value       = aws_athena_workgroup.this.name
}

output "workgroup_arn" {
  description = "ARN of the Athena workgroup."
  value       = aws_athena_workgroup.this.arn
}

output "output_location" {
  description = "S3 URI where the workgroup writes query results (the target's athena.output)."
  value       = var.athena_output_location
}

output "database_names" {
  description = "Glue database names by role: bronze, silver, gold and ledger."
  value       = { for k, db in aws_glue_catalog_database.this : k => db.name }
}

output "database_arns" {
  description = "Glue database ARNs by role: bronze, silver, gold and ledger."
  value       = { for k, db in aws_glue_catalog_database.this : k => db.arn }
}
