"""Row identity is (join keys, event_timestamp, created_timestamp): duplicates collapse, conflicts fail the gate,
and a correction (same keys and event time, later created time) is what training and serving see."""

import random
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource
from feature_assets.orchestration.project import build_definitions
from feature_assets.orchestration.view_assets import build_view_asset
from feature_assets.retrieval.point_in_time import get_historical_features
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

DRIVER = Entity("driver", ["driver_id"])
SOURCE = ParquetSource(
    "driver_exports", "raw/driver_exports/*.parquet", timestamp_field="ts", created_timestamp_field="loaded"
)
VIEW = FeatureView(
    "driver_export",
    entities=[DRIVER],
    source=SOURCE,
    schema=[Field("rating", pl.Float64, nullable=False), Field("city", pl.String)],
    ttl="3650d",
    start_date="2025-01-01",
)
repository = FeatureRepository([VIEW])
DAY = date(2025, 1, 7)
SCHEMA = {
    "driver_id": pl.Int64,
    "ts": pl.Datetime("us", "UTC"),
    "loaded": pl.Datetime("us", "UTC"),
    "rating": pl.Float64,
    "city": pl.String,
}


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 1, 7, hour, minute, tzinfo=UTC)


def write_source(store: OfflineStore, rows: list[tuple]) -> None:
    """Write source rows (driver, event time, created time, rating, city)."""
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    store.write_file("raw/driver_exports/export.parquet", frame)


def materialize(store: OfflineStore, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_view_asset(VIEW)],
        instance=instance,
        resources={"offline_store": store},
        partition_key=DAY.isoformat(),
        raise_on_error=False,
    )


def schema_evaluation(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "schema"]
    return evaluation


def test_exact_duplicate_rows_collapse_to_one_and_the_count_is_recorded(offline_store, instance):
    row = (1, at(8), at(9), 4.5, "oslo")
    write_source(offline_store, [row, row, row, (2, at(8), at(9), 3.0, None)])
    result = materialize(offline_store, instance)
    assert result.success and schema_evaluation(result).passed
    (materialization,) = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["duplicate_rows_collapsed"].value == 2
    assert metadata["dagster/row_count"].value == 2
    assert offline_store.read_partition(VIEW, DAY).height == 2


def test_rows_with_one_identity_and_different_values_fail_the_gate_with_the_rows_in_the_sample(offline_store, instance):
    write_source(
        offline_store, [(1, at(8), at(9), 4.5, "oslo"), (1, at(8), at(9), 4.0, "oslo"), (2, at(8), at(9), 3.0, None)]
    )
    result = materialize(offline_store, instance)
    assert not result.success
    evaluation = schema_evaluation(result)
    assert not evaluation.passed and evaluation.blocking
    sample = evaluation.metadata["failing_rows_sample"].value
    assert "multiple_fields_uniqueness" in sample and "driver_id" in sample
    assert evaluation.metadata["failing_rows"].value == 2


def test_a_correction_passes_the_gate_and_training_sees_the_corrected_value(offline_store, instance):
    write_source(offline_store, [(1, at(8), at(9), 4.5, "oslo"), (1, at(8), at(12), 4.8, "bergen")])
    result = materialize(offline_store, instance)
    assert result.success and schema_evaluation(result).passed
    entities = pl.DataFrame({"driver_id": [1], "event_timestamp": [at(20)]})
    training = get_historical_features(
        entities, ["driver_export:rating", "driver_export:city"], repository=repository, offline_store=offline_store
    )
    assert training.select("rating", "city").row(0) == (4.8, "bergen")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_publishing_corrections_serves_the_greatest_created_time_at_the_latest_event_time(
    seed, offline_store, instance, redis_url
):
    """Random exports with corrections, exact duplicates and nulls, in random order, against a brute-force oracle."""
    rng = random.Random(seed)
    rows = []
    for driver in range(1, 30):
        events = rng.sample(range(0, 23), rng.randint(1, 3))
        for event in events:
            for created in rng.sample(range(0, 50), rng.randint(1, 4)):
                rows.append(
                    (
                        driver,
                        at(event),
                        at(event) + timedelta(minutes=created),
                        round(rng.uniform(1, 5), 2),
                        rng.choice(["oslo", None]),
                    )
                )
    duplicates = rng.sample(rows, len(rows) // 5)
    rows += duplicates
    rng.shuffle(rows)
    write_source(offline_store, rows)
    online = RedisOnlineStore(
        url=redis_url, repository="tests.test_row_identity:repository", key_prefix=f"identity{seed}"
    )
    defs = build_definitions(repository, offline_store, online)
    materialized = materialize(offline_store, instance)
    assert materialized.success
    (event,) = materialized.get_asset_materialization_events()
    assert event.materialization.metadata["duplicate_rows_collapsed"].value == len(duplicates)
    sensor = defs.resolve_sensor_def("publish_online")
    requests = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs)).run_requests
    job = defs.resolve_implicit_global_asset_job_def()
    for request in requests:
        run = job.execute_in_process(
            instance=instance,
            asset_selection=list(request.asset_selection),
            partition_key=request.partition_key,
            tags=request.tags,
        )
        assert run.success

    newest: dict[int, tuple] = {}
    for driver, event, created, rating, city in rows:
        if driver not in newest or (event, created) > newest[driver][0]:
            newest[driver] = ((event, created), (rating, city))
    drivers = sorted(newest)
    response = online.get_online_features(
        ["driver_export:rating", "driver_export:city"], [{"driver_id": d} for d in drivers]
    ).to_dict()
    assert dict(zip(drivers, zip(response["rating"], response["city"], strict=True), strict=True)) == {
        d: v for d, (_, v) in newest.items()
    }
    online.close()
