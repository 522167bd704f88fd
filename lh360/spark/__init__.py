"""The self-contained PySpark job that lh360 uploads to a Databricks workspace (pyspark + stdlib only)."""
