"""The plain-Python path of small online pushes to a streaming view: the same stream entries as the frame path on
randomized rows, the frame path for anything it does not take, and the pushed values served by a worker."""

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from feature_assets.streaming.event_entries import SMALL_PUSH, simple_event_entries
from feature_assets.streaming.push import push, pushed_events
from feature_assets.streaming.worker import StreamWorker
from resources.online_store import RedisOnlineStore
from resources.stream_keys import stream_entries
from tests.streaming_views import driver_trips_live as VIEW
from tests.test_stream_worker import FEATURES, NAMES, REPOSITORY

ARRIVAL = datetime(2026, 3, 7, 12, 0, 0, 123456, tzinfo=UTC)
VALID = {"driver_id": 1, "event_timestamp": ARRIVAL, "fare": 1.0, "trip": "t"}


def random_rows(seed: int) -> object:
    rng = random.Random(seed)
    count = rng.randint(1, SMALL_PUSH)
    zone = rng.choice([UTC, timezone(timedelta(hours=-5)), None])
    integers = rng.random() < 0.3
    rows = [
        {
            "driver_id": rng.choice([0, 1, -7, 2**40, rng.randrange(10**6)]),
            "event_timestamp": datetime(
                2026, 3, 7, 11, rng.randrange(60), rng.randrange(60), rng.randrange(10**6)
            ).replace(tzinfo=zone),
            "fare": rng.choice([None, *([0, 7, -3] if integers else [2.5, rng.randrange(400) / 4, 1e-7, 1.5e12])]),
            "trip": rng.choice([None, "t", "", "a|b"]),
        }
        for _ in range(count)
    ]
    if rng.random() < 0.5:
        return {name: [row[name] for row in rows] for name in rows[0]}
    return rows


def parsed(entries: list[tuple[int, dict[str, str]]]) -> list[tuple[int, dict[str, object]]]:
    """Return entries with the numeric field as a number (the two paths format floats differently)."""
    return [(p, {k: float(v) if k == "fare" else v for k, v in fields.items()}) for p, fields in entries]


@pytest.mark.parametrize("seed", range(40))
def test_small_pushes_encode_the_same_entries_as_the_frame_path(seed):
    rows = random_rows(seed)
    quick = simple_event_entries(VIEW, rows, ARRIVAL)
    assert quick is not None
    assert parsed(quick) == parsed(stream_entries(VIEW, pushed_events(VIEW, rows, ARRIVAL), pushed=True))


@pytest.mark.parametrize(
    "change",
    [
        {"fare": float("nan")},
        {"fare": True},
        {"fare": "2.5"},
        {"driver_id": True},
        {"driver_id": "7"},
        {"driver_id": None},
        {"driver_id": 2**63},
        {"event_timestamp": "2026-03-07T11:00:00Z"},
        {"event_timestamp": None},
        {"trip": 5},
        {"created_timestamp": ARRIVAL},
        {"surge": 1.5},
    ],
    ids=repr,
)
def test_anything_else_is_left_to_the_frame_path(change):
    assert simple_event_entries(VIEW, [{**VALID, **change}], ARRIVAL) is None


def test_mixed_types_zones_and_large_batches_are_left_to_the_frame_path():
    assert simple_event_entries(VIEW, [VALID] * SMALL_PUSH, ARRIVAL) is not None
    assert simple_event_entries(VIEW, [VALID] * (SMALL_PUSH + 1), ARRIVAL) is None
    assert simple_event_entries(VIEW, [VALID, {**VALID, "fare": 2}], ARRIVAL) is None
    assert (
        simple_event_entries(VIEW, [VALID, {**VALID, "event_timestamp": ARRIVAL.replace(tzinfo=None)}], ARRIVAL) is None
    )
    assert simple_event_entries(VIEW, [VALID, {"driver_id": 1, "event_timestamp": ARRIVAL}], ARRIVAL) is None
    assert (
        simple_event_entries(
            VIEW, {"driver_id": [1, 2], "event_timestamp": [ARRIVAL], "fare": [1.0], "trip": ["t"]}, ARRIVAL
        )
        is None
    )


def test_a_small_online_push_is_served_by_the_worker(redis_url, redis_client):
    store = RedisOnlineStore(url=redis_url, repository=REPOSITORY)
    worker = StreamWorker([VIEW], store.client)
    worker.create_groups()
    now = datetime.now(UTC)
    result = push(
        VIEW,
        {
            "driver_id": [4, 4],
            "event_timestamp": [now - timedelta(seconds=5), now],
            "fare": [2.5, None],
            "trip": ["a", "b"],
        },
        to="online",
        online_store=store,
    )
    assert result.rows == 2 and result.offline_files == ()
    while worker.poll():
        pass
    served = store.get_online_features(FEATURES, [{"driver_id": 4}], now=now + timedelta(seconds=1)).to_dict()
    assert dict(zip(NAMES, (served[name][0] for name in NAMES), strict=True)) == {
        "fare_sum_10m": 2.5,
        "fare_count_10m": 1,
        "fare_mean_30m": 2.5,
        "fare_min_30m": 2.5,
        "fare_max_10m": 2.5,
        "fare_last_30m": 2.5,
        "trips_30m": 2,
    }
    store.close()
