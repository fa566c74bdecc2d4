"""Feature views materialized through Dagster: exact partitions, atomic re-runs, blocking schema checks."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from feature_assets import Entity, FeatureView, Field, ParquetSource
from feature_assets.language.asset_keys import schema_check_key, view_asset_key
from feature_assets.language.errors import TransformationOutputError
from feature_assets.orchestration.view_assets import build_view_asset
from resources.offline_store import OfflineStore

DRIVER = Entity("driver", ["driver_id"])
SOURCE = ParquetSource(
    "driver_stats", "raw/driver_stats/*.parquet", timestamp_field="ts", created_timestamp_field="loaded"
)


def driver_view(**overrides) -> FeatureView:
    settings = dict(
        entities=[DRIVER],
        source=SOURCE,
        schema=[
            Field("rating", pl.Float64, nullable=False, min_value=1.0, max_value=5.0),
            Field("vehicle", pl.String, allowed_values=["car", "van"]),
        ],
        ttl="1d",
        start_date="2025-01-01",
    )
    settings.update(overrides)
    return FeatureView("driver_quality", **settings)


def at(day: int, hour: int = 0, minute: int = 0, microsecond: int = 0) -> datetime:
    return datetime(2025, 1, day, hour, minute, tzinfo=UTC) + timedelta(microseconds=microsecond)


def write_source(store: OfflineStore, rows: list[dict], name: str = "part") -> None:
    frame = pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC"), "loaded": pl.Datetime("us", "UTC")})
    store.write_file(f"raw/driver_stats/{name}.parquet", frame)


def row(driver_id: int, ts: datetime, rating: object = 4.5, vehicle: str | None = "car") -> dict:
    return {"driver_id": driver_id, "ts": ts, "loaded": ts + timedelta(minutes=1), "rating": rating, "vehicle": vehicle}


@pytest.fixture
def store(tmp_path) -> OfflineStore:
    return OfflineStore(root=str(tmp_path / "offline"))


def materialize(
    view: FeatureView,
    store: OfflineStore,
    instance,
    *,
    partition: str | None = None,
    first: str | None = None,
    last: str | None = None,
) -> dg.ExecuteInProcessResult:
    tags = (
        {} if partition else {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    )
    return dg.materialize(
        [build_view_asset(view)],
        instance=instance,
        resources={"offline_store": store},
        partition_key=partition,
        tags=tags,
        raise_on_error=False,
    )


def check_evaluations(result: dg.ExecuteInProcessResult, check: str = "schema") -> list[dg.AssetCheckEvaluation]:
    events = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return [e for e in events if e.check_name == check]


def test_materializing_a_partition_writes_exactly_the_rows_of_that_utc_day(store, instance):
    view = driver_view()
    write_source(
        store,
        [
            row(1, at(1, 23, 59, 999_999)),
            row(1, at(2, 0, 0)),
            row(2, at(2, 13, 30)),
            row(1, at(2, 23, 59, 999_999)),
            row(2, at(3, 0, 0)),
        ],
    )
    result = materialize(view, store, instance, partition="2025-01-02")
    assert result.success
    frame = store.read_partition(view, date(2025, 1, 2))
    assert frame.schema == pl.Schema(view.output_schema)
    assert frame.select("driver_id", "event_timestamp").rows() == [
        (1, at(2, 0, 0)),
        (1, at(2, 23, 59, 999_999)),
        (2, at(2, 13, 30)),
    ]
    assert frame["created_timestamp"].to_list() == [t + timedelta(minutes=1) for t in frame["event_timestamp"]]


def test_rerunning_a_partition_replaces_it_with_identical_content(store, instance):
    view = driver_view()
    write_source(store, [row(i, at(4, i)) for i in range(1, 6)])
    assert materialize(view, store, instance, partition="2025-01-04").success
    first = store.read_partition(view, date(2025, 1, 4))
    assert materialize(view, store, instance, partition="2025-01-04").success
    assert store.read_partition(view, date(2025, 1, 4)).equals(first)
    assert store.list_partitions(view) == [date(2025, 1, 4)]


def test_a_failed_run_leaves_the_previous_partition_untouched_and_no_staging_files(store, instance, tmp_path):
    view = driver_view()
    write_source(store, [row(1, at(5, 8))])
    assert materialize(view, store, instance, partition="2025-01-05").success
    before = store.read_partition(view, date(2025, 1, 5))

    def broken(rows: pl.LazyFrame) -> pl.LazyFrame:
        return rows.with_columns(pl.col("rating").cast(pl.Int64).map_elements(lambda v: 1 // 0, pl.Int64))

    result = materialize(driver_view(transformation=broken), store, instance, partition="2025-01-05")
    assert not result.success
    assert store.read_partition(view, date(2025, 1, 5)).equals(before)
    leftovers = [p for p in (tmp_path / "offline").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_a_range_backfill_runs_once_and_checks_every_partition(store, instance):
    view = driver_view()
    write_source(store, [row(d % 3 + 1, at(d, 10)) for d in range(1, 11)])
    result = materialize(view, store, instance, first="2025-01-02", last="2025-01-08")
    assert result.success
    assert len(instance.get_runs()) == 1
    assert instance.get_materialized_partitions(view_asset_key(view)) == {f"2025-01-0{d}" for d in range(2, 9)}
    evaluations = check_evaluations(result)
    assert sorted(e.partition for e in evaluations) == [f"2025-01-0{d}" for d in range(2, 9)]
    assert all(e.passed for e in evaluations)
    assert store.list_partitions(view) == [date(2025, 1, d) for d in range(2, 9)]


def test_a_day_without_source_rows_writes_an_empty_partition_with_the_schema(store, instance):
    view = driver_view()
    write_source(store, [row(1, at(1, 5))])
    result = materialize(view, store, instance, partition="2025-01-09")
    assert result.success
    frame = store.read_partition(view, date(2025, 1, 9))
    assert frame.is_empty() and frame.schema == pl.Schema(view.output_schema)
    materialization = result.asset_materializations_for_node("driver_quality")[0]
    assert materialization.metadata["dagster/row_count"].value == 0


def test_materialization_metadata_has_row_count_schema_lineage_and_statistics(store, instance):
    view = driver_view()
    write_source(store, [row(1, at(6, 1), 2.0), row(2, at(6, 2), 4.0), row(3, at(6, 3), 3.0, None)])
    result = materialize(view, store, instance, partition="2025-01-06")
    metadata = result.asset_materializations_for_node("driver_quality")[0].metadata
    assert metadata["dagster/row_count"].value == 3
    assert metadata["rating/mean"].value == pytest.approx(3.0)
    assert metadata["rating/min"].value == 2.0 and metadata["rating/max"].value == 4.0
    assert metadata["vehicle/null_pct"].value == pytest.approx(100 / 3, rel=1e-3)
    lineage = metadata["dagster/column_lineage"].value
    assert lineage.deps_by_column["rating"][0].asset_key == dg.AssetKey(["source", "driver_stats"])
    spec = build_view_asset(view).specs_by_key[view_asset_key(view)]
    assert [c.name for c in spec.metadata["dagster/column_schema"].columns] == list(view.output_schema)
    assert spec.code_version == view.code_version


@pytest.mark.parametrize(
    ("bad_row", "column", "check"),
    [
        (row(7, at(7, 9), rating=9.5), "rating", "less_than_or_equal_to(5.0)"),
        (row(7, at(7, 9), rating=None), "rating", "not_nullable"),
        (row(7, at(7, 9), vehicle="bike"), "vehicle", "isin(['car', 'van'])"),
        (row(1, at(7, 8), rating=3.0), "<frame>", "multiple_fields_uniqueness"),
    ],
    ids=["out_of_range", "null_in_non_null_field", "not_an_allowed_value", "same_identity_other_values"],
)
def test_a_bad_partition_fails_the_blocking_check_with_the_failing_rows_in_metadata(
    store, instance, bad_row, column, check
):
    view = driver_view()
    write_source(store, [row(1, at(7, 8)), row(2, at(7, 8)), bad_row])
    result = materialize(view, store, instance, partition="2025-01-07")
    assert not result.success, "a failed blocking check must fail the run"
    (evaluation,) = check_evaluations(result)
    assert evaluation.partition == "2025-01-07" and evaluation.blocking and not evaluation.passed
    assert evaluation.metadata["failing_rows"].value >= 1
    sample = evaluation.metadata["failing_rows_sample"].value
    assert column in sample and check in sample
    record = instance.event_log_storage.get_asset_check_execution_history(schema_check_key(view), limit=1)[0]
    assert record.status.value == "FAILED"


def test_a_wrong_dtype_fails_the_blocking_check_naming_the_expected_dtype(store, instance):
    view = driver_view()
    write_source(store, [row(1, at(8, 8), rating="4.5"), row(2, at(8, 9), rating="3.0")])
    result = materialize(view, store, instance, partition="2025-01-08")
    (evaluation,) = check_evaluations(result)
    assert not evaluation.passed
    assert "dtype('Float64')" in evaluation.metadata["failing_rows_sample"].value


def test_a_clean_partition_passes_the_blocking_check(store, instance):
    view = driver_view()
    write_source(store, [row(1, at(8, 8)), row(2, at(8, 9), vehicle=None)])
    result = materialize(view, store, instance, partition="2025-01-08")
    assert result.success
    (evaluation,) = check_evaluations(result)
    assert evaluation.passed and evaluation.metadata["failing_rows"].value == 0


def test_a_transformation_missing_a_schema_field_fails_naming_the_columns(store, instance):
    def drops_vehicle(rows: pl.LazyFrame) -> pl.LazyFrame:
        return rows.drop("vehicle")

    view = driver_view(transformation=drops_vehicle)
    write_source(store, [row(1, at(3, 8))])
    result = materialize(view, store, instance, partition="2025-01-03")
    assert not result.success
    error = result.failure_data_for_node("driver_quality").error.cause
    assert error.cls_name == TransformationOutputError.__name__
    assert "lack column(s) ['vehicle']" in error.message and "driver_quality" in error.message


def test_changing_the_transformation_changes_the_code_version():
    def plus_one(rows: pl.LazyFrame) -> pl.LazyFrame:
        return rows.with_columns(pl.col("rating") + 1)

    assert driver_view().code_version != driver_view(transformation=plus_one).code_version
    assert driver_view().code_version == driver_view().code_version


def test_the_daily_schedule_requests_the_previous_utc_day():
    from feature_assets.orchestration.schedules import build_daily_schedule

    view = driver_view()
    defs = dg.Definitions(
        assets=[build_view_asset(view)],
        schedules=[build_daily_schedule(view)],
        resources={"offline_store": OfflineStore()},
    )
    schedule = defs.resolve_schedule_def("driver_quality_daily_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2025, 2, 3, 0, 15, tzinfo=UTC))
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2025-02-02"


def test_naive_source_timestamps_are_read_as_utc(store, instance, tmp_path):
    view = driver_view()
    aware = [row(1, at(2, 23, 30)), row(2, at(3, 0, 30))]
    write_source(store, aware)
    assert materialize(view, store, instance, partition="2025-01-02").success
    from_aware = store.read_partition(view, date(2025, 1, 2))

    naive_store = OfflineStore(root=str(tmp_path / "naive"))
    naive = pl.DataFrame(aware).with_columns(pl.col("ts", "loaded").dt.replace_time_zone(None))
    naive_store.write_file("raw/driver_stats/part.parquet", naive)
    assert materialize(view, naive_store, instance, partition="2025-01-02").success
    assert naive_store.read_partition(view, date(2025, 1, 2)).equals(from_aware)


def test_a_source_timestamp_that_is_not_a_datetime_fails_naming_the_column(store, instance):
    view = driver_view()
    frame = pl.DataFrame([row(1, at(2, 8))]).with_columns(pl.col("ts").dt.to_string())
    store.write_file("raw/driver_stats/part.parquet", frame)
    result = materialize(view, store, instance, partition="2025-01-02")
    error = result.failure_data_for_node("driver_quality").error.cause
    assert error.cls_name == "SourceSchemaError"
    assert "timestamp_field 'ts' must be a datetime column, found String" in error.message


def test_a_source_without_a_join_key_fails_naming_the_key(store, instance):
    view = driver_view()
    store.write_file("raw/driver_stats/part.parquet", pl.DataFrame([row(1, at(2, 8))]).drop("driver_id"))
    result = materialize(view, store, instance, partition="2025-01-02")
    error = result.failure_data_for_node("driver_quality").error.cause
    assert "has no join key column(s) ['driver_id']" in error.message
