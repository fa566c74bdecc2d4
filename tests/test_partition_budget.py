"""A partition computed in entity slices to fit a small memory budget equals the partition computed whole."""

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from feature_assets import Aggregation, Entity, FeatureView, Field, ParquetSource
from feature_assets.compute.entity_slices import (
    entity_slice,
    estimated_source_events,
    is_sliceable,
    plan_entity_slices,
)
from feature_assets.compute.partition_compute import compute_partition
from feature_assets.language.sources import PushSource
from resources.offline_store import OfflineStore

DAY = date(2025, 3, 10)
DAY_START = datetime(2025, 3, 10, tzinfo=UTC)
TINY_BUDGET = "128KiB"

RIDER = Entity("rider", ["rider_id", "region"], key_dtypes={"region": pl.String})
PAYMENTS = ParquetSource(
    "payments", "raw/payments/*.parquet", timestamp_field="paid_at", created_timestamp_field="recorded_at"
)
EVERY_FUNCTION = [
    Aggregation("amount", "sum", "1h"),
    Aggregation("amount", "count", "1d"),
    Aggregation("amount", "mean", "1d"),
    Aggregation("amount", "min", "2d"),
    Aggregation("amount", "max", "1d"),
    Aggregation("amount", "last", "1h"),
    Aggregation("amount", "last", "2d"),
    Aggregation("category", "count_distinct", "1d"),
    Aggregation("category", "count_distinct", "2d"),
]
PLAIN_SCHEMA = [Field("amount", pl.Float64), Field("category", pl.String)]

aggregated = FeatureView("rider_spend", entities=[RIDER], source=PAYMENTS, aggregations=EVERY_FUNCTION, step="30m")
plain = FeatureView("rider_payments", entities=[RIDER], source=PAYMENTS, schema=PLAIN_SCHEMA)
pushed = FeatureView(
    "rider_payments_pushed",
    entities=[RIDER],
    source=PushSource("payments_push", batch_source=PAYMENTS),
    schema=PLAIN_SCHEMA,
)
transformed = FeatureView(
    "rider_payments_doubled",
    entities=[RIDER],
    source=PAYMENTS,
    schema=PLAIN_SCHEMA,
    transformation=lambda events: events.with_columns(pl.col("amount") * 2),
)


def random_events(seed: int, rows: int) -> pl.DataFrame:
    """Events over the two days before DAY and DAY itself: exact duplicates, tied times, null values and keys."""
    rng = np.random.default_rng(seed)
    span_us = int(timedelta(days=3) / timedelta(microseconds=1))
    offsets = rng.integers(0, span_us, rows)
    on_step = rng.random(rows) < 0.3
    offsets[on_step] = offsets[on_step] // 1_800_000_000 * 1_800_000_000
    paid = pl.Series(offsets).cast(pl.Duration("us")) + (DAY_START - timedelta(days=2))
    amounts = pl.Series(np.round(rng.normal(20, 8, rows), 1)).scatter(rng.choice(rows, rows // 8), None)
    categories = pl.Series(rng.choice(["a", "b", "c", "d"], rows)).scatter(rng.choice(rows, rows // 8), None)
    events = pl.DataFrame(
        {
            "rider_id": pl.Series(rng.integers(1, 25, rows)).scatter(rng.choice(rows, 3), None),
            "region": rng.choice(["north", "south", "east"], rows),
            "paid_at": paid,
            "recorded_at": paid + pl.Series(rng.integers(0, 2, rows) * 1_000_000).cast(pl.Duration("us")),
            "amount": amounts,
            "category": categories,
        }
    )
    return pl.concat([events, events.sample(rows // 10, seed=seed)]).sample(fraction=1.0, shuffle=True, seed=seed)


def write_source(root, events: pl.DataFrame) -> None:
    store = OfflineStore(root=str(root))
    for index, part in enumerate(events.iter_slices(max(1, events.height // 4))):
        store.write_file(f"raw/payments/part-{index}.parquet", part)


def whole_and_sliced(root, view: FeatureView) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    whole = compute_partition(view, OfflineStore(root=str(root)), DAY)
    tiny = OfflineStore(root=str(root), memory_budget=TINY_BUDGET)
    sliced = compute_partition(view, tiny, DAY)
    assert sliced.duplicates_collapsed == whole.duplicates_collapsed
    return whole.rows, sliced.rows, plan_entity_slices(view, tiny, DAY).slices


@pytest.mark.parametrize("seed", range(4))
def test_an_aggregation_view_in_slices_equals_it_whole(tmp_path, seed):
    write_source(tmp_path, random_events(seed, rows=1_500))
    whole, sliced, slices = whole_and_sliced(tmp_path, aggregated)
    assert slices > 2
    assert whole.height > 100
    assert_frame_equal(sliced, whole)


@pytest.mark.parametrize("seed", range(4))
def test_a_plain_view_in_slices_equals_it_whole_with_the_same_duplicates_collapsed(tmp_path, seed):
    write_source(tmp_path, random_events(10 + seed, rows=1_500))
    whole, sliced, slices = whole_and_sliced(tmp_path, plain)
    assert slices > 2
    assert_frame_equal(sliced, whole)


def test_pushed_rows_land_in_their_entity_slice_only(tmp_path):
    events = random_events(20, rows=1_000)
    write_source(tmp_path, events)
    day_rows = events.filter(pl.col("paid_at").dt.date() == DAY).unique(maintain_order=True).head(200)
    store = OfflineStore(root=str(tmp_path))
    store.append_pushed(
        pushed,
        day_rows.select(
            "rider_id",
            "region",
            pl.col("paid_at").alias("event_timestamp"),
            (pl.col("recorded_at") + timedelta(minutes=5)).alias("created_timestamp"),
            "amount",
            "category",
        ),
    )
    whole, sliced, slices = whole_and_sliced(tmp_path, pushed)
    assert slices > 2
    assert whole.height == events.filter(pl.col("paid_at").dt.date() == DAY).unique().height + 200
    assert_frame_equal(sliced, whole)


def test_a_transformation_is_computed_whole_whatever_the_budget(tmp_path):
    write_source(tmp_path, random_events(30, rows=600))
    assert not is_sliceable(transformed)
    whole, sliced, _ = whole_and_sliced(tmp_path, transformed)
    assert_frame_equal(sliced, whole)


def test_the_plan_counts_overlapping_row_groups_from_footers_and_splits_to_fit_the_budget(tmp_path):
    rows_per_day = 5_000
    store = OfflineStore(root=str(tmp_path))
    for offset in (-3, -1, 0, 1):
        start = DAY_START + timedelta(days=offset)
        times = pl.datetime_range(start, start + timedelta(days=1), "1m", eager=True, closed="left")
        frame = pl.DataFrame(
            {
                "rider_id": np.arange(rows_per_day) % 50,
                "region": "north",
                "paid_at": times.sample(rows_per_day, with_replacement=True, seed=offset + 5).sort(),
                "amount": np.ones(rows_per_day),
                "category": "a",
            }
        ).with_columns(pl.col("paid_at").alias("recorded_at"))
        path = tmp_path / "raw" / "payments" / f"day{offset + 3}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path, row_group_size=1_000, statistics=True)
    start, end = DAY_START - timedelta(days=2), DAY_START + timedelta(days=1)
    assert estimated_source_events(store, PAYMENTS, start, end) == 2 * rows_per_day
    assert plan_entity_slices(aggregated, store, DAY).events == 2 * rows_per_day
    assert plan_entity_slices(aggregated, store, DAY).slices == 1
    small = OfflineStore(root=str(tmp_path), memory_budget="256KiB")
    plan = plan_entity_slices(aggregated, small, DAY)
    assert plan.slices == -(-plan.events * plan.event_bytes // (256 * 1024))
    assert plan.slices >= 4


def test_an_entity_falls_in_the_same_slice_in_every_process_and_whatever_its_key_width():
    keys = pl.DataFrame({"rider_id": [1, 2, 3, None, 7_000_000_000], "region": ["north", None, "east", "x", "y"]})
    membership = keys.select(*(entity_slice(aggregated, index, 5).alias(str(index)) for index in range(5)))
    assert membership.select(pl.sum_horizontal(pl.all())).to_series().to_list() == [1] * 5
    narrow = keys.head(4).with_columns(pl.col("rider_id").cast(pl.Int32))
    assert narrow.select(entity_slice(aggregated, 2, 5)).equals(keys.head(4).select(entity_slice(aggregated, 2, 5)))
    script = (
        "import polars as pl\n"
        "from tests.test_partition_budget import aggregated, entity_slice\n"
        f"keys = pl.DataFrame({keys.to_dict(as_series=False)!r})\n"
        "print(keys.select(entity_slice(aggregated, 2, 5)).to_series().to_list())\n"
    )
    fresh = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert fresh.strip() == str(keys.select(entity_slice(aggregated, 2, 5)).to_series().to_list())
