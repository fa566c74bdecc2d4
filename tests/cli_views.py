"""A small repository for the command-line tests: a pushed driver view, a batch view on the same entity, a service."""

import polars as pl

from feature_assets import Entity, FeatureRepository, FeatureService, FeatureView, Field, ParquetSource, PushSource

driver = Entity("driver", ["driver_id"], description="A driver of the fleet")
history = ParquetSource("driver_history", "raw/driver_history/*.parquet", timestamp_field="event_timestamp")

driver_stats = FeatureView(
    "driver_stats",
    entities=[driver],
    source=PushSource("driver_stats_push", batch_source=history),
    schema=[
        Field("conv_rate", pl.Float64, min_value=0.0, max_value=1.0, description="share of offers accepted"),
        Field("trips", pl.Int64, nullable=False),
    ],
    ttl="3650d",
    owner="team:marketplace",
    tags={"tier": "gold"},
    description="Conversion and trip counts pushed by the dispatch service",
    start_date="2025-01-01",
)
driver_rating = FeatureView(
    "driver_rating",
    entities=[driver],
    source=history,
    schema=[Field("rating", pl.Float64)],
    ttl="3650d",
    start_date="2025-01-01",
)
ranking = FeatureService("ranking", ["driver_stats:conv_rate", "driver_rating:rating"], owner="team:marketplace")
repository = FeatureRepository([driver_stats, driver_rating], services=[ranking])
