"""Views with different start dates load together and a range run materializes each over its own part of it."""

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from feature_assets.language.asset_keys import view_asset_key
from feature_assets.orchestration.jobs import materialize_job_names, materialize_views_over
from feature_assets.orchestration.project import build_definitions
from tests.mixed_start_views import repository, views

ROOT = Path(__file__).resolve().parent.parent


def test_a_code_location_with_three_start_dates_validates_with_dagster():
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "tests.mixed_start_views"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Validation successful" in done.stdout + done.stderr


def test_there_is_one_materialization_job_per_start_date():
    assert materialize_job_names(views) == {
        date(2025, 1, 1): "materialize_feature_views_from_2025_01_01",
        date(2025, 1, 5): "materialize_feature_views_from_2025_01_05",
        date(2025, 1, 10): "materialize_feature_views_from_2025_01_10",
    }


def test_a_range_run_materializes_each_view_over_its_own_part_of_the_range(instance, offline_store):
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    frame = pl.DataFrame(
        {"driver_id": [1] * 14, "ts": [start + timedelta(days=d) for d in range(14)], "rating": [4.0] * 14},
        schema={"driver_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "rating": pl.Float64},
    )
    offline_store.write_file("raw/driver_events/all.parquet", frame)
    defs = build_definitions(repository, offline_store)
    results = materialize_views_over(defs, views, instance, date(2025, 1, 3), date(2025, 1, 12))
    assert [result.success for result in results] == [True, True, True]

    def materialized(name: str) -> list[str]:
        return sorted(instance.get_materialized_partitions(view_asset_key(repository.view(name))))

    def days(first: int, last: int) -> list[str]:
        return [date(2025, 1, d).isoformat() for d in range(first, last + 1)]

    assert materialized("since_january_first") == days(3, 12)
    assert materialized("since_the_fifth") == days(5, 12)
    assert materialized("since_the_tenth") == days(10, 12)
    assert offline_store.list_partitions(repository.view("since_the_tenth")) == [date(2025, 1, d) for d in (10, 11, 12)]


def test_a_range_before_a_views_start_skips_that_view(instance, offline_store):
    defs = build_definitions(repository, offline_store)
    results = materialize_views_over(defs, views, instance, date(2025, 1, 2), date(2025, 1, 3))
    assert [result.job_def.name for result in results] == ["materialize_feature_views_from_2025_01_01"]
