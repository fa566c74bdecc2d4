"""A small online feature view used by the publishing tests, with its repository."""

import polars as pl

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource

driver = Entity("driver", ["driver_id"])

driver_quality = FeatureView(
    "driver_quality",
    entities=[driver],
    source=ParquetSource("driver_quality_events", "raw/driver_quality/*.parquet", timestamp_field="ts"),
    schema=[
        Field("rating", pl.Float64, nullable=False, min_value=1.0, max_value=5.0),
        Field("city", pl.String),
    ],
    ttl="3650d",
    start_date="2025-01-01",
)

repository = FeatureRepository([driver_quality])
