"""Feature views used only by the online-store tests: every supported dtype, integer, String and composite keys."""

import polars as pl

from feature_assets import Entity, FeatureRepository, FeatureService, FeatureView, Field, ParquetSource

driver = Entity("driver", ["driver_id"])
account = Entity("account", ["account_id"], key_dtypes={"account_id": pl.String})
account_number = Entity("account_number", ["account_no"])
route = Entity("route", ["origin", "destination"], key_dtypes={"origin": pl.String, "destination": pl.String})

source = ParquetSource("online_test_events", "online_test/events/*.parquet", timestamp_field="event_timestamp")

driver_stats = FeatureView(
    "driver_stats",
    entities=[driver],
    source=source,
    ttl="1d",
    schema=[
        Field("trips_today", pl.Int64),
        Field("rating", pl.Float64),
        Field("active", pl.Boolean),
        Field("city", pl.String),
        Field("acceptance_rate", pl.Float32),
    ],
)

driver_profile = FeatureView(
    "driver_profile",
    entities=[driver],
    source=source,
    schema=[
        Field("signup_date", pl.Date),
        Field("last_seen", pl.Datetime("us", "UTC")),
        Field("languages", pl.List(pl.String)),
        Field("vehicle_count", pl.Int32),
        Field("city", pl.String),
    ],
)

driver_counters = FeatureView(
    "driver_counters",
    entities=[driver],
    source=source,
    schema=[Field("counter", pl.Int64), Field("label", pl.String)],
)

short_lived = FeatureView(
    "short_lived",
    entities=[driver],
    source=source,
    ttl="2s",
    schema=[Field("score", pl.Float64)],
)

all_types = FeatureView(
    "all_types",
    entities=[driver],
    source=source,
    schema=[
        Field("i8", pl.Int8),
        Field("i16", pl.Int16),
        Field("i32", pl.Int32),
        Field("i64", pl.Int64),
        Field("u8", pl.UInt8),
        Field("u16", pl.UInt16),
        Field("u32", pl.UInt32),
        Field("u64", pl.UInt64),
        Field("f32", pl.Float32),
        Field("f64", pl.Float64),
        Field("flag", pl.Boolean),
        Field("text", pl.String),
        Field("day", pl.Date),
        Field("moment", pl.Datetime("us", "UTC")),
        Field("ints", pl.List(pl.Int64)),
        Field("floats", pl.List(pl.Float64)),
        Field("texts", pl.List(pl.String)),
        Field("flags", pl.List(pl.Boolean)),
        Field("days", pl.List(pl.Date)),
        Field("moments", pl.List(pl.Datetime("us", "UTC"))),
        Field("matrix", pl.List(pl.List(pl.Int64))),
    ],
)

account_balance = FeatureView(
    "account_balance",
    entities=[account],
    source=source,
    schema=[Field("balance", pl.Float64)],
)

account_number_balance = FeatureView(
    "account_number_balance",
    entities=[account_number],
    source=source,
    schema=[Field("balance", pl.Float64)],
)

route_times = FeatureView(
    "route_times",
    entities=[route],
    source=source,
    schema=[Field("minutes_p50", pl.Float64)],
)

offline_only = FeatureView(
    "offline_only",
    entities=[driver],
    source=source,
    online=False,
    schema=[Field("secret", pl.Int64)],
)

driver_ranking = FeatureService(
    "driver_ranking", ["driver_stats:rating", "driver_profile:vehicle_count", "driver_stats:trips_today"]
)

repository = FeatureRepository(
    [
        driver_stats,
        driver_profile,
        driver_counters,
        short_lived,
        all_types,
        account_balance,
        account_number_balance,
        route_times,
        offline_only,
    ],
    services=[driver_ranking],
)
