"""The Redis online store against real redis-servers: newer event time wins, TTL, dtypes, one round trip, errors."""

import math
import random
import threading
import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from feature_assets.language.errors import EntityFrameError, FeatureReferenceError, OnlineStoreError
from resources.embedded_redis import RedisServer, free_port
from resources.online_encoding import decoder, entity_key, entity_key_expr, value_expr, values_field
from resources.online_response import EXPIRED, NOT_FOUND, PRESENT
from resources.online_store import RedisOnlineStore
from tests import online_views as views

REPOSITORY = "tests.online_views:repository"


@pytest.fixture
def store(redis_url, redis_client):
    """A store on the emptied session server, resolving references in the test views."""
    online = RedisOnlineStore(url=redis_url, repository=REPOSITORY)
    yield online
    online.close()


def now() -> datetime:
    return datetime.now(UTC)


def offline_frame(view, rows: list[dict]) -> pl.DataFrame:
    """Return offline rows of `view` (missing features are null, created time defaults to the event time)."""
    records = [
        {
            **{name: row.get(name) for name in view.join_keys},
            "event_timestamp": row["event_timestamp"],
            "created_timestamp": row.get("created_timestamp", row["event_timestamp"]),
            **{name: row.get(name) for name in view.feature_names},
        }
        for row in rows
    ]
    return pl.DataFrame(records, schema=view.output_schema)


def counter_rows(entities, event_timestamp: datetime, counter: int, label: str = "x") -> pl.DataFrame:
    return offline_frame(
        views.driver_counters,
        [{"driver_id": e, "event_timestamp": event_timestamp, "counter": counter, "label": label} for e in entities],
    )


def read_counters(store, entities) -> dict:
    rows = [{"driver_id": e} for e in entities]
    return store.get_online_features(["driver_counters:counter", "driver_counters:label"], rows).to_dict()


# --- reading back what was written ---------------------------------------------------------------------------


def test_written_features_read_back_in_request_order_with_status_and_event_time(store):
    event = now() - timedelta(minutes=5)
    store.write_batch(
        views.driver_stats,
        offline_frame(
            views.driver_stats,
            [
                {
                    "driver_id": 7,
                    "event_timestamp": event,
                    "trips_today": 3,
                    "rating": 4.5,
                    "active": True,
                    "city": "Lyon",
                    "acceptance_rate": 0.75,
                },
                {
                    "driver_id": 8,
                    "event_timestamp": event,
                    "trips_today": 9,
                    "rating": 3.0,
                    "active": False,
                    "city": "Oslo",
                    "acceptance_rate": 0.5,
                },
            ],
        ),
    )
    response = store.get_online_features(
        ["driver_stats:rating", "driver_stats:trips_today"],
        [{"driver_id": 8}, {"driver_id": 99}, {"driver_id": 7}],
        include_timestamps=True,
    )
    assert response.to_dict() == {
        "driver_id": [8, 99, 7],
        "rating": [3.0, None, 4.5],
        "trips_today": [9, None, 3],
        "driver_stats__event_timestamp": [event, None, event],
    }
    assert response.statuses == {
        "rating": [PRESENT, NOT_FOUND, PRESENT],
        "trips_today": [PRESENT, NOT_FOUND, PRESENT],
    }
    assert response.to_dict(include_statuses=True)["rating__status"] == [PRESENT, NOT_FOUND, PRESENT]
    assert response.to_polars().schema == pl.Schema(
        {
            "driver_id": pl.Int64,
            "rating": pl.Float64,
            "trips_today": pl.Int64,
            "driver_stats__event_timestamp": pl.Datetime("us", "UTC"),
        }
    )


def test_a_feature_service_reads_its_features_in_service_order(store):
    event = now()
    store.write_batch(
        views.driver_stats,
        offline_frame(
            views.driver_stats, [{"driver_id": 1, "event_timestamp": event, "rating": 4.0, "trips_today": 2}]
        ),
    )
    store.write_batch(
        views.driver_profile,
        offline_frame(views.driver_profile, [{"driver_id": 1, "event_timestamp": event, "vehicle_count": 3}]),
    )
    response = store.get_online_features(views.driver_ranking, [{"driver_id": 1}])
    assert response.to_dict() == {"driver_id": [1], "rating": [4.0], "vehicle_count": [3], "trips_today": [2]}


def test_entity_rows_may_be_a_dict_of_lists_or_a_polars_frame_and_keys_may_be_composite(store):
    store.write_batch(
        views.route_times,
        offline_frame(
            views.route_times,
            [
                {"origin": "a|b", "destination": "c", "event_timestamp": now(), "minutes_p50": 1.0},
                {"origin": "a", "destination": "b|c", "event_timestamp": now(), "minutes_p50": 2.0},
            ],
        ),
    )
    as_lists = {"origin": ["a", "a|b", "x"], "destination": ["b|c", "c", "y"]}
    expected = {**as_lists, "minutes_p50": [2.0, 1.0, None]}
    assert store.get_online_features(["route_times:minutes_p50"], as_lists).to_dict() == expected
    assert store.get_online_features(["route_times:minutes_p50"], pl.DataFrame(as_lists)).to_dict() == expected


def test_same_feature_name_in_two_views_needs_full_feature_names(store):
    event = now()
    store.write_batch(
        views.driver_stats,
        offline_frame(views.driver_stats, [{"driver_id": 1, "event_timestamp": event, "city": "Lyon"}]),
    )
    store.write_batch(
        views.driver_profile,
        offline_frame(views.driver_profile, [{"driver_id": 1, "event_timestamp": event, "city": "Nice"}]),
    )
    features = ["driver_stats:city", "driver_profile:city"]
    with pytest.raises(FeatureReferenceError, match=r"'city' of view 'driver_profile'.*full_feature_names=True"):
        store.get_online_features(features, [{"driver_id": 1}])
    response = store.get_online_features(features, [{"driver_id": 1}], full_feature_names=True)
    assert response.to_dict() == {"driver_id": [1], "driver_stats__city": ["Lyon"], "driver_profile__city": ["Nice"]}


def test_delete_entities_removes_their_values(store):
    store.write_batch(views.driver_counters, counter_rows(range(5), now(), 1))
    assert store.delete_entities("driver_counters", [{"driver_id": 1}, {"driver_id": 3}, {"driver_id": 42}]) == 2
    response = store.get_online_features(["driver_counters:counter"], [{"driver_id": e} for e in range(5)])
    assert response.statuses["counter"] == [PRESENT, NOT_FOUND, PRESENT, NOT_FOUND, PRESENT]


# --- dtypes and keys ------------------------------------------------------------------------------------------


ALL_TYPES_ROWS = [
    {
        "driver_id": 1,
        "i8": -128,
        "i16": 32767,
        "i32": -(2**31),
        "i64": 2**63 - 1,
        "u8": 255,
        "u16": 65535,
        "u32": 2**32 - 1,
        "u64": 2**64 - 1,
        "f32": 0.1,
        "f64": -1e-300,
        "flag": True,
        "text": "naïve %{x}|y\r\n",
        "day": date(1969, 7, 20),
        "moment": datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        "ints": [1, None, -3],
        "floats": [math.inf, -0.0, 2.5],
        "texts": ["", None, "\x00a", "é"],
        "flags": [False, None, True],
        "days": [date(2000, 1, 1), None],
        "moments": [datetime(1960, 1, 1, 0, 0, 0, 1, tzinfo=UTC)],
        "matrix": [[1, 2], None, [], [None]],
    },
    {
        "driver_id": 2,
        "i8": 0,
        "i16": 0,
        "i32": 0,
        "i64": 0,
        "u8": 0,
        "u16": 0,
        "u32": 0,
        "u64": 0,
        "f32": -3.5,
        "f64": 1.0000000000000002,
        "flag": False,
        "text": "",
        "day": date(1970, 1, 1),
        "moment": datetime(1970, 1, 1, tzinfo=UTC),
        "ints": [],
        "floats": [],
        "texts": [],
        "flags": [],
        "days": [],
        "moments": [],
        "matrix": [],
    },
    {"driver_id": 3},
]


def test_every_supported_dtype_round_trips_with_nulls(store):
    event = now()
    written = offline_frame(views.all_types, [{**row, "event_timestamp": event} for row in ALL_TYPES_ROWS])
    store.write_batch(views.all_types, written)
    features = [f"all_types:{name}" for name in views.all_types.feature_names]
    response = store.get_online_features(features, [{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 3}])
    assert_frame_equal(response.to_polars(), written.drop("event_timestamp", "created_timestamp"))
    assert set(response.statuses["text"]) == {PRESENT}


def test_the_embedded_server_keeps_an_entity_hash_compact(store, redis_client):
    label = "x" * 500
    store.write_batch(
        views.driver_counters,
        offline_frame(views.driver_counters, [{"driver_id": 1, "event_timestamp": now(), "label": label}]),
    )
    key = "fs:{i:1}:driver_counters:v1"
    assert redis_client.hstrlen(key, values_field(views.driver_counters)) > 500
    assert redis_client.object("encoding", key) in (b"listpack", b"ziplist")


def test_null_empty_string_and_missing_field_are_told_apart(store, redis_client):
    store.write_batch(
        views.driver_counters,
        offline_frame(
            views.driver_counters,
            [
                {"driver_id": 1, "event_timestamp": now(), "counter": 1, "label": ""},
                {"driver_id": 2, "event_timestamp": now(), "counter": 1, "label": None},
                {"driver_id": 3, "event_timestamp": now(), "counter": 1, "label": "kept"},
                {"driver_id": 4, "event_timestamp": now(), "counter": 1, "label": "\x00a\x1fb\x1e1\x1e0\x1e\x1f"},
            ],
        ),
    )
    redis_client.hdel("fs:{i:3}:driver_counters:v1", values_field(views.driver_counters))
    response = store.get_online_features(["driver_counters:label"], [{"driver_id": e} for e in (1, 2, 3, 4)])
    assert response.to_dict()["label"] == ["", None, None, "\x00a\x1fb\x1e1\x1e0\x1e\x1f"]
    assert response.statuses["label"] == [PRESENT, PRESENT, NOT_FOUND, PRESENT]


def test_integer_key_1_and_string_key_1_are_different_entities(store, redis_client):
    store.write_batch(
        views.account_number_balance,
        offline_frame(views.account_number_balance, [{"account_no": 1, "event_timestamp": now(), "balance": 10.0}]),
    )
    store.write_batch(
        views.account_balance,
        offline_frame(views.account_balance, [{"account_id": "1", "event_timestamp": now(), "balance": 20.0}]),
    )
    assert entity_key((1,)) != entity_key(("1",))
    assert redis_client.exists("fs:{i:1}:account_number_balance:v1", "fs:{s:1}:account_balance:v1") == 2
    by_number = store.get_online_features(["account_number_balance:balance"], [{"account_no": 1}])
    by_code = store.get_online_features(["account_balance:balance"], [{"account_id": "1"}])
    assert by_number.to_dict()["balance"] == [10.0]
    assert by_code.to_dict()["balance"] == [20.0]
    with pytest.raises(EntityFrameError, match=r"join key 'account_no' of view 'account_number_balance' must be Int64"):
        store.get_online_features(["account_number_balance:balance"], [{"account_no": "1"}])
    with pytest.raises(EntityFrameError, match=r"join key 'account_id' of view 'account_balance' must be String"):
        store.get_online_features(["account_balance:balance"], [{"account_id": 1}])


key_values = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.tuples(key_values, key_values), st.tuples(key_values, key_values))
def test_entity_key_encoding_is_injective_and_typed(first, second):
    same = all(type(a) is type(b) and a == b for a, b in zip(first, second, strict=True))
    assert (entity_key(first) == entity_key(second)) == same
    assert "{" not in entity_key(first) and "}" not in entity_key(first)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), min_size=1, max_size=20))
def test_vectorized_key_encoding_equals_the_per_row_encoding(pairs):
    frame = pl.DataFrame(pairs, schema={"origin": pl.String, "destination": pl.String}, orient="row")
    vectorized = frame.select(entity_key_expr(views.route_times)).to_series().to_list()
    assert vectorized == [entity_key(pair) for pair in pairs]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), max_size=5),
    st.lists(st.one_of(st.none(), st.text()), max_size=5),
    st.lists(st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text()), max_size=3)), max_size=5),
)
def test_value_encoding_round_trips_floats_texts_and_lists(floats, texts, lists):
    for values, dtype in ((floats, pl.Float64()), (texts, pl.String()), (lists, pl.List(pl.String()))):
        encoded = pl.DataFrame({"v": pl.Series(values, dtype=dtype)}).select(value_expr("v", dtype)).to_series()
        decode = decoder(dtype)
        decoded = [decode(raw.encode()) if raw else None for raw in encoded.to_list()]
        assert decoded == values


# --- newer event time wins ------------------------------------------------------------------------------------


def test_late_backfill_does_not_overwrite_fresher_push(store):
    fresh = now()
    assert store.write_batch(views.driver_counters, counter_rows([1, 2], fresh, 2, "pushed")) == 2
    backfill = counter_rows([1, 2, 3], fresh - timedelta(hours=1), 1, "backfill")
    assert store.write_batch(views.driver_counters, backfill) == 1
    assert read_counters(store, [1, 2, 3]) == {
        "driver_id": [1, 2, 3],
        "counter": [2, 2, 1],
        "label": ["pushed", "pushed", "backfill"],
    }


def test_equal_event_times_are_decided_by_created_time_and_an_identical_rerun_changes_nothing(store):
    event = now()
    first = offline_frame(
        views.driver_counters,
        [{"driver_id": 1, "event_timestamp": event, "created_timestamp": event + timedelta(seconds=5), "counter": 5}],
    )
    second = offline_frame(
        views.driver_counters,
        [{"driver_id": 1, "event_timestamp": event, "created_timestamp": event + timedelta(seconds=1), "counter": 1}],
    )
    assert store.write_batch(views.driver_counters, first) == 1
    assert store.write_batch(views.driver_counters, second) == 0
    assert store.write_batch(views.driver_counters, first) == 0
    assert read_counters(store, [1])["counter"] == [5]


def test_only_the_newest_row_of_an_entity_within_one_frame_is_written(store, redis_client):
    base = now() - timedelta(minutes=10)
    frame = offline_frame(
        views.driver_counters,
        [{"driver_id": 1, "event_timestamp": base + timedelta(minutes=m), "counter": m} for m in (3, 9, 1, 7)]
        + [{"driver_id": 2, "event_timestamp": base, "counter": 0}],
    )
    redis_client.config_resetstat()
    assert store.write_batch(views.driver_counters, frame) == 2
    assert read_counters(store, [1, 2])["counter"] == [9, 0]
    assert redis_client.info("commandstats")["cmdstat_hset"]["calls"] == 2


def random_counter_batches(seed: int, entities: int = 30, rows: int = 150) -> tuple[list[pl.DataFrame], dict]:
    """Return write batches in a random order and, by brute force, the newest (counter, label) per entity."""
    rng = random.Random(seed)
    base = now() - timedelta(hours=1)
    moments = rng.sample([(e, c) for e in range(15) for c in range(15)], rows)
    records = [
        {
            "driver_id": rng.randrange(entities),
            "event_timestamp": base + timedelta(seconds=e),
            "created_timestamp": base + timedelta(seconds=c),
            "counter": index,
            "label": f"row-{index}",
        }
        for index, (e, c) in enumerate(moments)
    ]
    newest: dict[int, dict] = {}
    for record in records:
        known = newest.get(record["driver_id"])
        order = (record["event_timestamp"], record["created_timestamp"])
        if known is None or order > (known["event_timestamp"], known["created_timestamp"]):
            newest[record["driver_id"]] = record
    rng.shuffle(records)
    cuts = sorted(rng.sample(range(1, rows), 9))
    batches = [records[a:b] for a, b in zip([0, *cuts], [*cuts, rows], strict=True)]
    expected = {e: (newest[e]["counter"], newest[e]["label"]) if e in newest else (None, None) for e in range(entities)}
    return [offline_frame(views.driver_counters, batch) for batch in batches], expected


@pytest.mark.parametrize("seed", [11, 22, 33])
def test_out_of_order_writes_leave_exactly_the_newest_row_per_entity(store, seed):
    batches, expected = random_counter_batches(seed)
    for batch in batches:
        store.write_batch(views.driver_counters, batch)
    read = read_counters(store, list(expected))
    assert dict(zip(read["driver_id"], zip(read["counter"], read["label"], strict=True), strict=True)) == expected


@pytest.mark.parametrize("seed", [44, 55])
def test_concurrent_out_of_order_writers_leave_exactly_the_newest_row_per_entity(store, seed):
    batches, expected = random_counter_batches(seed)
    writers = [
        threading.Thread(target=lambda part=batches[i::3]: [store.write_batch(views.driver_counters, b) for b in part])
        for i in range(3)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    read = read_counters(store, list(expected))
    assert dict(zip(read["driver_id"], zip(read["counter"], read["label"], strict=True), strict=True)) == expected


# --- TTL ------------------------------------------------------------------------------------------------------


def test_keys_expire_at_event_time_plus_ttl(store, redis_client):
    event = now() - timedelta(hours=3)
    store.write_batch(
        views.driver_stats,
        offline_frame(views.driver_stats, [{"driver_id": 1, "event_timestamp": event, "rating": 1.0}]),
    )
    expected_ms = (event + timedelta(days=1) - now()) / timedelta(milliseconds=1)
    assert abs(redis_client.pttl("fs:{i:1}:driver_stats:v1") - expected_ms) < 2000


def test_an_older_write_neither_overwrites_nor_extends_a_key_life(store, redis_client):
    key = "fs:{i:1}:driver_stats:v1"
    fresh = now() - timedelta(hours=2)
    store.write_batch(
        views.driver_stats,
        offline_frame(views.driver_stats, [{"driver_id": 1, "event_timestamp": fresh, "rating": 5.0}]),
    )
    redis_client.pexpire(key, 60_000)
    assert (
        store.write_batch(
            views.driver_stats,
            offline_frame(
                views.driver_stats, [{"driver_id": 1, "event_timestamp": fresh - timedelta(hours=1), "rating": 1.0}]
            ),
        )
        == 0
    )
    assert 55_000 < redis_client.pttl(key) <= 60_000
    assert store.get_online_features(["driver_stats:rating"], [{"driver_id": 1}]).to_dict()["rating"] == [5.0]
    store.write_batch(
        views.driver_stats,
        offline_frame(
            views.driver_stats, [{"driver_id": 1, "event_timestamp": fresh + timedelta(hours=1), "rating": 2.0}]
        ),
    )
    assert redis_client.pttl(key) > 20 * 3600 * 1000


def test_rows_already_expired_at_write_time_are_skipped(store, redis_client):
    stale = now() - timedelta(days=1, minutes=1)
    written = store.write_batch(
        views.driver_stats,
        offline_frame(
            views.driver_stats,
            [
                {"driver_id": 1, "event_timestamp": stale, "rating": 1.0},
                {"driver_id": 2, "event_timestamp": now(), "rating": 2.0},
            ],
        ),
    )
    assert written == 1
    assert redis_client.exists("fs:{i:1}:driver_stats:v1") == 0


def test_expired_values_read_as_expired_even_before_redis_evicts_them(store, redis_client):
    event = now() - timedelta(milliseconds=1700)
    store.write_batch(
        views.short_lived,
        offline_frame(
            views.short_lived,
            [
                {"driver_id": 1, "event_timestamp": event, "score": 1.0},
                {"driver_id": 2, "event_timestamp": event, "score": 2.0},
            ],
        ),
    )
    redis_client.persist("fs:{i:1}:short_lived:v1")
    time.sleep(max(0.0, (event + timedelta(milliseconds=2100) - now()).total_seconds()))
    response = store.get_online_features(
        ["short_lived:score"], [{"driver_id": 1}, {"driver_id": 2}], include_timestamps=True
    )
    assert response.to_dict()["score"] == [None, None]
    assert response.statuses["score"] == [EXPIRED, NOT_FOUND]
    assert response.to_dict()["short_lived__event_timestamp"] == [event, None]


# --- one round trip -------------------------------------------------------------------------------------------


def test_a_multi_view_multi_entity_read_is_one_pipeline_of_hgets(store, redis_client):
    event = now()
    for view in (views.driver_stats, views.driver_profile, views.driver_counters):
        store.write_batch(view, offline_frame(view, [{"driver_id": e, "event_timestamp": event} for e in range(4)]))
    features = ["driver_stats:rating", "driver_profile:city", "driver_counters:counter", "driver_stats:active"]
    entity_rows = [{"driver_id": e} for e in (3, 1, 2, 9)]
    store.get_online_features(features, entity_rows)
    redis_client.config_resetstat()
    reads_before = redis_client.info("stats")["total_reads_processed"]
    response = store.get_online_features(features, entity_rows)
    reads_after = redis_client.info("stats")["total_reads_processed"]
    commands = {name: stats["calls"] for name, stats in redis_client.info("commandstats").items()}
    assert commands.pop("cmdstat_hget") == len(entity_rows) * 3
    observers = {name.split("|")[0] for name in commands}
    assert observers <= {"cmdstat_config", "cmdstat_info"}, "only the test's own CONFIG RESETSTAT and INFO besides"
    assert reads_after - reads_before == 2, "one socket read for the whole pipeline, one for the second INFO"
    assert response.statuses["rating"] == [PRESENT, PRESENT, PRESENT, NOT_FOUND]


# --- errors ---------------------------------------------------------------------------------------------------


def test_unknown_view_and_feature_errors_name_them(store):
    with pytest.raises(FeatureReferenceError, match=r"unknown feature view 'driver_stat'.*known views"):
        store.get_online_features(["driver_stat:rating"], [{"driver_id": 1}])
    with pytest.raises(FeatureReferenceError, match=r"unknown feature 'ratings' in view 'driver_stats'"):
        store.get_online_features(["driver_stats:ratings"], [{"driver_id": 1}])
    with pytest.raises(FeatureReferenceError, match=r"'offline_only' is offline only"):
        store.get_online_features(["offline_only:secret"], [{"driver_id": 1}])


def test_a_missing_join_key_error_names_the_key_and_the_view(store):
    with pytest.raises(EntityFrameError, match=r"row 1 lacks join key 'destination' needed by view 'route_times'"):
        store.get_online_features(["route_times:minutes_p50"], [{"origin": "a", "destination": "b"}, {"origin": "a"}])
    with pytest.raises(EntityFrameError, match=r"lacks join key column 'driver_id'"):
        store.write_batch(views.driver_counters, pl.DataFrame({"event_timestamp": [now()], "counter": [1]}))


def test_unreachable_redis_raises_a_clear_online_store_error():
    unreachable = RedisOnlineStore(url=f"redis://127.0.0.1:{free_port()}/0", repository=REPOSITORY, socket_timeout=1)
    with pytest.raises(OnlineStoreError, match=r"writing FeatureView 'driver_counters' .* after 0 of 2 entity rows"):
        unreachable.write_batch(views.driver_counters, counter_rows([1, 2], now(), 1))
    with pytest.raises(OnlineStoreError, match=r"reading views \['driver_counters'\] from Redis failed"):
        read_counters(unreachable, [1])


def write_while(store, frame, interrupt, keys_before: int = 0) -> OnlineStoreError | None:
    """Write `frame`, calling `interrupt()` from another thread once its first rows have landed."""
    probe = redis.Redis.from_url(store.url)
    landed = threading.Event()

    def watch():
        while not landed.is_set():
            if probe.dbsize() > keys_before:
                interrupt()
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        store.write_batch(views.driver_counters, frame)
    except OnlineStoreError as error:
        return error
    finally:
        landed.set()
        watcher.join()
        probe.close()
    return None


def test_redis_killed_mid_write_fails_clearly_and_a_rerun_after_restart_completes():
    server = RedisServer().start()
    try:
        store = RedisOnlineStore(url=server.url, repository=REPOSITORY)
        frame = counter_rows(range(200_000), now(), 7, "full")
        error = write_while(store, frame, server.kill)
        assert error is not None, "the write finished before the server was killed"
        assert "writing FeatureView 'driver_counters' to Redis failed after" in str(error)
        assert "of 200000 entity rows were written" in str(error) and "re-run" in str(error)
        server.start()
        assert store.write_batch(views.driver_counters, frame) == 200_000
        assert read_counters(store, [0, 123_456, 199_999])["counter"] == [7, 7, 7]
    finally:
        server.stop()


def test_a_dropped_connection_mid_write_fails_clearly_and_a_rerun_keeps_fresher_values(store, redis_client):
    fresh = now()
    store.write_batch(views.driver_counters, counter_rows([5, 150_000], fresh, 99, "pushed"))
    frame = counter_rows(range(200_000), fresh - timedelta(hours=1), 1, "backfill")
    drop_connections = lambda: redis_client.client_kill_filter(_type="normal", skipme=True)  # noqa: E731
    error = write_while(store, frame, drop_connections, keys_before=2)
    assert error is not None and "rows were written" in str(error)
    store.write_batch(views.driver_counters, frame)
    assert read_counters(store, [4, 5, 150_000, 199_999])["label"] == ["backfill", "pushed", "pushed", "backfill"]


# --- Redis Cluster, Dagster, embedded default -----------------------------------------------------------------


def test_cluster_writes_and_reads_across_slots(redis_cluster_urls):
    masters = [redis.Redis.from_url(url) for url in redis_cluster_urls]
    for master in masters:
        master.flushall()
    store = RedisOnlineStore(url="redis+cluster://" + redis_cluster_urls[0].split("://")[1], repository=REPOSITORY)
    event = now()
    entities = list(range(300))
    store.write_batch(views.driver_counters, counter_rows(entities, event, 3, "clustered"))
    store.write_batch(
        views.driver_stats,
        offline_frame(
            views.driver_stats, [{"driver_id": e, "event_timestamp": event, "rating": e / 10} for e in entities]
        ),
    )
    assert all(master.dbsize() > 0 for master in masters)
    assert masters[0].cluster("KEYSLOT", "fs:{i:7}:driver_stats:v1") == masters[0].cluster(
        "KEYSLOT", "fs:{i:7}:driver_counters:v1"
    )
    response = store.get_online_features(
        ["driver_counters:label", "driver_stats:rating"], [{"driver_id": e} for e in [*entities, 1000]]
    )
    assert response.to_dict()["rating"] == [e / 10 for e in entities] + [None]
    assert set(response.statuses["label"][:-1]) == {PRESENT}
    assert store.write_batch(views.driver_counters, counter_rows([1], event - timedelta(hours=1), 0)) == 0
    assert store.delete_entities(views.driver_counters, {"driver_id": entities}) == len(entities)
    store.close()


def test_the_store_works_as_a_dagster_resource_configured_from_the_environment(redis_url, redis_client, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)

    @dg.asset
    def published(online_store: RedisOnlineStore) -> int:
        return online_store.write_batch(views.driver_counters, counter_rows([1, 2, 3], now(), 4))

    store = RedisOnlineStore.from_env(repository=REPOSITORY)
    result = dg.materialize([published], resources={"online_store": store})
    assert result.output_for_node("published") == 3
    assert read_counters(store, [2])["counter"] == [4]


def test_without_a_url_the_store_starts_an_embedded_redis_server(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    store = RedisOnlineStore.from_env(repository=REPOSITORY)
    assert store.url is None
    store.write_batch(views.driver_counters, counter_rows([1], now(), 5))
    assert read_counters(store, [1])["counter"] == [5]


def test_reads_awaited_on_an_event_loop_equal_the_blocking_reads(online_store, redis_url):
    import asyncio

    from tests import online_views

    rows = [{"driver_id": i} for i in range(5)]
    features = ["driver_stats:trips_today", "driver_stats:rating", "driver_profile:vehicle_count"]
    frame = pl.DataFrame(
        {
            "driver_id": [1, 2, 3],
            "event_timestamp": [datetime(2025, 1, 7, tzinfo=UTC)] * 3,
            "trips_today": [4, None, 6],
            "rating": [4.5, 3.0, None],
            "active": [True, False, None],
            "city": ["a", None, "c"],
            "acceptance_rate": [0.5, 0.25, None],
        }
    ).with_columns(pl.col("acceptance_rate").cast(pl.Float32))
    store = RedisOnlineStore(url=redis_url, repository="tests.online_views:repository", count_usage=False)
    store.write_batch(online_views.driver_stats, frame)
    now = datetime(2025, 1, 8, tzinfo=UTC)
    expected = store.get_online_features(features, rows, include_timestamps=True, now=now)

    async def concurrently():
        reads = [store.get_online_features_async(features, rows, include_timestamps=True, now=now) for _ in range(50)]
        return await asyncio.gather(*reads)

    for _ in range(2):  # a second loop gets its own connection
        for response in asyncio.run(concurrently()):
            assert (response.columns, response.statuses) == (expected.columns, expected.statuses)
    store.close()


def test_an_awaited_read_of_an_unreachable_redis_says_to_check_it():
    import asyncio

    store = RedisOnlineStore(url=f"redis://127.0.0.1:{free_port()}/0", repository=REPOSITORY, socket_timeout=1)
    with pytest.raises(OnlineStoreError, match="from Redis failed: .*check that Redis is up"):
        asyncio.run(store.get_online_features_async(["driver_stats:rating"], [{"driver_id": 1}]))
