"""Raw sources shared by several views of the demo domain."""

from feature_assets import ParquetSource

trips = ParquetSource(
    name="trips",
    path="raw/trips/*.parquet",
    timestamp_field="requested_at",
    description="One row per trip request, written by the dispatch service",
)
