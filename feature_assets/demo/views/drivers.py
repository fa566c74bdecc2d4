"""Driver features: the profile snapshot and windowed statistics of the driver's trips."""

import polars as pl

from feature_assets import Aggregation, FeatureView, Field, ParquetSource
from feature_assets.demo.calendar import FIRST_DAY
from feature_assets.demo.views.entities import driver
from feature_assets.demo.views.sources import trip_stream, trips

driver_snapshots = ParquetSource(
    name="driver_snapshots",
    path="raw/driver_snapshots/*.parquet",
    timestamp_field="snapshot_at",
    created_timestamp_field="loaded_at",
    description="Daily export of the driver table from the operations database",
)

driver_profile = FeatureView(
    "driver_profile",
    entities=[driver],
    source=driver_snapshots,
    schema=[
        Field("rating", pl.Float64, "Average rider rating", nullable=False, min_value=1.0, max_value=5.0),
        Field("acceptance_rate", pl.Float64, "Share of offered trips accepted", min_value=0.0, max_value=1.0),
        Field("vehicle_type", pl.String, "Vehicle class", nullable=False, allowed_values=["economy", "comfort", "xl"]),
        Field("years_active", pl.Int64, "Whole years since the driver's first trip", min_value=0),
    ],
    ttl="2d",
    owner="team:marketplace",
    tags={"domain": "drivers", "tier": "gold"},
    description="Latest driver profile as exported each day",
    start_date=FIRST_DAY,
)

driver_trip_stats = FeatureView(
    "driver_trip_stats",
    entities=[driver],
    source=trips,
    aggregations=[
        Aggregation("fare", "count", "1h", name="trips_1h"),
        Aggregation("fare", "count", "1d", name="trips_1d"),
        Aggregation("fare", "count", "7d", name="trips_7d"),
        Aggregation("fare", "sum", "1d", name="fare_sum_1d"),
        Aggregation("fare", "mean", "7d", name="fare_mean_7d"),
        Aggregation("fare", "max", "30d", name="fare_max_30d"),
        Aggregation("distance_km", "min", "1d", name="distance_min_1d"),
        Aggregation("distance_km", "last", "1d", name="distance_last_1d"),
        Aggregation("customer_id", "count_distinct", "7d", name="customers_7d"),
    ],
    step="1h",
    ttl="2d",
    owner="team:marketplace",
    tags={"domain": "drivers"},
    description="Hourly trailing-window statistics of each driver's trips",
    start_date=FIRST_DAY,
)

driver_activity_live = FeatureView(
    "driver_activity_live",
    entities=[driver],
    source=trip_stream,
    aggregations=[
        Aggregation("fare", "count", "10m", name="trips_10m"),
        Aggregation("fare", "count", "1h", name="trips_1h"),
        Aggregation("fare", "sum", "1h", name="fare_sum_1h"),
        Aggregation("distance_km", "last", "1h", name="distance_last_1h"),
    ],
    step="5m",
    allowed_lateness="5m",
    ttl="1h",
    owner="team:marketplace",
    tags={"domain": "drivers", "freshness": "streaming"},
    description="Each driver's trips in the last 10 minutes and hour, kept fresh by stream workers",
    start_date=FIRST_DAY,
)
