"""Push: validated rows go online (newer event time wins) and into the event log that partitions include."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
import polars as pl
import pytest

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource, PushSource
from feature_assets.language.errors import DefinitionError, OnlineStoreError, PushError
from feature_assets.orchestration.view_assets import build_view_asset
from feature_assets.retrieval.point_in_time import get_historical_features
from feature_assets.streaming.push import push
from resources.embedded_redis import RedisServer
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

DRIVER = Entity("driver", ["driver_id"])
HISTORY = ParquetSource(
    "driver_stats_log", "raw/driver_stats/*.parquet", timestamp_field="ts", created_timestamp_field="loaded"
)
STATS = FeatureView(
    "driver_stats",
    entities=[DRIVER],
    source=PushSource("driver_stats_push", batch_source=HISTORY),
    schema=[Field("conv_rate", pl.Float64, min_value=0.0, max_value=1.0), Field("trips", pl.Int64, nullable=False)],
    ttl="3650d",
    start_date="2025-01-01",
)
repository = FeatureRepository([STATS])
FEATURES = ["driver_stats:conv_rate", "driver_stats:trips"]
DAY = date(2025, 1, 7)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 1, 7, hour, minute, tzinfo=UTC)


@pytest.fixture
def online(redis_url, redis_client):
    """An online store on the session's Redis, which `redis_client` empties first."""
    store = RedisOnlineStore(url=redis_url, repository="tests.test_push:repository", key_prefix="push")
    yield store
    store.close()


def online_values(store: RedisOnlineStore, drivers: list[int]) -> dict[int, tuple]:
    response = store.get_online_features(FEATURES, [{"driver_id": d} for d in drivers]).to_dict()
    return dict(zip(drivers, zip(response["conv_rate"], response["trips"], strict=True), strict=True))


def materialize(store: OfflineStore, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_view_asset(STATS)], instance=instance, resources={"offline_store": store}, partition_key=DAY.isoformat()
    )


def test_pushed_rows_are_readable_online_at_once_and_an_older_push_does_not_overwrite(online, offline_store):
    rows = [{"driver_id": 1, "event_timestamp": at(9), "conv_rate": 0.5, "trips": 3}]
    result = push(STATS, rows, to="online", online_store=online)
    assert result.rows == 1 and result.online_replaced == 1 and result.offline_files == ()
    assert online_values(online, [1]) == {1: (0.5, 3)}

    older = pd.DataFrame(
        {"driver_id": [1, 2], "event_timestamp": [at(8), at(8)], "conv_rate": [0.1, None], "trips": [1, 2]}
    )
    push(STATS, older, to="online", online_store=online)
    assert online_values(online, [1, 2]) == {1: (0.5, 3), 2: (None, 2)}


def test_pushed_rows_reach_training_after_the_partition_is_materialized(online, offline_store, instance):
    arrival = at(10)
    push(
        STATS,
        {"driver_id": [1, 2], "ts": [at(9), at(9, 30)], "conv_rate": [0.25, 0.75], "trips": [4, 5]},
        online_store=online,
        offline_store=offline_store,
        arrival=arrival,
    )
    history = pl.DataFrame(
        {
            "driver_id": [1, 3],
            "ts": [at(9), at(6)],
            "loaded": [arrival, at(7)],
            "conv_rate": [0.25, 0.1],
            "trips": [4, 9],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "loaded": pl.Datetime("us", "UTC")},
    )
    offline_store.write_file("raw/driver_stats/history.parquet", history)
    result = materialize(offline_store, instance)
    (materialization,) = result.get_asset_materialization_events()
    assert materialization.materialization.metadata["duplicate_rows_collapsed"].value == 1, (
        "the batch row with the pushed row's identity and values is one row"
    )
    partition = offline_store.read_partition(STATS, DAY)
    assert partition.select("driver_id", "created_timestamp", "trips").rows() == [
        (1, arrival, 4),
        (2, arrival, 5),
        (3, at(7), 9),
    ]

    entities = pl.DataFrame({"driver_id": [1, 2, 2, 3], "event_timestamp": [at(12), at(9, 45), at(12), at(12)]})
    available = get_historical_features(
        entities, FEATURES, repository=repository, offline_store=offline_store, as_of="available"
    )
    assert available.select("conv_rate", "trips").rows() == [(0.25, 4), (None, None), (0.75, 5), (0.1, 9)], (
        "at 09:45 driver 2's row (event 09:30) had not arrived yet (10:00)"
    )
    assert online_values(online, [1, 2]) == {1: (0.25, 4), 2: (0.75, 5)}


def test_an_invalid_push_names_the_column_row_and_rule_and_writes_nothing(online, offline_store, redis_client):
    rows = [
        {"driver_id": 1, "event_timestamp": at(9), "conv_rate": 0.5, "trips": 3},
        {"driver_id": 2, "event_timestamp": at(9), "conv_rate": 1.5, "trips": 3},
    ]
    with pytest.raises(
        PushError,
        match=r"nothing was written: row 1: column 'conv_rate' fails less_than_or_equal_to\(1.0\) \(value 1.5\)",
    ):
        push(STATS, rows, online_store=online, offline_store=offline_store)
    assert list(redis_client.scan_iter("push:*")) == []
    assert offline_store.scan_pushed(STATS, DAY) is None


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"driver_id": 1, "event_timestamp": at(9), "trips": 3}], r"lack column\(s\) \['conv_rate'\]"),
        (
            [{"driver_id": 1, "event_timestamp": at(9), "conv_rate": 0.5, "trips": 3, "tips": 1}],
            r"\['tips'\] are not in the view",
        ),
        (
            [{"driver_id": 1, "event_timestamp": at(9), "created_timestamp": at(9), "conv_rate": 0.5, "trips": 3}],
            "stamps each row's arrival time",
        ),
        (
            [{"driver_id": 1, "event_timestamp": "yesterday at nine", "conv_rate": 0.5, "trips": 3}],
            "'event_timestamp' text must be ISO 8601 times",
        ),
        (
            [{"driver_id": 1, "event_timestamp": at(9), "conv_rate": "high", "trips": 3}],
            r"column 'conv_rate' fails dtype\('Float64'\)",
        ),
        (
            [{"driver_id": 1, "event_timestamp": at(9), "conv_rate": 0.5, "trips": None}],
            "column 'trips' fails not_nullable",
        ),
        (
            [
                {"driver_id": 1, "event_timestamp": at(9), "conv_rate": 0.5, "trips": 3},
                {"driver_id": 1, "event_timestamp": at(9), "conv_rate": 0.6, "trips": 3},
            ],
            "multiple_fields_uniqueness",
        ),
    ],
    ids=[
        "missing_column",
        "unknown_column",
        "created_given",
        "non_iso_time",
        "wrong_dtype",
        "null_in_non_null",
        "conflict",
    ],
)
def test_bad_rows_are_refused_with_a_message_that_says_what_to_fix(rows, message, online, offline_store, redis_client):
    with pytest.raises(PushError, match=message):
        push(STATS, rows, online_store=online, offline_store=offline_store)
    assert list(redis_client.scan_iter("push:*")) == []
    assert offline_store.scan_pushed(STATS, DAY) is None


def test_pushing_to_a_view_without_a_push_source_or_without_its_store_is_refused(online, offline_store):
    batch_only = FeatureView("batch_only", entities=[DRIVER], source=HISTORY, schema=[Field("trips", pl.Int64)])
    row = [{"driver_id": 1, "event_timestamp": at(9), "trips": 3}]
    with pytest.raises(PushError, match="does not take pushed rows; give it source=PushSource"):
        push(batch_only, row, online_store=online, offline_store=offline_store)
    with pytest.raises(PushError, match="needs offline_store"):
        push(STATS, row, online_store=online)
    with pytest.raises(PushError, match="to='everywhere'; use one of online, offline, online_and_offline"):
        push(STATS, row, to="everywhere", online_store=online)


def test_a_push_source_feeds_only_pass_through_views():
    with pytest.raises(DefinitionError, match="a PushSource feeds a view whose features are the pushed columns"):
        FeatureView(
            "pushed_transformed",
            entities=[DRIVER],
            source=PushSource("driver_stats_push", batch_source=HISTORY),
            schema=[Field("trips", pl.Int64)],
            transformation=lambda rows: rows,
        )


def test_redis_down_mid_push_keeps_the_event_log_and_a_second_push_completes_online(offline_store):
    server = RedisServer().start()
    store = RedisOnlineStore(url=server.url, repository="tests.test_push:repository", socket_timeout=1.0)
    rows = {"driver_id": [1, 2], "event_timestamp": [at(9), at(9)], "conv_rate": [0.5, 0.6], "trips": [3, 4]}
    server.kill()
    with pytest.raises(
        OnlineStoreError, match="the offline event log already holds the 2 rows; pushing the same rows again is safe"
    ):
        push(STATS, rows, online_store=store, offline_store=offline_store)
    assert offline_store.scan_pushed(STATS, DAY).collect().height == 2

    server.start()
    store.close()
    push(STATS, rows, online_store=store, offline_store=offline_store)
    assert online_values(store, [1, 2]) == {1: (0.5, 3), 2: (0.6, 4)}
    assert offline_store.scan_pushed(STATS, DAY).collect().height == 4
    store.close()
    server.stop()


def test_pushed_rows_on_s3_are_read_back_by_the_partition(s3_offline_store, instance):
    push(
        STATS,
        [{"driver_id": 7, "event_timestamp": at(11), "conv_rate": 0.3, "trips": 2}],
        to="offline",
        offline_store=s3_offline_store,
        arrival=at(11) + timedelta(seconds=1),
    )
    s3_offline_store.write_file(
        "raw/driver_stats/history.parquet",
        pl.DataFrame(
            {"driver_id": [8], "ts": [at(5)], "loaded": [at(5)], "conv_rate": [0.9], "trips": [1]},
            schema_overrides={"ts": pl.Datetime("us", "UTC"), "loaded": pl.Datetime("us", "UTC")},
        ),
    )
    assert materialize(s3_offline_store, instance).success
    assert s3_offline_store.read_partition(STATS, DAY)["driver_id"].to_list() == [7, 8]


def test_event_times_as_iso_text_are_read_as_utc_naive_text_as_utc(online, offline_store):
    rows = {
        "driver_id": [1, 2],
        "event_timestamp": ["2025-01-07T09:00:00+02:00", "2025-01-07T09:00:00"],
        "conv_rate": [0.5, 0.25],
        "trips": [3, 4],
    }
    push(STATS, rows, online_store=online, offline_store=offline_store, arrival=at(12))
    logged = offline_store.scan_pushed(STATS, DAY).collect().sort("driver_id")
    assert logged["event_timestamp"].to_list() == [at(7), at(9)]
