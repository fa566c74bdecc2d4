"""Point-in-time joins planned within a memory budget: the plan's shape, and answers equal to the unplanned join."""

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource
from feature_assets.language.errors import DefinitionError
from feature_assets.retrieval.join_plan import plan_join, view_volume
from feature_assets.retrieval.point_in_time import get_historical_features
from resources.offline_store import OfflineStore

DRIVER = Entity("driver", ["driver_id"])
SOURCE = ParquetSource("events", "raw/events/*.parquet", "ts")
HOURLY = FeatureView(
    "hourly", entities=[DRIVER], source=SOURCE, ttl="2h", schema=[Field("trips", pl.Int64), Field("rate", pl.Float64)]
)
PROFILE = FeatureView("profile", entities=[DRIVER], source=SOURCE, schema=[Field("tier", pl.String)])
WIDE = FeatureView(
    "wide", entities=[DRIVER], source=SOURCE, ttl="1d", schema=[Field(f"f{i:03d}", pl.Float32) for i in range(300)]
)
REPOSITORY = FeatureRepository([HOURLY, PROFILE, WIDE])
START = datetime(2025, 3, 1, tzinfo=UTC)
DAYS = 4
DRIVERS = 12


def _write(store: OfflineStore, view: FeatureView, rows: pl.DataFrame) -> None:
    for (day,), part in rows.group_by(pl.col("event_timestamp").dt.date()):
        store.write_partition(view, day, part.sort("driver_id", "event_timestamp"))


def _store(tmp_path, seed: int = 0) -> OfflineStore:
    """Hourly rows (with nulls, and a late second version of some rows), a daily profile, and a wide daily view."""
    rng = np.random.default_rng(seed)
    store = OfflineStore(root=str(tmp_path / "store"))
    hours = DAYS * 24
    events = [START + timedelta(hours=h) for h in range(hours) for _ in range(DRIVERS)]
    hourly = pl.DataFrame(
        {
            "driver_id": np.tile(np.arange(DRIVERS), hours),
            "event_timestamp": events,
            "created_timestamp": [
                e + timedelta(minutes=int(m)) for e, m in zip(events, rng.integers(0, 90, len(events)), strict=True)
            ],
            "trips": pl.Series(rng.integers(0, 9, len(events))).scatter(rng.integers(0, len(events), 40), None),
            "rate": rng.random(len(events)),
        },
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC"), "created_timestamp": pl.Datetime("us", "UTC")},
    )
    corrections = hourly.sample(50, seed=seed).with_columns(
        pl.col("created_timestamp") + timedelta(hours=3), pl.col("trips") + 100
    )
    _write(store, HOURLY, pl.concat([hourly, corrections]))
    days = [START + timedelta(days=d, hours=int(h)) for d in range(DAYS) for h in rng.integers(0, 24, DRIVERS)]
    daily = {
        "driver_id": np.tile(np.arange(DRIVERS), DAYS),
        "event_timestamp": days,
        "created_timestamp": days,
    }
    overrides = {"event_timestamp": pl.Datetime("us", "UTC"), "created_timestamp": pl.Datetime("us", "UTC")}
    tiers = [str(t) for t in rng.choice(["gold", "silver", "bronze"], len(days))]
    _write(store, PROFILE, pl.DataFrame({**daily, "tier": tiers}, schema_overrides=overrides))
    wide = {f"f{i:03d}": rng.random(len(days), dtype=np.float32) for i in range(300)}
    _write(store, WIDE, pl.DataFrame({**daily, **wide}, schema_overrides=overrides))
    return store


def _entities(seed: int, count: int) -> pl.DataFrame:
    """Entity rows in random order, with repeated rows and times on exact hours, day edges and ttl edges."""
    rng = random.Random(seed)
    span = DAYS * 24 * 3600
    times = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.3:
            times.append(START + timedelta(hours=rng.randrange(DAYS * 24 + 3)))
        elif kind < 0.4:
            times.append(START + timedelta(days=rng.randrange(1, DAYS), microseconds=rng.choice([-1, 0, 1])))
        else:
            times.append(START + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6)))
    frame = pl.DataFrame(
        {"driver_id": [rng.randrange(DRIVERS + 1) for _ in times], "event_timestamp": times},
        schema={"driver_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC")},
    )
    return pl.concat([frame, frame.sample(20, seed=seed)]).sample(fraction=1.0, shuffle=True, seed=seed)


FEATURES = ["hourly:trips", "hourly:rate", "profile:tier"]


@pytest.mark.parametrize("as_of", ["event", "available"])
def test_a_small_budget_gives_the_answers_of_one_unplanned_join(tmp_path, as_of):
    store = _store(tmp_path)
    entities = _entities(1, 400)
    whole = get_historical_features(
        entities, FEATURES, repository=REPOSITORY, offline_store=store, as_of=as_of, memory_budget="64GiB"
    )
    planned = get_historical_features(
        entities, FEATURES, repository=REPOSITORY, offline_store=store, as_of=as_of, memory_budget="24KiB"
    )
    assert_frame_equal(planned, whole)
    assert whole.select(pl.col("trips").null_count()).item() < whole.height


def test_the_plan_cuts_time_blocks_for_views_with_a_ttl_and_hash_buckets_for_views_without(tmp_path):
    store = _store(tmp_path)
    times = np.sort(_entities(2, 400).get_column("event_timestamp").dt.epoch("us").to_numpy())
    hourly = view_volume("hourly", HOURLY, ["trips", "rate"], store.partition_sizes(HOURLY))
    profile = view_volume("profile", PROFILE, ["tier"], store.partition_sizes(PROFILE))
    assert hourly.rows_between(None, times[-1]) == pytest.approx(DAYS * 24 * DRIVERS + 50, rel=0.05)
    budget = int(hourly.row_bytes * DAYS * 24 * DRIVERS / 6)
    blocks = plan_join(times, [hourly, profile], entity_row_bytes=8.0, budget=budget)
    assert len(blocks) >= 6
    assert [b.start for b in blocks] == [0, *(b.stop for b in blocks[:-1])] and blocks[-1].stop == len(times)
    for block in blocks:
        first, last = int(times[block.start]), int(times[block.stop - 1])
        assert (
            8.0 * (block.stop - block.start) + hourly.bytes_for(first, last) <= budget or block.stop - block.start == 1
        )
        assert block.buckets["hourly"] == 1
    profile_budget = int(profile.bytes_for(0, int(times[-1])) / 3)
    buckets = plan_join(times, [hourly, profile], entity_row_bytes=0.001, budget=profile_budget)[-1].buckets
    assert buckets["profile"] >= 3


def test_rows_whose_ttl_window_crosses_a_block_boundary_are_found(tmp_path):
    store = OfflineStore(root=str(tmp_path / "store"))
    late = START + timedelta(hours=23, minutes=30)
    rows = pl.DataFrame(
        {"driver_id": [1, 1], "event_timestamp": [late, late + timedelta(days=1)], "trips": [7, 8], "rate": [0.5, 0.6]},
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC"), "trips": pl.Int64},
    ).with_columns(created_timestamp=pl.col("event_timestamp"))
    _write(store, HOURLY, rows.select(list(HOURLY.output_schema)))
    moments = [START + timedelta(days=1, minutes=m) for m in range(0, 24 * 60, 5)]
    entities = pl.DataFrame({"driver_id": [1] * len(moments), "event_timestamp": moments}).reverse()
    result = get_historical_features(
        entities, ["hourly:trips"], repository=REPOSITORY, offline_store=store, memory_budget="3KiB"
    )
    expected = [7 if m - late <= timedelta(hours=2) else 8 if m >= late + timedelta(days=1) else None for m in moments]
    assert result.get_column("trips").to_list() == expected[::-1]


def test_an_unsorted_entity_frame_keeps_its_order(tmp_path):
    store = _store(tmp_path)
    entities = _entities(3, 300)
    shuffled = get_historical_features(
        entities, FEATURES, repository=REPOSITORY, offline_store=store, memory_budget="24KiB"
    )
    ordered = get_historical_features(
        entities.sort("event_timestamp", "driver_id"), FEATURES, repository=REPOSITORY, offline_store=store
    )
    assert_frame_equal(
        shuffled.sort("event_timestamp", "driver_id", maintain_order=True), ordered, check_row_order=False
    )
    assert_frame_equal(shuffled.select(entities.columns), entities)


def test_a_wide_view_is_joined_on_row_positions_and_matches_a_brute_force_join(tmp_path):
    store = _store(tmp_path)
    entities = _entities(4, 300)
    features = [f"wide:f{i:03d}" for i in range(300)]
    assert view_volume("wide", WIDE, WIDE.feature_names, store.partition_sizes(WIDE)).late_fetch
    rows = store.scan_partitions(WIDE).collect()
    numbered = entities.with_row_index("row")
    candidates = numbered.join(rows, on="driver_id", suffix="_view").filter(
        (pl.col("event_timestamp_view") <= pl.col("event_timestamp"))
        & (pl.col("event_timestamp_view") >= pl.col("event_timestamp") - WIDE.ttl)
    )
    latest = candidates.sort("event_timestamp_view", "created_timestamp").group_by("row").last()
    expected = numbered.join(latest.select("row", *WIDE.feature_names), on="row", how="left").drop("row")
    for budget in ("8GiB", "200KiB"):
        result = get_historical_features(
            entities, features, repository=REPOSITORY, offline_store=store, memory_budget=budget
        )
        assert_frame_equal(result, expected)
    assert expected.drop_nulls().height > 0


def test_a_memory_budget_that_cannot_be_read_names_the_setting(tmp_path):
    store = _store(tmp_path)
    with pytest.raises(DefinitionError, match=r"memory_budget=\): cannot read size 'lots'"):
        get_historical_features(
            _entities(5, 30), FEATURES, repository=REPOSITORY, offline_store=store, memory_budget="lots"
        )
    with pytest.raises(DefinitionError, match="FEATURE_STORE_MEMORY_BUDGET"):
        get_historical_features(
            _entities(5, 30),
            FEATURES,
            repository=REPOSITORY,
            offline_store=store.model_copy(update={"memory_budget": "0"}),
        )
