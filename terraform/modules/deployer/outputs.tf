output "policy_arn" {
  description = "ARN of the managed policy that lets an operator run lh360 deploy."
  value       = aws_iam_policy.this.arn
}

output "policy_name" {
  description = "Name of the managed policy that lets an operator run lh360 deploy."
  value       = aws_iam_policy.this.name
}
