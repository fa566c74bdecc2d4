"""Freshness: once a view's deadline has passed, yesterday's partition must be materialized, or the check warns.

The checks are Dagster's `build_time_partition_freshness_checks` with the view's `freshness_deadline_cron` (default
03:00 UTC). At the latest deadline tick before "now" the check expects the daily partition that had ended by that tick
(after 03:00 yesterday's; before 03:00 the day before yesterday's). It passes if that partition has any
materialization, whenever it was recorded, and otherwise fails with severity WARN naming the overdue partition.
Time is frozen with Dagster's `freeze_time` around both the materializations and the check run.
"""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pytest
from dagster._core.test_utils import freeze_time

from feature_assets import Entity, FeatureView, Field, ParquetSource
from feature_assets.language.quality_policy import QualityPolicy
from feature_assets.orchestration.freshness import build_freshness_checks
from feature_assets.orchestration.view_assets import build_view_asset
from resources.offline_store import OfflineStore


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in March 2025, UTC."""
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


TODAY = 10
YESTERDAY = "2025-03-09"
DAY_BEFORE_YESTERDAY = "2025-03-08"


def trips_view(**overrides) -> FeatureView:
    settings = dict(
        entities=[Entity("driver", ["driver_id"])],
        source=ParquetSource("driver_trips", "raw/driver_trips/*.parquet", timestamp_field="ts"),
        schema=[Field("trips", pl.Int64)],
        ttl="30d",
        start_date="2025-03-01",
    )
    settings.update(overrides)
    return FeatureView("driver_trips_daily", **settings)


@pytest.fixture
def store(offline_store) -> OfflineStore:
    """The offline store, holding a few raw rows for each day of early March 2025."""
    for day in range(1, TODAY + 1):
        rows = pl.DataFrame(
            {"driver_id": [1, 2], "ts": [at(day, 8), at(day, 17, 30)], "trips": [day, day + 1]},
            schema_overrides={"ts": pl.Datetime("us", "UTC")},
        )
        offline_store.write_file(f"raw/driver_trips/{day}.parquet", rows)
    return offline_store


def materialize_partition(view: FeatureView, store: OfflineStore, instance, partition: str, when: datetime) -> None:
    with freeze_time(when):
        result = dg.materialize(
            [build_view_asset(view)], instance=instance, resources={"offline_store": store}, partition_key=partition
        )
    assert result.success


def evaluate_freshness(view: FeatureView, store: OfflineStore, instance, when: datetime) -> dg.AssetCheckEvaluation:
    asset = build_view_asset(view)
    checks = build_freshness_checks({view.name: asset}, [view])
    with freeze_time(when):
        result = dg.materialize(
            [asset, *checks],
            selection=dg.AssetSelection.checks(*checks),
            instance=instance,
            resources={"offline_store": store},
        )
    assert result.success, "a freshness check never fails the run"
    assert not result.get_asset_materialization_events(), "only the check runs, the view is not recomputed"
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.asset_key == asset.key and evaluation.check_name == "freshness_check"
    return evaluation


def test_a_view_whose_latest_partition_is_older_than_its_cadence_warns(store, instance):
    view = trips_view()
    materialize_partition(view, store, instance, DAY_BEFORE_YESTERDAY, when=at(TODAY - 1, 1))

    freshness = evaluate_freshness(view, store, instance, when=at(TODAY, 5))

    assert not freshness.passed
    assert freshness.severity == dg.AssetCheckSeverity.WARN and not freshness.blocking
    assert (
        freshness.description == f"Asset is overdue. We expected partition {YESTERDAY} to have arrived, and it has not."
    )
    assert freshness.metadata["dagster/latest_cron_tick_timestamp"].value == at(TODAY, 3).timestamp()
    assert freshness.metadata["dagster/last_updated_timestamp"].value == at(TODAY - 1, 1).timestamp()


def test_a_view_never_materialized_warns_that_yesterday_has_not_arrived(store, instance):
    freshness = evaluate_freshness(trips_view(), store, instance, when=at(TODAY, 5))

    assert not freshness.passed and freshness.severity == dg.AssetCheckSeverity.WARN
    assert f"never been observed/materialized. We currently expect partition {YESTERDAY}" in freshness.description


@pytest.mark.parametrize(
    "materialized_at", [at(TODAY, 1), at(TODAY, 4, 30)], ids=["before_the_deadline", "late_after_the_deadline"]
)
def test_a_view_whose_yesterday_partition_is_materialized_is_fresh(store, instance, materialized_at):
    view = trips_view()
    materialize_partition(view, store, instance, DAY_BEFORE_YESTERDAY, when=at(TODAY - 1, 1))
    materialize_partition(view, store, instance, YESTERDAY, when=materialized_at)

    freshness = evaluate_freshness(view, store, instance, when=at(TODAY, 5))

    assert freshness.passed, freshness.description
    assert YESTERDAY in freshness.description and "fresh" in freshness.description
    assert freshness.metadata["dagster/fresh_until_timestamp"].value == at(TODAY + 1, 3).timestamp()


def test_before_the_deadline_the_day_before_yesterday_suffices(store, instance):
    view = trips_view()
    materialize_partition(view, store, instance, DAY_BEFORE_YESTERDAY, when=at(TODAY - 1, 1))

    before_deadline = evaluate_freshness(view, store, instance, when=at(TODAY, 2, 59))
    at_the_deadline = evaluate_freshness(view, store, instance, when=at(TODAY, 3))

    assert before_deadline.passed, before_deadline.description
    assert DAY_BEFORE_YESTERDAY in before_deadline.description
    assert before_deadline.metadata["dagster/fresh_until_timestamp"].value == at(TODAY, 3).timestamp()
    assert not at_the_deadline.passed and YESTERDAY in at_the_deadline.description, "the deadline tick itself counts"


def test_the_views_own_deadline_cron_decides_when_yesterday_is_due(store, instance):
    view = trips_view(quality=QualityPolicy(freshness_deadline_cron="0 9 * * *"))
    materialize_partition(view, store, instance, DAY_BEFORE_YESTERDAY, when=at(TODAY - 1, 1))

    assert evaluate_freshness(view, store, instance, when=at(TODAY, 5)).passed
    late = evaluate_freshness(view, store, instance, when=at(TODAY, 9, 30))
    assert not late.passed and YESTERDAY in late.description
    assert late.metadata["dagster/latest_cron_tick_timestamp"].value == at(TODAY, 9).timestamp()
