# Unity Catalog objects (external locations, catalog, layer schemas, grants), a
# serverless SQL warehouse and the service principal lh360 runs as, in an
# existing Databricks workspace (the databricks provider must point at it).

locals {
  lake_uri             = trimsuffix(var.lake_uri, "/")
  landing_uri          = trimsuffix(var.landing_uri, "/")
  catalog_storage_root = coalesce(var.catalog_storage_root, "${local.lake_uri}/_unity_catalog")
  workspace_api_path   = trimprefix(var.workspace_dir, "/Workspace")
  warehouse_name       = coalesce(var.warehouse_name, "${var.name_prefix}-warehouse")
  sp                   = databricks_service_principal.this.application_id

  # One external location for landing (read-only) and one per lake prefix lh360
  # writes: Unity Catalog validates a location by listing, reading and writing
  # under its URL, and the storage credential's role may write only there.
  landing_location = {
    landing = {
      url        = local.landing_uri
      read_only  = true
      comment    = "lh360 landing zone (read-only: Auto Loader reads, nothing writes)"
      privileges = ["READ_FILES"]
    }
  }
  lake_locations = {
    for name, prefix in var.lake_locations : "lake_${name}" => {
      url       = "${local.lake_uri}/${trim(prefix, "/")}"
      read_only = false
      comment   = "lh360 lake: ${trim(prefix, "/")}/"
      # tables are created in the layers; the Spark job's state is read and
      # written by path; the catalog's managed storage needs no grant
      privileges = (
        contains(var.table_locations, name) ? ["READ_FILES", "WRITE_FILES", "CREATE_EXTERNAL_TABLE"] :
        name == "catalog" ? [] : ["READ_FILES", "WRITE_FILES"]
      )
    }
  }
  external_locations = merge(local.landing_location, local.lake_locations)

  schemas = {
    bronze = "lh360 bronze: raw landing data, one external Delta table per spec"
    silver = "lh360 silver: refined, deduplicated external Delta tables"
    gold   = "lh360 gold: aggregates recomputed from silver"
  }
}

################################################################################
# Identity: the service principal lh360 runs as
################################################################################

resource "databricks_service_principal" "this" {
  display_name               = var.service_principal_name
  active                     = true
  workspace_access           = true
  databricks_sql_access      = true
  allow_cluster_create       = var.service_principal_allow_cluster_create
  allow_instance_pool_create = false
}

################################################################################
# External locations (the storage credential comes from databricks_access)
################################################################################

resource "databricks_external_location" "this" {
  for_each = local.external_locations

  name            = "${var.name_prefix}-${each.key}"
  url             = each.value.url
  credential_name = var.storage_credential_name
  read_only       = each.value.read_only
  owner           = var.owner_group
  comment         = each.value.comment
}

resource "databricks_grants" "external_location" {
  for_each = { for name, location in local.external_locations : name => location if length(location.privileges) > 0 }

  external_location = databricks_external_location.this[each.key].id

  grant {
    principal  = local.sp
    privileges = each.value.privileges
  }
}

################################################################################
# Catalog and schemas
################################################################################

resource "databricks_catalog" "this" {
  name         = var.catalog_name
  storage_root = local.catalog_storage_root
  owner        = var.owner_group
  comment      = "lh360 medallion lakehouse: external Delta tables under ${local.lake_uri}"

  properties = {
    managed_by = "terraform"
    purpose    = "lh360"
  }

  depends_on = [databricks_external_location.this]
}

resource "databricks_schema" "this" {
  for_each = local.schemas

  catalog_name = databricks_catalog.this.name
  name         = each.key
  owner        = var.owner_group
  comment      = each.value

  properties = {
    managed_by = "terraform"
  }
}

resource "databricks_grants" "catalog" {
  catalog = databricks_catalog.this.name

  grant {
    principal  = local.sp
    privileges = ["USE_CATALOG"]
  }

  dynamic "grant" {
    for_each = toset(var.reader_groups)

    content {
      principal  = grant.value
      privileges = ["USE_CATALOG"]
    }
  }
}

resource "databricks_grants" "schema" {
  for_each = local.schemas

  schema = databricks_schema.this[each.key].id

  # lh360 creates and writes the external tables of every layer.
  grant {
    principal  = local.sp
    privileges = ["USE_SCHEMA", "CREATE_TABLE", "SELECT", "MODIFY"]
  }

  dynamic "grant" {
    for_each = each.key == "gold" ? toset(var.reader_groups) : toset([])

    content {
      principal  = grant.value
      privileges = ["USE_SCHEMA", "SELECT"]
    }
  }
}

################################################################################
# Serverless SQL warehouse
################################################################################

resource "databricks_sql_endpoint" "this" {
  name                      = local.warehouse_name
  cluster_size              = var.warehouse_cluster_size
  min_num_clusters          = 1
  max_num_clusters          = var.warehouse_max_num_clusters
  auto_stop_mins            = var.warehouse_auto_stop_mins
  enable_serverless_compute = true
  warehouse_type            = "PRO"
  enable_photon             = true

  tags {
    dynamic "custom_tags" {
      for_each = merge(var.tags, { "lh360" = var.name_prefix })

      content {
        key   = custom_tags.key
        value = custom_tags.value
      }
    }
  }
}

resource "databricks_permissions" "warehouse" {
  sql_endpoint_id = databricks_sql_endpoint.this.id

  access_control {
    service_principal_name = local.sp
    permission_level       = "CAN_USE"
  }

  dynamic "access_control" {
    for_each = toset(var.reader_groups)

    content {
      group_name       = access_control.value
      permission_level = "CAN_USE"
    }
  }
}

################################################################################
# Workspace folder for the Spark job code uploaded by `lh360 deploy`
################################################################################

resource "databricks_directory" "this" {
  path = local.workspace_api_path
}

resource "databricks_permissions" "workspace_dir" {
  directory_path = databricks_directory.this.path

  access_control {
    service_principal_name = local.sp
    permission_level       = "CAN_MANAGE"
  }
}
