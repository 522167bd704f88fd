output "storage_credential_name" {
  description = "Name of the Unity Catalog storage credential, known only once its IAM role, policy and the propagation delay are in place; pass it to databricks_workspace.storage_credential_name so external locations are validated after that."
  value       = databricks_storage_credential.this.name

  depends_on = [time_sleep.unity_catalog_propagation]
}

output "storage_credential_external_id" {
  description = "External ID Databricks presents when assuming the storage credential's role (the role's trust policy requires it)."
  value       = local.uc_external_id
}

output "unity_catalog_role_arn" {
  description = "ARN of the IAM role behind the Unity Catalog storage credential."
  value       = aws_iam_role.this.arn
}

output "unity_catalog_role_name" {
  description = "Name of the IAM role behind the Unity Catalog storage credential."
  value       = aws_iam_role.this.name
}

output "unity_catalog_policy_arn" {
  description = "ARN of the managed policy attached to the Unity Catalog role."
  value       = aws_iam_policy.unity_catalog.arn
}

output "cross_account_role_arn" {
  description = "ARN of the workspace cross-account role (null when create_cross_account_role is false); register it as the workspace's credential configuration."
  value       = try(aws_iam_role.cross_account[0].arn, null)
}
