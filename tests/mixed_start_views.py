"""A code location whose three views start on three different days, as real projects that add views over time."""

import polars as pl

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource
from feature_assets.orchestration.project import build_definitions

driver = Entity("driver", ["driver_id"])
events = ParquetSource("driver_events", "raw/driver_events/*.parquet", timestamp_field="ts")


def view(name: str, start_date: str) -> FeatureView:
    return FeatureView(
        name, entities=[driver], source=events, schema=[Field("rating", pl.Float64)], start_date=start_date
    )


views = [
    view("since_january_first", "2025-01-01"),
    view("since_the_fifth", "2025-01-05"),
    view("since_the_tenth", "2025-01-10"),
]
repository = FeatureRepository(views)
defs = build_definitions(repository)
