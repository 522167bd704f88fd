output "catalog_name" {
  description = "Name of the Unity Catalog catalog (the target's databricks.catalog)."
  value       = databricks_catalog.this.name
}

output "schema_names" {
  description = "Full names of the layer schemas by layer: bronze, silver and gold (<catalog>.<layer>)."
  value       = { for k, s in databricks_schema.this : k => s.id }
}

output "external_location_urls" {
  description = "URLs of the external locations by name: landing (read-only) and one per lake prefix."
  value       = { for k, l in databricks_external_location.this : k => l.url }
}

output "warehouse_id" {
  description = "ID of the serverless SQL warehouse (the target's databricks.warehouse_id)."
  value       = databricks_sql_endpoint.this.id
}

output "warehouse_http_path" {
  description = "HTTP path of the SQL warehouse for JDBC/ODBC and databricks-sql-connector clients."
  value       = databricks_sql_endpoint.this.odbc_params[0].path
}

output "service_principal_application_id" {
  description = "Application (client) ID of the lh360 service principal; create its OAuth secret out of band and give both to the ops box as DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET."
  value       = databricks_service_principal.this.application_id
}

output "workspace_dir" {
  description = "Workspace folder for the Spark job code (the target's databricks.workspace_dir)."
  value       = var.workspace_dir
}
