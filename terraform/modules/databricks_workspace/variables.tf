variable "name_prefix" {
  description = "Prefix of the external location and warehouse names, e.g. \"lh360-prod\"."
  type        = string
}

variable "catalog_name" {
  description = "Unity Catalog catalog holding the bronze, silver and gold schemas (the target's databricks.catalog)."
  type        = string
  default     = "lakehouse360"
}

variable "owner_group" {
  description = "Account-level group that owns the catalog, schemas and external locations. A group, never a person's e-mail, so ownership survives people leaving."
  type        = string

  validation {
    condition     = !strcontains(var.owner_group, "@")
    error_message = "owner_group must be a group name, not a user e-mail."
  }
}

variable "reader_groups" {
  description = "Groups that may read gold (USE_CATALOG, USE_SCHEMA and SELECT on gold) and use the SQL warehouse."
  type        = list(string)
  default     = []
}

variable "storage_credential_name" {
  description = "Unity Catalog storage credential the external locations use (databricks_access output storage_credential_name, which becomes known only once its IAM role is usable)."
  type        = string
}

variable "landing_uri" {
  description = "The target's landing URI, s3://<bucket>/<prefix> (lake_storage output landing_uri); becomes a read-only external location."
  type        = string

  validation {
    condition     = can(regex("^s3://[a-z0-9.-]+(/.*)?$", var.landing_uri))
    error_message = "landing_uri must be an s3:// URI."
  }
}

variable "lake_uri" {
  description = "The target's lake URI, s3://<bucket> (lake_storage output lake_uri); each of its lake_locations prefixes becomes a read/write external location."
  type        = string

  validation {
    condition     = can(regex("^s3://[a-z0-9.-]+(/.*)?$", var.lake_uri))
    error_message = "lake_uri must be an s3:// URI."
  }
}

variable "lake_locations" {
  description = "Lake prefixes that get an external location, by name (tables of each layer, the Spark job's state, the catalog's managed storage): the same prefixes the storage credential's role may write (databricks_access lake_write_prefixes)."
  type        = map(string)
  default = {
    bronze     = "bronze"
    silver     = "silver"
    gold       = "gold"
    quarantine = "quarantine"
    state      = "_lh360/state"
    catalog    = "_unity_catalog"
  }
}

variable "table_locations" {
  description = "Names in lake_locations where lh360 creates external tables (CREATE_EXTERNAL_TABLE for the service principal)."
  type        = list(string)
  default     = ["bronze", "silver", "gold", "quarantine"]
}

variable "catalog_storage_root" {
  description = "Managed storage location of the catalog. Null means <lake_uri>/_unity_catalog, the lake's catalog external location (lake_locations), apart from the lh360 layer folders (lh360 writes external tables only)."
  type        = string
  default     = null
}

variable "service_principal_name" {
  description = "Display name of the service principal lh360 runs as."
  type        = string
  default     = "lh360"
}

variable "service_principal_allow_cluster_create" {
  description = "Let the lh360 service principal create clusters. Needed only when a target uses compute: {new_cluster: ...}; serverless needs nothing."
  type        = bool
  default     = false
}

variable "workspace_dir" {
  description = "Workspace folder where lh360 deploy uploads the Spark job code (the target's databricks.workspace_dir)."
  type        = string
  default     = "/Workspace/Shared/lh360"

  validation {
    condition     = startswith(var.workspace_dir, "/Workspace/")
    error_message = "workspace_dir must be an absolute workspace path starting with /Workspace/."
  }
}

variable "warehouse_name" {
  description = "Name of the serverless SQL warehouse; null means <name_prefix>-warehouse."
  type        = string
  default     = null
}

variable "warehouse_cluster_size" {
  description = "T-shirt size of the SQL warehouse, e.g. \"2X-Small\"."
  type        = string
  default     = "2X-Small"
}

variable "warehouse_max_num_clusters" {
  description = "Upper bound of the SQL warehouse's autoscaling."
  type        = number
  default     = 1

  validation {
    condition     = var.warehouse_max_num_clusters >= 1
    error_message = "warehouse_max_num_clusters must be at least 1."
  }
}

variable "warehouse_auto_stop_mins" {
  description = "Minutes of inactivity after which the SQL warehouse stops (so an idle warehouse costs nothing)."
  type        = number
  default     = 10

  validation {
    condition     = var.warehouse_auto_stop_mins >= 1 && var.warehouse_auto_stop_mins <= 120
    error_message = "warehouse_auto_stop_mins must be between 1 and 120; 0 (never stop) is not allowed."
  }
}

variable "tags" {
  description = "Tags put on the SQL warehouse (and so on its usage records)."
  type        = map(string)
  default     = {}
}
