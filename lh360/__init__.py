"""lh360 (Lakehouse360): a medallion lakehouse on AWS and Databricks, driven from YAML table specs."""

__version__ = "0.1.0"
