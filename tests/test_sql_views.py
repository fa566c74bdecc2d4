"""A batch view written in SQL gives exactly the rows of the same view written as a Polars transformation."""

import random
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from feature_assets import Entity, FeatureView, Field, ParquetSource
from feature_assets.compute.partition_compute import compute_partition
from feature_assets.language.errors import DefinitionError, TransformationOutputError
from feature_assets.orchestration.view_assets import build_view_asset
from resources.offline_store import OfflineStore

DRIVER = Entity("driver", ["driver_id"])
TRIPS = ParquetSource("trips", "raw/trips/*.parquet", timestamp_field="requested_at")
DAY = date(2025, 1, 7)
SCHEMA = [
    Field("fare_per_km", pl.Float64, min_value=0.0),
    Field("long_trip", pl.Boolean),
    Field("city", pl.String),
]
SQL = """
SELECT driver_id, event_timestamp, created_timestamp,
       fare / NULLIF(distance_km, 0) AS fare_per_km,
       distance_km > 10 AS long_trip,
       UPPER(city) AS city
FROM source
WHERE fare IS NOT NULL
"""


def python_features(rows: pl.LazyFrame) -> pl.LazyFrame:
    """The SQL above, in Polars."""
    return rows.filter(pl.col("fare").is_not_null()).select(
        "driver_id",
        "event_timestamp",
        "created_timestamp",
        (pl.col("fare") / pl.when(pl.col("distance_km") != 0).then(pl.col("distance_km"))).alias("fare_per_km"),
        (pl.col("distance_km") > 10).alias("long_trip"),
        pl.col("city").str.to_uppercase().alias("city"),
    )


def view(name: str, **how) -> FeatureView:
    return FeatureView(name, entities=[DRIVER], source=TRIPS, schema=SCHEMA, start_date="2025-01-01", **how)


def write_trips(store: OfflineStore, seed: int) -> None:
    """Random trips of the day and the day around it, with nulls, zero distances and tied times."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 6, 12, tzinfo=UTC)
    rows = [
        {
            "driver_id": rng.randrange(20),
            "requested_at": start + timedelta(minutes=rng.randrange(0, 48 * 60, 7)),
            "fare": rng.choice([None, round(rng.uniform(3, 60), 2)]),
            "distance_km": rng.choice([None, 0.0, round(rng.uniform(0.5, 30), 2)]),
            "city": rng.choice([None, "oslo", "Bergen"]),
        }
        for _ in range(300)
    ]
    frame = pl.DataFrame(rows, schema_overrides={"requested_at": pl.Datetime("us", "UTC")})
    store.write_file("raw/trips/trips.parquet", frame.unique(subset=["driver_id", "requested_at"]))


def materialize(feature_view: FeatureView, store: OfflineStore, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_view_asset(feature_view)],
        instance=instance,
        resources={"offline_store": store},
        partition_key=DAY.isoformat(),
        raise_on_error=False,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_sql_view_gives_the_rows_of_the_same_polars_transformation(seed, offline_store, instance):
    write_trips(offline_store, seed)
    in_sql, in_python = view("trip_sql", sql=SQL), view("trip_python", transformation=python_features)
    assert materialize(in_sql, offline_store, instance).success
    assert materialize(in_python, offline_store, instance).success
    from_sql = offline_store.read_partition(in_sql, DAY)
    assert from_sql.height > 0 and from_sql["fare_per_km"].null_count() > 0
    assert from_sql.equals(offline_store.read_partition(in_python, DAY))


def test_a_sql_error_names_the_view_and_quotes_the_problem(offline_store, instance):
    write_trips(offline_store, 1)
    broken = view(
        "trip_sql", sql="SELECT driver_id, event_timestamp, created_timestamp, tip AS fare_per_km FROM source"
    )
    result = materialize(broken, offline_store, instance)
    assert not result.success
    error = result.failure_data_for_node("trip_sql").error.cause
    assert error.cls_name == "TransformationOutputError"
    assert "FeatureView 'trip_sql': its sql does not run over the source rows" in error.message
    assert "tip" in error.message and "the query: SELECT driver_id" in error.message


def test_a_sql_view_that_misses_a_feature_fails_listing_the_columns_it_produced(offline_store):
    write_trips(offline_store, 1)
    missing = view("trip_sql", sql="SELECT driver_id, event_timestamp, created_timestamp, city FROM source")
    with pytest.raises(TransformationOutputError, match=r"lack column\(s\) \['fare_per_km', 'long_trip'\]"):
        compute_partition(missing, offline_store, DAY)


def test_sql_and_a_transformation_together_are_rejected():
    with pytest.raises(DefinitionError, match="give one of sql, a transformation or aggregations"):
        view("trip_sql", sql=SQL, transformation=python_features)
    with pytest.raises(DefinitionError, match="sql must be a SELECT statement"):
        view("trip_sql", sql="  ")
