provider "aws" {
  region = var.aws_region
}

# Workspace-level provider. Credentials come from Databricks unified auth:
# DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET (or a ~/.databrickscfg profile
# named by databricks_profile), never from this code.
provider "databricks" {
  host    = var.databricks_host
  profile = var.databricks_profile
}
