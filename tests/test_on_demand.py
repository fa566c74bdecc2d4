"""On-demand features: one function (or SQL expressions) gives equal values online and in training."""

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource
from feature_assets.language.errors import DefinitionError, EntityFrameError, TransformationOutputError
from feature_assets.language.on_demand import OnDemandFeatureView, RequestSource
from feature_assets.retrieval.point_in_time import get_historical_features
from resources.online_store import RedisOnlineStore

DRIVER = Entity("driver", ["driver_id"])
DRIVER_STATS = FeatureView(
    "driver_stats",
    entities=[DRIVER],
    source=ParquetSource("driver_events", "raw/driver_events/*.parquet", timestamp_field="ts"),
    schema=[Field("conv_rate", pl.Float64), Field("trips", pl.Int64)],
    ttl="1d",
)
TRIP_REQUEST = RequestSource("trip_request", [Field("fare", pl.Float64), Field("distance_km", pl.Float64)])
OUTPUTS = [Field("fare_per_km", pl.Float64), Field("expected_fare", pl.Float64)]


def trip_features(inputs: pl.DataFrame) -> pl.DataFrame:
    return inputs.select(
        (pl.col("fare") / pl.when(pl.col("distance_km") != 0).then(pl.col("distance_km"))).alias("fare_per_km"),
        (pl.col("conv_rate") * pl.col("trips") * pl.col("fare")).alias("expected_fare"),
    )


IN_PYTHON = OnDemandFeatureView("trip_python", sources=[DRIVER_STATS, TRIP_REQUEST], schema=OUTPUTS, fn=trip_features)
IN_SQL = OnDemandFeatureView(
    "trip_sql",
    sources=[DRIVER_STATS, TRIP_REQUEST],
    schema=OUTPUTS,
    expressions={"fare_per_km": "fare / NULLIF(distance_km, 0)", "expected_fare": "conv_rate * trips * fare"},
)
repository = FeatureRepository([DRIVER_STATS], on_demand_views=[IN_PYTHON, IN_SQL])


def oracle(conv_rate: float | None, trips: int | None, fare: float | None, km: float | None) -> tuple:
    fare_per_km = None if fare is None or km is None or km == 0 else fare / km
    expected = None if conv_rate is None or trips is None or fare is None else conv_rate * trips * fare
    return fare_per_km, expected


@pytest.fixture
def online(redis_url, redis_client):
    store = RedisOnlineStore(url=redis_url, repository="tests.test_on_demand:repository")
    yield store
    store.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("on_demand", [IN_PYTHON, IN_SQL], ids=["python", "sql"])
def test_online_and_training_give_the_same_on_demand_values(seed, on_demand, online, offline_store):
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    stats = {}
    for driver in range(1, 40):
        stats[driver] = (rng.choice([None, round(rng.random(), 3)]), rng.choice([None, rng.randrange(0, 50)]))
    written = pl.DataFrame(
        {
            "driver_id": list(stats),
            "event_timestamp": [now - timedelta(minutes=rng.randrange(1, 600)) for _ in stats],
            "conv_rate": [c for c, _ in stats.values()],
            "trips": [t for _, t in stats.values()],
        },
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")},
    ).with_columns(pl.col("event_timestamp").alias("created_timestamp"))
    for (day,), part in written.group_by(pl.col("event_timestamp").dt.date()):
        offline_store.write_partition(DRIVER_STATS, day, part.select(list(DRIVER_STATS.output_schema)))
    online.write_batch(DRIVER_STATS, written)

    rows = [
        {
            "driver_id": rng.randrange(1, 45),
            "fare": rng.choice([None, round(rng.uniform(3, 60), 2)]),
            "distance_km": rng.choice([None, 0.0, round(rng.uniform(0.5, 30), 2)]),
        }
        for _ in range(60)
    ]
    features = [f"{on_demand.name}:fare_per_km", f"{on_demand.name}:expected_fare", "driver_stats:trips"]
    served = online.get_online_features(features, rows).to_dict()
    entities = pl.DataFrame(rows, schema={"driver_id": pl.Int64, "fare": pl.Float64, "distance_km": pl.Float64})
    trained = get_historical_features(
        entities.with_columns(pl.lit(now).dt.cast_time_unit("us").alias("event_timestamp")),
        features,
        repository=repository,
        offline_store=offline_store,
    )
    assert "conv_rate" not in trained.columns and "conv_rate" not in served, "inputs not requested stay hidden"
    expected = [oracle(*stats.get(row["driver_id"], (None, None)), row["fare"], row["distance_km"]) for row in rows]
    assert list(zip(served["fare_per_km"], served["expected_fare"], strict=True)) == expected
    assert trained.select("fare_per_km", "expected_fare").rows() == expected
    assert served["trips"] == trained["trips"].to_list()


def test_a_missing_request_value_is_named_online_and_in_training(online, offline_store):
    features = ["trip_python:fare_per_km"]
    with pytest.raises(
        EntityFrameError, match="entity row 1 lacks request value 'distance_km' needed by on-demand view 'trip_python'"
    ):
        online.get_online_features(
            features, [{"driver_id": 1, "fare": 3.0, "distance_km": 1.0}, {"driver_id": 2, "fare": 3.0}]
        )
    entities = pl.DataFrame({"driver_id": [1], "fare": [3.0], "event_timestamp": [datetime(2025, 1, 1, tzinfo=UTC)]})
    with pytest.raises(
        EntityFrameError, match="entity_df lacks column 'distance_km', a request value of on-demand view 'trip_python'"
    ):
        get_historical_features(entities, features, repository=repository, offline_store=offline_store)


def test_an_output_of_the_wrong_dtype_is_refused_naming_the_feature():
    wrong = OnDemandFeatureView(
        "wrong",
        sources=[TRIP_REQUEST],
        schema=[Field("fare_band", pl.Int64)],
        fn=lambda inputs: inputs.select(pl.col("fare").alias("fare_band")),
    )
    with pytest.raises(
        TransformationOutputError, match="OnDemandFeatureView 'wrong': feature 'fare_band' is Float64, declared Int64"
    ):
        wrong.apply(pl.DataFrame({"fare": [1.5], "distance_km": [2.0]}))


def test_a_broken_sql_expression_names_the_view_and_quotes_it():
    broken = OnDemandFeatureView(
        "broken", sources=[TRIP_REQUEST], schema=[Field("x", pl.Float64)], expressions={"x": "tip / fare"}
    )
    with pytest.raises(TransformationOutputError, match="OnDemandFeatureView 'broken': an expression does not run"):
        broken.apply(pl.DataFrame({"fare": [1.5], "distance_km": [2.0]}))


def test_definition_mistakes_fail_at_import():
    with pytest.raises(DefinitionError, match="give either fn or expressions"):
        OnDemandFeatureView("bad", sources=[TRIP_REQUEST], schema=OUTPUTS)
    with pytest.raises(DefinitionError, match="input 'fare' comes from both 'trip_request' and 'again'"):
        OnDemandFeatureView(
            "bad",
            sources=[TRIP_REQUEST, RequestSource("again", [Field("fare", pl.Float64)])],
            schema=OUTPUTS,
            fn=trip_features,
        )
    with pytest.raises(DefinitionError, match="its source view 'driver_stats' is not in the repository"):
        FeatureRepository([], on_demand_views=[IN_PYTHON])
