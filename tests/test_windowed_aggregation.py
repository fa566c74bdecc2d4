"""Windowed aggregations agree with a brute-force oracle on randomized seeded data."""

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from feature_assets import Aggregation, Entity, FeatureView, ParquetSource
from feature_assets.compute.partition_compute import compute_partition
from resources.offline_store import OfflineStore

DAY = date(2025, 3, 10)
DAY_START = datetime(2025, 3, 10, tzinfo=UTC)

AGGREGATIONS = [
    Aggregation("amount", "sum", "1h"),
    Aggregation("amount", "sum", "1d"),
    Aggregation("amount", "count", "1h"),
    Aggregation("amount", "count", "7d"),
    Aggregation("amount", "mean", "1d"),
    Aggregation("amount", "min", "7d"),
    Aggregation("amount", "max", "1d"),
    Aggregation("amount", "last", "1h"),
    Aggregation("amount", "last", "7d"),
    Aggregation("category", "count_distinct", "1d"),
    Aggregation("category", "count_distinct", "7d"),
]


def make_view(step: str = "1h", aggregations: list[Aggregation] = AGGREGATIONS) -> FeatureView:
    rider = Entity("rider", ["rider_id", "region"], key_dtypes={"region": pl.String})
    return FeatureView(
        "rider_spend",
        entities=[rider],
        source=ParquetSource(
            "payments", "raw/payments/*.parquet", timestamp_field="paid_at", created_timestamp_field="recorded_at"
        ),
        aggregations=aggregations,
        step=step,
    )


def random_events(seed: int, rows: int, step: timedelta, lookback: timedelta) -> pl.DataFrame:
    """Events spread over the lookback and the day, many exactly on step and window edges, with ties and nulls."""
    rng = np.random.default_rng(seed)
    span_start = DAY_START - lookback - timedelta(hours=2)
    span_us = int((timedelta(days=1) + lookback + timedelta(hours=4)) / timedelta(microseconds=1))
    times = []
    for _ in range(rows):
        kind = rng.integers(0, 4)
        if kind == 0:
            times.append(span_start + timedelta(microseconds=int(rng.integers(0, span_us))))
        elif kind == 1:
            steps = int(rng.integers(-int(lookback / step) - 2, int(timedelta(days=1) / step) + 2))
            times.append(DAY_START + steps * step + timedelta(microseconds=int(rng.choice([-1, 0, 0, 1]))))
        elif kind == 2 and times:
            times.append(times[int(rng.integers(0, len(times)))])
        else:
            times.append(DAY_START + timedelta(minutes=int(rng.integers(0, 24 * 60))))
    rider_ids = rng.integers(1, 7, rows)
    late = rng.random(rows) < 0.05
    rider_ids[late] = 99
    times = [
        DAY_START + timedelta(hours=23, minutes=30) if is_late else t for t, is_late in zip(times, late, strict=False)
    ]
    amounts = np.round(rng.normal(20, 8, rows), 2).tolist()
    categories = rng.choice(["a", "b", "c", "d", "e"], rows).tolist()
    for index in rng.choice(rows, rows // 8, replace=False):
        amounts[index] = None
    for index in rng.choice(rows, rows // 8, replace=False):
        categories[index] = None
    return pl.DataFrame(
        {
            "rider_id": rider_ids,
            "region": rng.choice(["north", "south"], rows),
            "paid_at": times,
            "recorded_at": [
                t + timedelta(seconds=int(s)) for t, s in zip(times, rng.integers(0, 3, rows), strict=False)
            ],
            "amount": amounts,
            "category": categories,
        },
        schema_overrides={"paid_at": pl.Datetime("us", "UTC"), "recorded_at": pl.Datetime("us", "UTC")},
    )


def oracle(events: pl.DataFrame, view: FeatureView) -> dict[tuple, dict[str, object]]:
    """Compute every aggregation with plain loops: for each entity and step s, values in (s - window, s]."""
    rows = events.to_dicts()
    entities = sorted({(r["rider_id"], r["region"]) for r in rows})
    steps = [DAY_START + i * view.step for i in range(int(timedelta(days=1) / view.step))]
    expected = {}
    for entity in entities:
        mine = [r for r in rows if (r["rider_id"], r["region"]) == entity]
        for s in steps:
            if not any(s - view.lookback < r["paid_at"] <= s for r in mine):
                continue
            values = {}
            for a in view.aggregations:
                inside = [r for r in mine if s - a.window < r["paid_at"] <= s and r[a.column] is not None]
                column = [r[a.column] for r in inside]
                if a.function == "sum":
                    values[a.name] = sum(column) if column else None
                elif a.function == "count":
                    values[a.name] = len(column)
                elif a.function == "mean":
                    values[a.name] = sum(column) / len(column) if column else None
                elif a.function == "min":
                    values[a.name] = min(column) if column else None
                elif a.function == "max":
                    values[a.name] = max(column) if column else None
                elif a.function == "last":
                    latest = max(inside, key=lambda r: (r["paid_at"], r["recorded_at"], r[a.column]), default=None)
                    values[a.name] = latest[a.column] if latest else None
                elif a.function == "count_distinct":
                    values[a.name] = len(set(column))
            expected[(*entity, s)] = values
    return expected


def run_view(tmp_path, events: pl.DataFrame, view: FeatureView, day: date = DAY) -> pl.DataFrame:
    store = OfflineStore(root=str(tmp_path))
    for index, part in enumerate(
        events.sample(fraction=1.0, shuffle=True, seed=1).iter_slices(max(1, events.height // 3))
    ):
        store.write_file(f"raw/payments/part-{index}.parquet", part)
    return compute_partition(view, store, day).rows


def assert_matches_oracle(actual: pl.DataFrame, expected: dict, view: FeatureView) -> None:
    got = {(r["rider_id"], r["region"], r["event_timestamp"]): r for r in actual.to_dicts()}
    assert sorted(got) == sorted(expected), "the set of (entity, step) rows differs from the oracle"
    for key, values in expected.items():
        row = got[key]
        assert row["created_timestamp"] == key[-1]
        for name, value in values.items():
            if isinstance(value, float) and row[name] is not None:
                assert math.isclose(row[name], value, rel_tol=1e-9, abs_tol=1e-9), (key, name, row[name], value)
            else:
                assert row[name] == value, (key, name, row[name], value)


@pytest.mark.parametrize("seed", range(12))
def test_hourly_windows_match_brute_force_oracle(tmp_path, seed):
    view = make_view()
    events = random_events(seed, rows=400, step=view.step, lookback=view.lookback)
    assert_matches_oracle(run_view(tmp_path, events, view), oracle(events, view), view)


@pytest.mark.parametrize("seed", range(4))
def test_quarter_hour_steps_match_brute_force_oracle(tmp_path, seed):
    view = make_view(
        step="15m",
        aggregations=[
            Aggregation("amount", "sum", "45m"),
            Aggregation("amount", "count", "15m"),
            Aggregation("amount", "last", "2h"),
            Aggregation("category", "count_distinct", "1h"),
            Aggregation("amount", "max", "3h"),
        ],
    )
    events = random_events(100 + seed, rows=300, step=view.step, lookback=view.lookback)
    assert_matches_oracle(run_view(tmp_path, events, view), oracle(events, view), view)


def test_day_without_events_in_any_window_yields_no_rows(tmp_path):
    view = make_view()
    events = random_events(7, rows=50, step=view.step, lookback=view.lookback)
    later_day = DAY + timedelta(days=30)
    result = run_view(tmp_path, events, view, day=later_day)
    assert result.is_empty()
    assert result.schema == pl.Schema(view.output_schema)


def test_event_exactly_on_a_step_counts_at_that_step_and_leaves_after_the_window(tmp_path):
    view = make_view(aggregations=[Aggregation("amount", "count", "1h"), Aggregation("amount", "count", "2h")])
    at = DAY_START + timedelta(hours=5)
    events = pl.DataFrame(
        {
            "rider_id": [1],
            "region": ["north"],
            "paid_at": [at],
            "recorded_at": [at],
            "amount": [3.0],
            "category": ["a"],
        },
        schema_overrides={"paid_at": pl.Datetime("us", "UTC"), "recorded_at": pl.Datetime("us", "UTC")},
    )
    result = run_view(tmp_path, events, view)
    assert result.select("event_timestamp", "amount_count_1h", "amount_count_2h").rows() == [
        (at, 1, 1),
        (at + timedelta(hours=1), 0, 1),
    ]


def test_the_result_does_not_depend_on_how_the_source_is_split_or_ordered(tmp_path):
    view = make_view(aggregations=[Aggregation("amount", "sum", "7d"), Aggregation("amount", "mean", "1d")])
    events = random_events(42, rows=3_000, step=view.step, lookback=view.lookback).with_columns(
        pl.col("amount") * 1.37e3
    )
    results = []
    for index, seed in enumerate((1, 2, 3)):
        store = OfflineStore(root=str(tmp_path / f"split-{index}"))
        shuffled = events.sample(fraction=1.0, shuffle=True, seed=seed)
        for part_index, part in enumerate(shuffled.iter_slices(500 + 250 * index)):
            store.write_file(f"raw/payments/part-{part_index:03d}.parquet", part)
        results.append(compute_partition(view, store, DAY).rows)
    assert results[0].equals(results[1]) and results[0].equals(results[2])
