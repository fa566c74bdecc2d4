"""Non-blocking checks through Dagster: drift, null rate and row count warn; the online consistency check."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource
from feature_assets.language.asset_keys import online_asset_key
from feature_assets.language.quality_policy import QualityPolicy
from feature_assets.orchestration.online_assets import build_online_asset
from feature_assets.orchestration.view_assets import build_view_asset
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

BASE_DAY = datetime(2025, 2, 1, tzinfo=UTC)


def view(**overrides) -> FeatureView:
    settings = dict(
        entities=[Entity("driver", ["driver_id"])],
        source=ParquetSource("driver_days", "raw/driver_days/*.parquet", timestamp_field="ts"),
        schema=[
            Field("rating", pl.Float64, min_value=0.0, max_value=10.0),
            Field("tier", pl.String),
            Field("tip", pl.Float64, max_null_pct=40.0),
        ],
        ttl="3650d",
        start_date="2025-02-01",
    )
    settings.update(overrides)
    return FeatureView("driver_daily", **settings)


def day_rows(day: int, seed: int, rows: int = 400, shift: float = 0.0, tiers=(0.5, 0.3, 0.2), null_share=0.0):
    rng = np.random.default_rng(seed)
    ratings = np.clip(rng.normal(5.0 + shift, 1.0, rows), 0.0, 10.0)
    tiers_drawn = rng.choice(["bronze", "silver", "gold"], rows, p=list(tiers))
    tips = [None if rng.random() < null_share else float(t) for t in rng.gamma(2.0, 1.0, rows)]
    return pl.DataFrame(
        {
            "driver_id": np.arange(rows),
            "ts": [BASE_DAY + timedelta(days=day, seconds=int(s)) for s in rng.integers(0, 86_400, rows)],
            "rating": ratings,
            "tier": tiers_drawn,
            "tip": tips,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "tip": pl.Float64},
    )


@pytest.fixture
def store(tmp_path) -> OfflineStore:
    return OfflineStore(root=str(tmp_path / "offline"))


def materialize(feature_view, store, instance, first: int, last: int) -> dg.ExecuteInProcessResult:
    key = lambda d: (BASE_DAY + timedelta(days=d)).date().isoformat()  # noqa: E731
    return dg.materialize(
        [build_view_asset(feature_view)],
        instance=instance,
        resources={"offline_store": store},
        tags={"dagster/asset_partition_range_start": key(first), "dagster/asset_partition_range_end": key(last)},
    )


def evaluation(result: dg.ExecuteInProcessResult, check: str, day: int) -> dg.AssetCheckEvaluation:
    partition = (BASE_DAY + timedelta(days=day)).date().isoformat()
    (found,) = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == check
        and e.event_specific_data.partition == partition
    ]
    return found


def baseline(store, instance, feature_view, seed: int = 0) -> None:
    for day in range(7):
        store.write_file(f"raw/driver_days/{day}.parquet", day_rows(day, seed=seed + day))
    materialize(feature_view, store, instance, 0, 6)


@pytest.mark.parametrize("shift", [0.8, -0.8], ids=["mean_up", "mean_down"])
def test_a_shift_in_a_feature_mean_trips_the_drift_warning(store, instance, shift):
    feature_view = view()
    baseline(store, instance, feature_view)
    store.write_file("raw/driver_days/7.parquet", day_rows(7, seed=100, shift=shift))
    result = materialize(feature_view, store, instance, 7, 7)
    assert result.success, "a warning check never fails the run"
    drift = evaluation(result, "drift", 7)
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN and not drift.blocking
    assert "rating" in drift.description and "tier" not in drift.description
    assert drift.metadata["rating/psi"].value > 0.2


@pytest.mark.parametrize("seed", [100, 200, 300])
def test_unchanged_data_does_not_trip_the_drift_warning(store, instance, seed):
    feature_view = view()
    baseline(store, instance, feature_view)
    store.write_file("raw/driver_days/7.parquet", day_rows(7, seed=seed))
    drift = evaluation(materialize(feature_view, store, instance, 7, 7), "drift", 7)
    assert drift.passed, drift.description
    assert drift.metadata["baseline_partitions"].value == 7


def test_a_shift_in_category_shares_trips_the_drift_warning(store, instance):
    feature_view = view()
    baseline(store, instance, feature_view)
    store.write_file("raw/driver_days/7.parquet", day_rows(7, seed=100, tiers=(0.1, 0.2, 0.7)))
    drift = evaluation(materialize(feature_view, store, instance, 7, 7), "drift", 7)
    assert not drift.passed and "tier" in drift.description and "rating" not in drift.description


def test_the_null_rate_warning_uses_the_field_threshold(store, instance):
    feature_view = view()
    store.write_file("raw/driver_days/0.parquet", day_rows(0, seed=1, null_share=0.3))
    store.write_file("raw/driver_days/1.parquet", day_rows(1, seed=2, null_share=0.6))
    result = materialize(feature_view, store, instance, 0, 1)
    assert evaluation(result, "null_rate", 0).passed
    warned = evaluation(result, "null_rate", 1)
    assert not warned.passed and "tip" in warned.description and "> 40.0%" in warned.description


def test_a_sudden_drop_in_rows_and_an_empty_day_trip_the_row_count_warning(store, instance):
    feature_view = view(quality=QualityPolicy(max_row_count_change=0.5))
    baseline(store, instance, feature_view)
    store.write_file("raw/driver_days/7.parquet", day_rows(7, seed=5, rows=100))
    result = materialize(feature_view, store, instance, 7, 8)
    dropped = evaluation(result, "row_count", 7)
    assert not dropped.passed and "-75%" in dropped.description
    assert not evaluation(result, "row_count", 8).passed
    assert evaluation(result, "row_count", 8).description == "the partition is empty"


def test_the_consistency_check_detects_a_value_changed_directly_in_redis(store, instance, redis_url, redis_client):
    feature_view = view()
    store.write_file("raw/driver_days/0.parquet", day_rows(0, seed=3, rows=50))
    online = RedisOnlineStore(url=redis_url, repository="tests.test_warning_checks:repository")
    resources = {"offline_store": store, "online_store": online}
    assets = [build_view_asset(feature_view), build_online_asset(feature_view)]
    partition = BASE_DAY.date().isoformat()
    first = dg.materialize(assets, instance=instance, resources=resources, partition_key=partition)
    (clean,) = [e for e in first.get_asset_check_evaluations() if e.check_name == "consistency"]
    assert clean.passed and clean.metadata["mismatches"].value == 0

    key = "fs:{i:7}:driver_daily:v1"
    (field,) = redis_client.hkeys(key)
    order, rating, other_values = redis_client.hget(key, field).split(b"\x1f", 2)
    assert rating != b"9.75"
    redis_client.hset(key, field, b"\x1f".join([order, b"9.75", other_values]))
    # Re-publishing carries the same event time, so newer-wins keeps the tampered value for the check to find.
    republish = dg.materialize(assets[1:], instance=instance, resources=resources, partition_key=partition)
    (evaluation_after,) = republish.get_asset_check_evaluations()
    assert evaluation_after.metadata["mismatches"].value == 1
    assert "rating" in evaluation_after.metadata["examples"].value
    assert not evaluation_after.passed and evaluation_after.severity == dg.AssetCheckSeverity.WARN
    online.close()
    assert online_asset_key(feature_view) == evaluation_after.asset_key


repository = FeatureRepository([view()])
