"""Data checks: specs → one fused SQL query per table and dialect → results, on DuckDB, Athena or DBSQL."""
