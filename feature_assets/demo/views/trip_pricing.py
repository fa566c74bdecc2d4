"""On-demand features of the requested trip, computed at read time from its fare and distance and the driver's stats."""

import polars as pl

from feature_assets import Field, OnDemandFeatureView, RequestSource
from feature_assets.demo.views.drivers import driver_trip_stats

trip_request = RequestSource(
    "trip_request",
    [Field("fare", pl.Float64, "Quoted fare of the requested trip"), Field("distance_km", pl.Float64, "Route length")],
)

trip_pricing = OnDemandFeatureView(
    "trip_pricing",
    sources=[driver_trip_stats, trip_request],
    schema=[
        Field("fare_per_km", pl.Float64, "Quoted fare per km of the requested trip"),
        Field("fare_vs_driver_mean", pl.Float64, "Quoted fare over the driver's mean fare of the last 7 days"),
    ],
    expressions={
        "fare_per_km": "fare / NULLIF(distance_km, 0)",
        "fare_vs_driver_mean": "fare / NULLIF(fare_mean_7d, 0)",
    },
    description="Price of the requested trip against its length and the driver's recent fares",
)
