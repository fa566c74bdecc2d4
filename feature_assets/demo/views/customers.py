"""Customer features derived from the customer table with a Polars transformation."""

import polars as pl

from feature_assets import FeatureView, Field, ParquetSource
from feature_assets.demo.calendar import FIRST_DAY
from feature_assets.demo.views.entities import customer

customer_snapshots = ParquetSource(
    name="customer_snapshots",
    path="raw/customer_snapshots/*.parquet",
    timestamp_field="snapshot_at",
    description="Daily export of the customer table",
)


def customer_profile_features(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Derive spend per trip, tenure and the premium flag from the customer snapshot."""
    return rows.with_columns(
        pl.when(pl.col("lifetime_trips") > 0)
        .then(pl.col("lifetime_spend") / pl.col("lifetime_trips"))
        .alias("avg_spend_per_trip"),
        (pl.col("event_timestamp").dt.date() - pl.col("signup_date")).dt.total_days().alias("tenure_days"),
        (pl.col("segment") == "premium").alias("is_premium"),
    )


customer_profile = FeatureView(
    "customer_profile",
    entities=[customer],
    source=customer_snapshots,
    schema=[
        Field("avg_spend_per_trip", pl.Float64, "Lifetime spend divided by lifetime trips", min_value=0.0),
        Field("tenure_days", pl.Int64, "Days since sign-up", nullable=False, min_value=0),
        Field("is_premium", pl.Boolean, "Customer is in the premium segment", nullable=False),
        Field("segment", pl.String, "Marketing segment", allowed_values=["new", "regular", "premium"]),
    ],
    transformation=customer_profile_features,
    ttl="2d",
    owner="team:growth",
    tags={"domain": "customers"},
    description="Customer spend and tenure features",
    start_date=FIRST_DAY,
)
