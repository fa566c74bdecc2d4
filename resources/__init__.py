"""Dagster resources: the offline store (Parquet), the online store (Redis) and DuckDB."""
