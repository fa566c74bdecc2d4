"""Point-in-time joins agree with a brute-force oracle and fail with messages that say what to fix."""

import random
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from feature_assets import Entity, FeatureRepository, FeatureService, FeatureView, Field, ParquetSource
from feature_assets.language.errors import EntityFrameError, FeatureReferenceError
from feature_assets.retrieval import join_plan
from feature_assets.retrieval.point_in_time import get_historical_features
from resources.offline_store import OfflineStore

DRIVER = Entity("driver", ["driver_id"])
CUSTOMER = Entity("customer", ["customer_id"], key_dtypes={"customer_id": pl.String})
SOURCE = ParquetSource("events", "raw/events/*.parquet", "ts")

DRIVER_STATS = FeatureView(
    "driver_stats",
    entities=[DRIVER],
    source=SOURCE,
    ttl="2h",
    schema=[Field("conv_rate", pl.Float64), Field("trips", pl.Int32)],
)
CUSTOMER_PROFILE = FeatureView(
    "customer_profile",
    entities=[CUSTOMER],
    source=SOURCE,
    ttl="1d",
    schema=[Field("segment", pl.String), Field("score", pl.Float64)],
)
DRIVER_CUSTOMER = FeatureView(
    "driver_customer",
    entities=[DRIVER, CUSTOMER],
    source=SOURCE,
    schema=[
        Field("orders", pl.Int64),
        Field("repeat", pl.Boolean),
        Field("last_order_at", pl.Datetime),
        Field("dishes", pl.List(pl.String)),
    ],
)
MARKET = FeatureView(
    "market",
    entities=[],
    source=SOURCE,
    ttl="3h",
    schema=[Field("demand", pl.Float64), Field("score", pl.Float64)],
)
VIEWS = (DRIVER_STATS, CUSTOMER_PROFILE, DRIVER_CUSTOMER, MARKET)
REPOSITORY = FeatureRepository(list(VIEWS))
ALL_FEATURES = [f"{view.name}:{feature}" for view in VIEWS for feature in view.feature_names]
DISTINCT_FEATURES = [f for f in ALL_FEATURES if f != "market:score"]

START = datetime(2024, 3, 9, 20, tzinfo=UTC)
NS_PER_US = 1000
UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000}
TIME_REPRESENTATIONS = [
    ("ns", None),
    ("ns", "America/New_York"),
    ("us", "UTC"),
    ("us", None),
    ("ms", "Asia/Kolkata"),
    ("ms", None),
]
DRIVERS = [1, 2, 3]
CUSTOMERS = ["a", "b", "c"]


def _ns(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * NS_PER_US


def _us_datetime(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // NS_PER_US)


def _feature_value(rng: random.Random, dtype: pl.DataType) -> object:
    if rng.random() < 0.2:
        return None
    if dtype == pl.String:
        return rng.choice(["gold", "silver", "bronze"])
    if dtype == pl.Boolean:
        return rng.random() < 0.5
    if isinstance(dtype, pl.Datetime):
        return START + timedelta(microseconds=rng.randrange(10**12))
    if isinstance(dtype, pl.List):
        return [rng.choice(["soup", "rice", "tea"]) for _ in range(rng.randrange(3))]
    if dtype.is_integer():
        return rng.randrange(100)
    return round(rng.random(), 3)


def _random_view_rows(rng: random.Random, view: FeatureView) -> list[dict]:
    """Rows over ~2.5 days with few keys and few event times, so ties on event time are common."""
    event_times = [START + timedelta(minutes=rng.randrange(60 * 60)) for _ in range(25)]
    rows, seen = [], set()
    for _ in range(rng.randrange(20, 70)):
        keys = {"driver_id": rng.choice(DRIVERS), "customer_id": rng.choice(CUSTOMERS)}
        event = rng.choice(event_times)
        created = event + timedelta(minutes=rng.choice([-10, 0, 0, 1, 5, 30, 300]))
        identity = (*(keys[k] for k in view.join_keys), event, created)
        if identity in seen:
            continue
        seen.add(identity)
        row = {k: keys[k] for k in view.join_keys}
        row |= {"event_timestamp": event, "created_timestamp": created}
        row |= {f.name: _feature_value(rng, f.dtype) for f in view.schema}
        rows.append(row)
    return rows


def _write_view(store: OfflineStore, view: FeatureView, rows: list[dict]) -> None:
    frame = pl.DataFrame(rows, schema=view.output_schema)
    for (day,), part in frame.group_by(pl.col("event_timestamp").dt.date()):
        store.write_partition(view, day, part)


def _random_entity_times(rng: random.Random, view_rows: dict[str, list[dict]], count: int) -> list[int | None]:
    """Entity times in ns: random ones, exact event/created times, exact ttl edges and a little either side."""
    times: list[int | None] = []
    for _ in range(count):
        view = rng.choice(VIEWS)
        row = rng.choice(view_rows[view.name])
        kind = rng.randrange(7)
        if kind == 0:
            moment = _ns(START - timedelta(hours=3)) + rng.randrange(70 * 3600 * 10**9)
        elif kind == 1:
            moment = _ns(row["event_timestamp"])
        elif kind == 2:
            moment = _ns(row["created_timestamp"])
        elif kind == 3 and view.ttl is not None:
            moment = _ns(row["event_timestamp"] + view.ttl)
        elif kind == 4 and view.ttl is not None:
            moment = _ns(row["event_timestamp"] + view.ttl) + rng.choice([1, 500, 1000, 1001])
        elif kind == 5:
            moment = _ns(START - timedelta(days=rng.randrange(1, 4)))
        else:
            moment = _ns(row["event_timestamp"]) + rng.choice([-1000, -1, 1, 999, 1000])
        times.append(moment)
    times[rng.randrange(count)] = None
    return times


def _time_column(name: str, times_ns: list[int | None], unit: str, time_zone: str | None) -> pl.Series:
    column = pl.Series(name, times_ns, dtype=pl.Int64).cast(pl.Datetime("ns")).dt.cast_time_unit(unit)
    if time_zone is not None:
        column = column.dt.replace_time_zone("UTC").dt.convert_time_zone(time_zone)
    return column


def _oracle(
    entity_rows: list[dict],
    times_ns: list[int | None],
    view_rows: dict[str, list[dict]],
    features: list[str],
    full_feature_names: bool,
    as_of: str,
) -> pl.DataFrame:
    """Answer every entity row by looping over every view row: the definition, written as plainly as possible."""
    requested = [reference.split(":") for reference in features]
    names = [f"{v}__{f}" if full_feature_names else f for v, f in requested]
    dtypes = {name: REPOSITORY.view(v).fields_by_name[f].dtype for name, (v, f) in zip(names, requested, strict=True)}
    out = []
    for entity, moment in zip(entity_rows, times_ns, strict=True):
        best: dict[str, dict | None] = {}
        for view in VIEWS:
            candidates = []
            for row in view_rows[view.name]:
                event, created = _ns(row["event_timestamp"]), _ns(row["created_timestamp"])
                if moment is None or any(entity[k] is None or entity[k] != row[k] for k in view.join_keys):
                    continue
                if event > moment:
                    continue
                if view.ttl is not None and event < moment - view.ttl // timedelta(microseconds=1) * NS_PER_US:
                    continue
                if as_of == "available" and created > moment:
                    continue
                candidates.append(row)
            best[view.name] = max(
                candidates, key=lambda r: (r["event_timestamp"], r["created_timestamp"]), default=None
            )
        out.append({name: (best[v] or {}).get(f) for name, (v, f) in zip(names, requested, strict=True)})
    return pl.DataFrame(out, schema=dtypes, orient="row")


def _scenario(
    seed: int, store: OfflineStore
) -> tuple[random.Random, dict[str, list[dict]], list[dict], list[int | None]]:
    rng = random.Random(seed)
    view_rows = {view.name: _random_view_rows(rng, view) for view in VIEWS}
    for view in VIEWS:
        _write_view(store, view, view_rows[view.name])
    count = 60
    entity_rows = [
        {"driver_id": rng.choice([*DRIVERS, 99]), "customer_id": rng.choice([*CUSTOMERS, "zz"])} for _ in range(count)
    ]
    entity_rows[rng.randrange(count)]["driver_id"] = None
    times = _random_entity_times(rng, view_rows, count)
    duplicates = [rng.randrange(count) for _ in range(10)]
    entity_rows += [dict(entity_rows[i]) for i in duplicates]
    times += [times[i] for i in duplicates]
    return rng, view_rows, entity_rows, times


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_oracle_on_random_data(seed, tmp_path):
    store = OfflineStore(root=str(tmp_path))
    rng, view_rows, entity_rows, times = _scenario(seed, store)
    unit, time_zone = TIME_REPRESENTATIONS[seed % len(TIME_REPRESENTATIONS)]
    times = [None if t is None else t // UNIT_NS[unit] * UNIT_NS[unit] for t in times]
    entity_df = pl.DataFrame(entity_rows, schema={"driver_id": pl.Int64, "customer_id": pl.String}).with_columns(
        _time_column("event_timestamp", times, unit, time_zone),
        label=pl.Series([rng.random() for _ in entity_rows]),
    )
    for as_of in ("event", "available"):
        for full_feature_names, features in ((False, DISTINCT_FEATURES), (True, ALL_FEATURES)):
            result = get_historical_features(
                entity_df,
                features,
                repository=REPOSITORY,
                offline_store=store,
                full_feature_names=full_feature_names,
                as_of=as_of,
            )
            expected = _oracle(entity_rows, times, view_rows, features, full_feature_names, as_of)
            assert_frame_equal(result.select(entity_df.columns), entity_df)
            assert_frame_equal(result.drop(entity_df.columns), expected)


def test_pandas_entity_frame_with_nanosecond_aware_times_matches_the_oracle(tmp_path):
    store = OfflineStore(root=str(tmp_path))
    _, view_rows, entity_rows, times = _scenario(100, store)
    entity_df = pd.DataFrame(entity_rows).astype({"driver_id": "Int64"})
    entity_df["event_timestamp"] = _time_column("event_timestamp", times, "ns", "Europe/Berlin").to_pandas()
    entity_df.index = [f"row{i}" for i in range(len(entity_df))]
    result = get_historical_features(
        entity_df, DISTINCT_FEATURES, repository=REPOSITORY, offline_store=store, output="pandas"
    )
    expected = _oracle(entity_rows, times, view_rows, DISTINCT_FEATURES, False, "event").to_pandas()
    expected.index = entity_df.index
    pd.testing.assert_frame_equal(result[entity_df.columns], entity_df)
    pd.testing.assert_frame_equal(result.drop(columns=entity_df.columns), expected)


def _assert_budgeted_joins_match_the_oracle(
    store: OfflineStore,
    entity_df: pl.DataFrame,
    entity_rows: list[dict],
    times: list[int | None],
    view_rows: dict[str, list[dict]],
    budget: str,
) -> dict[str, pl.DataFrame]:
    """Join every feature in both modes within `budget`, check each against the oracle, return them by mode."""
    results = {}
    for as_of in ("event", "available"):
        results[as_of] = get_historical_features(
            entity_df,
            ALL_FEATURES,
            repository=REPOSITORY,
            offline_store=store,
            full_feature_names=True,
            as_of=as_of,
            memory_budget=budget,
        )
        expected = _oracle(entity_rows, times, view_rows, ALL_FEATURES, True, as_of)
        assert_frame_equal(results[as_of].drop(entity_df.columns), expected)
    return results


@pytest.mark.parametrize("budget", ["6KiB", "48KiB"])
def test_joins_planned_in_small_budgets_give_the_same_answer(tmp_path, budget):
    store = OfflineStore(root=str(tmp_path))
    _, view_rows, entity_rows, times = _scenario(200, store)
    entity_df = pl.DataFrame(entity_rows, schema={"driver_id": pl.Int64, "customer_id": pl.String}).with_columns(
        _time_column("event_timestamp", times, "ns", "America/New_York")
    )
    results = _assert_budgeted_joins_match_the_oracle(store, entity_df, entity_rows, times, view_rows, budget)
    for as_of, result in results.items():
        written = get_historical_features(
            entity_df,
            ALL_FEATURES,
            repository=REPOSITORY,
            offline_store=store,
            full_feature_names=True,
            as_of=as_of,
            memory_budget=budget,
            output_path=tmp_path / f"training-{as_of}.parquet",
        )
        assert_frame_equal(pl.read_parquet(written), result)


@pytest.mark.parametrize("seed", range(4))
def test_joining_on_row_positions_and_reading_features_after_matches_the_oracle(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(join_plan, "LATE_FETCH_BYTES", 0)
    store = OfflineStore(root=str(tmp_path))
    _, view_rows, entity_rows, times = _scenario(400 + seed, store)
    unit, time_zone = TIME_REPRESENTATIONS[seed % len(TIME_REPRESENTATIONS)]
    times = [None if t is None else t // UNIT_NS[unit] * UNIT_NS[unit] for t in times]
    entity_df = pl.DataFrame(entity_rows, schema={"driver_id": pl.Int64, "customer_id": pl.String}).with_columns(
        _time_column("event_timestamp", times, unit, time_zone)
    )
    budget = "16KiB" if seed % 2 else "2GiB"
    _assert_budgeted_joins_match_the_oracle(store, entity_df, entity_rows, times, view_rows, budget)


@pytest.mark.parametrize("seed", range(4))
def test_partitions_with_unique_event_times_are_joined_on_event_time_alone(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(join_plan, "LATE_FETCH_BYTES", 0 if seed % 2 else join_plan.LATE_FETCH_BYTES)
    _, scenario_rows, entity_rows, times = _scenario(500 + seed, OfflineStore(root=str(tmp_path / "scenario")))
    store = OfflineStore(root=str(tmp_path / "store"))
    view_rows = {}
    for view in VIEWS:
        firsts = {}
        for row in scenario_rows[view.name]:
            firsts.setdefault((*(row[k] for k in view.join_keys), row["event_timestamp"]), row)
        view_rows[view.name] = list(firsts.values())
        _write_view(store, view, view_rows[view.name])
        assert all(size.unique_event_times for size in store.partition_sizes(view))
    entity_df = pl.DataFrame(entity_rows, schema={"driver_id": pl.Int64, "customer_id": pl.String}).with_columns(
        _time_column("event_timestamp", times, "ns", "UTC")
    )
    budget = "16KiB" if seed > 1 else "2GiB"
    _assert_budgeted_joins_match_the_oracle(store, entity_df, entity_rows, times, view_rows, budget)


def test_partitions_with_shared_event_times_say_so(tmp_path):
    store = OfflineStore(root=str(tmp_path))
    _, view_rows, _, _ = _scenario(600, store)
    rows = view_rows[DRIVER_STATS.name]
    identities = [(row["driver_id"], row["event_timestamp"]) for row in rows]
    shared_days = {event.date() for key, event in identities if identities.count((key, event)) > 1}
    assert shared_days
    for size in store.partition_sizes(DRIVER_STATS):
        assert size.unique_event_times == (size.day not in shared_days)


def _one_view_store(tmp_path, rows: list[dict], view: FeatureView = DRIVER_STATS) -> OfflineStore:
    store = OfflineStore(root=str(tmp_path))
    _write_view(store, view, rows)
    return store


def _stats_row(event: datetime, created: datetime, trips: int, driver_id: int = 1) -> dict:
    return {
        "driver_id": driver_id,
        "event_timestamp": event,
        "created_timestamp": created,
        "conv_rate": 0.5,
        "trips": trips,
    }


def _trips_at(store: OfflineStore, *moments: datetime, as_of: str = "event") -> list[int | None]:
    entities = pl.DataFrame({"driver_id": [1] * len(moments), "event_timestamp": list(moments)})
    result = get_historical_features(
        entities, ["driver_stats:trips"], repository=REPOSITORY, offline_store=store, as_of=as_of
    )
    return result["trips"].to_list()


def test_a_row_at_exactly_the_entity_time_or_exactly_ttl_before_it_is_used(tmp_path):
    event = START + timedelta(hours=1)
    store = _one_view_store(tmp_path, [_stats_row(event, event, trips=7)])
    just_expired = event + DRIVER_STATS.ttl + timedelta(microseconds=1)
    assert _trips_at(store, event, event + DRIVER_STATS.ttl, just_expired, event - timedelta(microseconds=1)) == [
        7,
        7,
        None,
        None,
    ]


def test_ties_on_event_time_are_broken_by_the_latest_created_time(tmp_path):
    event = START + timedelta(hours=1)
    rows = [_stats_row(event, event + timedelta(minutes=m), trips=m) for m in (5, 30, 10)]
    store = _one_view_store(tmp_path, rows)
    assert _trips_at(store, event + timedelta(hours=1)) == [30]


def test_available_mode_ignores_rows_created_after_the_entity_time(tmp_path):
    early, late = START, START + timedelta(hours=1)
    rows = [_stats_row(early, early, trips=1), _stats_row(late, late + timedelta(minutes=30), trips=2)]
    store = _one_view_store(tmp_path, rows)
    probe = late + timedelta(minutes=10)
    assert _trips_at(store, probe, as_of="event") == [2]
    assert _trips_at(store, probe, as_of="available") == [1]
    assert _trips_at(store, late + timedelta(minutes=30), as_of="available") == [2]


def test_output_keeps_every_entity_row_in_input_order_with_duplicates(tmp_path):
    rows = [_stats_row(START + timedelta(hours=h), START + timedelta(hours=h), trips=h) for h in range(4)]
    store = _one_view_store(tmp_path, rows)
    moments = [START + timedelta(hours=h, minutes=1) for h in (3, 0, 3, 2, 0, 1)]
    assert _trips_at(store, *moments) == [3, 0, 3, 2, 0, 1]


def test_only_partitions_that_can_match_are_read(tmp_path):
    event = datetime(2024, 3, 12, 12, tzinfo=UTC)
    store = _one_view_store(tmp_path, [_stats_row(event, event, trips=3)])
    for day in (date(2024, 3, 11), date(2024, 3, 13)):
        path = tmp_path / "driver_stats" / "v1" / f"date={day.isoformat()}" / "data.parquet"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"not parquet: reading this partition would fail")
    assert _trips_at(store, event + timedelta(minutes=1)) == [3]


def test_a_row_in_the_previous_days_partition_within_ttl_is_found(tmp_path):
    event = datetime(2024, 3, 11, 23, 30, tzinfo=UTC)
    store = _one_view_store(tmp_path, [_stats_row(event, event, trips=4)])
    assert _trips_at(store, event + timedelta(hours=1), event + DRIVER_STATS.ttl) == [4, 4]


def test_entity_times_before_all_data_get_nulls(tmp_path):
    store = _one_view_store(tmp_path, [_stats_row(START, START, trips=3)])
    assert _trips_at(store, START - timedelta(days=30)) == [None]


def test_a_feature_service_can_be_requested(tmp_path):
    store = _one_view_store(tmp_path, [_stats_row(START, START, trips=3)])
    service = FeatureService("driver_model", ["driver_stats:trips", "driver_stats:conv_rate"])
    entities = pl.DataFrame({"driver_id": [1], "event_timestamp": [START]})
    result = get_historical_features(entities, service, repository=REPOSITORY, offline_store=store)
    assert result.columns == ["driver_id", "event_timestamp", "trips", "conv_rate"]


def test_polars_entity_rows_can_be_returned_as_pandas(tmp_path):
    store = _one_view_store(tmp_path, [_stats_row(START, START, trips=3)])
    entities = pl.DataFrame({"driver_id": [2, 1], "event_timestamp": [START, START]})
    result = get_historical_features(
        entities, ["driver_stats:trips"], repository=REPOSITORY, offline_store=store, output="pandas"
    )
    assert isinstance(result, pd.DataFrame)
    assert list(result.columns) == ["driver_id", "event_timestamp", "trips"]
    assert result["trips"].tolist()[1] == 3 and pd.isna(result["trips"].tolist()[0])


def test_a_parquet_path_can_be_given_as_the_entity_frame(tmp_path):
    store = _one_view_store(tmp_path / "store", [_stats_row(START, START, trips=3)])
    path = tmp_path / "entities.parquet"
    pl.DataFrame({"driver_id": [1, 2], "event_timestamp": [START, START]}).write_parquet(path)
    result = get_historical_features(str(path), ["driver_stats:trips"], repository=REPOSITORY, offline_store=store)
    assert result["trips"].to_list() == [3, None]


def test_narrower_integer_keys_are_cast_and_returned_unchanged(tmp_path):
    store = _one_view_store(tmp_path, [_stats_row(START, START, trips=3)])
    entities = pl.DataFrame({"driver_id": pl.Series([1], dtype=pl.Int16), "event_timestamp": [START]})
    result = get_historical_features(entities, ["driver_stats:trips"], repository=REPOSITORY, offline_store=store)
    assert result.schema["driver_id"] == pl.Int16
    assert result["trips"].to_list() == [3]


def test_an_empty_entity_frame_returns_an_empty_frame_with_the_feature_columns(tmp_path):
    store = _one_view_store(tmp_path, [_stats_row(START, START, trips=3)])
    entities = pl.DataFrame(schema={"driver_id": pl.Int64, "event_timestamp": pl.Datetime("ms")})
    result = get_historical_features(
        entities,
        ["driver_stats:trips", "market:demand"],
        repository=REPOSITORY,
        offline_store=store,
        full_feature_names=True,
    )
    assert result.is_empty()
    assert result.schema == pl.Schema(
        {
            "driver_id": pl.Int64,
            "event_timestamp": pl.Datetime("ms"),
            "driver_stats__trips": pl.Int32,
            "market__demand": pl.Float64,
        }
    )


def _call(entities: pl.DataFrame, features: list[str], tmp_path, **options) -> pl.DataFrame:
    return get_historical_features(
        entities, features, repository=REPOSITORY, offline_store=OfflineStore(root=str(tmp_path)), **options
    )


ENTITIES = pl.DataFrame({"driver_id": [1], "customer_id": ["a"], "event_timestamp": [START]})


def test_an_unknown_view_is_named_with_the_known_views(tmp_path):
    with pytest.raises(
        FeatureReferenceError, match="unknown feature view 'driver_stat'; known views: .*'driver_stats'"
    ):
        _call(ENTITIES, ["driver_stat:trips"], tmp_path)


def test_an_unknown_feature_is_named_with_the_views_features(tmp_path):
    with pytest.raises(FeatureReferenceError, match=r"unknown feature 'trip' in view 'driver_stats'; .*'trips'"):
        _call(ENTITIES, ["driver_stats:trip"], tmp_path)


def test_a_missing_join_key_is_named_with_the_view_that_needs_it(tmp_path):
    with pytest.raises(EntityFrameError, match="lacks column 'customer_id', a join key of view 'customer_profile'"):
        _call(ENTITIES.drop("customer_id"), ["customer_profile:segment"], tmp_path)


def test_a_missing_timestamp_column_says_to_pass_timestamp_column(tmp_path):
    entities = ENTITIES.rename({"event_timestamp": "ts"})
    with pytest.raises(EntityFrameError, match="no timestamp column 'event_timestamp'; pass timestamp_column="):
        _call(entities, ["driver_stats:trips"], tmp_path)
    assert _call(entities, ["driver_stats:trips"], tmp_path, timestamp_column="ts").height == 1


def test_a_timestamp_column_of_strings_is_rejected(tmp_path):
    entities = ENTITIES.with_columns(pl.col("event_timestamp").cast(pl.String))
    with pytest.raises(EntityFrameError, match="'event_timestamp' must hold datetimes .* found String"):
        _call(entities, ["driver_stats:trips"], tmp_path)


def test_a_string_key_for_an_integer_join_key_states_the_expected_dtype(tmp_path):
    entities = ENTITIES.with_columns(pl.col("driver_id").cast(pl.String))
    with pytest.raises(
        EntityFrameError,
        match="'driver_id' has dtype String, but view 'driver_stats' joins on it as Int64; cast the column to Int64",
    ):
        _call(entities, ["driver_stats:trips"], tmp_path)


def test_an_integer_key_for_a_string_join_key_states_the_expected_dtype(tmp_path):
    entities = ENTITIES.with_columns(customer_id=pl.lit(7))
    with pytest.raises(EntityFrameError, match="joins on it as String; cast the column to String"):
        _call(entities, ["customer_profile:segment"], tmp_path)


def test_integer_keys_out_of_range_for_the_join_key_dtype_are_rejected(tmp_path):
    entities = ENTITIES.with_columns(driver_id=pl.lit(2**63, dtype=pl.UInt64))
    with pytest.raises(EntityFrameError, match="'driver_id' has values that do not fit Int64"):
        _call(entities, ["driver_stats:trips"], tmp_path)


def test_the_same_feature_name_from_two_views_needs_full_feature_names(tmp_path):
    with pytest.raises(
        FeatureReferenceError,
        match="'score' is requested from both view 'customer_profile' and view 'market'; pass full_feature_names=True",
    ):
        _call(ENTITIES, ["customer_profile:score", "market:score"], tmp_path)
    result = _call(ENTITIES, ["customer_profile:score", "market:score"], tmp_path, full_feature_names=True)
    assert result.columns[-2:] == ["customer_profile__score", "market__score"]


def test_a_feature_named_like_an_entity_column_is_rejected(tmp_path):
    entities = ENTITIES.with_columns(trips=pl.lit(1))
    with pytest.raises(EntityFrameError, match="already has a column 'trips'.*full_feature_names=True"):
        _call(entities, ["driver_stats:trips"], tmp_path)


def test_an_unknown_as_of_mode_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="as_of must be one of"):
        _call(ENTITIES, ["driver_stats:trips"], tmp_path, as_of="created")


def test_reading_views_and_entities_from_s3_gives_the_same_result_as_local(tmp_path, s3_offline_store):
    local = OfflineStore(root=str(tmp_path))
    _, view_rows, entity_rows, times = _scenario(300, local)
    for view in VIEWS:
        _write_view(s3_offline_store, view, view_rows[view.name])
    entity_df = pl.DataFrame(entity_rows, schema={"driver_id": pl.Int64, "customer_id": pl.String}).with_columns(
        _time_column("event_timestamp", times, "us", "UTC")
    )
    entities_on_s3 = s3_offline_store.write_file("entities.parquet", entity_df)
    for as_of in ("event", "available"):
        options = {"repository": REPOSITORY, "full_feature_names": True, "as_of": as_of}
        on_s3 = get_historical_features(entities_on_s3, ALL_FEATURES, offline_store=s3_offline_store, **options)
        on_disk = get_historical_features(entity_df, ALL_FEATURES, offline_store=local, **options)
        assert_frame_equal(on_s3, on_disk)
        output = f"{s3_offline_store.root}/training/{as_of}.parquet"
        written = get_historical_features(
            entities_on_s3, ALL_FEATURES, offline_store=s3_offline_store, output_path=output, **options
        )
        assert written == output
        assert_frame_equal(pl.read_parquet(output, storage_options=s3_offline_store.storage_options), on_disk)
