"""Streaming views: stream workers on real Redis (standalone and Cluster), in process and as killed processes.

Every value is checked against `served`, a brute-force oracle written from the documented window rule: at instant T,
with F = floor(T / step) and B = ceil(T / step), an aggregation of window W covers the events that arrived by T, were
not late (arrival - event <= allowed lateness) and whose bucket ceil(event / step) lies in (F - W / step, B].
"""

import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import redis

from feature_assets.language.errors import DefinitionError, PushError
from feature_assets.orchestration.view_assets import build_view_asset
from feature_assets.retrieval.point_in_time import get_historical_features
from feature_assets.streaming.push import push
from feature_assets.streaming.worker import StreamWorker
from resources.online_store import RedisOnlineStore
from resources.stream_keys import GROUP, partition_of, stream_keys
from resources.stream_progress import partition_state
from tests.streaming_views import driver_trips_live as VIEW
from tests.streaming_views import repository

REPOSITORY = "tests.streaming_views:repository"
FEATURES = [f"driver_trips_live:{a.name}" for a in VIEW.aggregations]
NAMES = [a.name for a in VIEW.aggregations]
STEP_US = VIEW.step // timedelta(microseconds=1)
MINUTE_US = 60_000_000
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Event:
    driver_id: int
    event_us: int
    arrival_us: int
    fare: float | None
    trip: str | None


def live_events(events: list[Event], driver_id: int, at_us: int, arrived: bool = True) -> list[Event]:
    """Return one driver's events a read at `at_us` covers: in the longest window, arrived in time by then."""
    lateness = VIEW.allowed_lateness // timedelta(microseconds=1)
    floor, ceil = at_us // STEP_US, -(-at_us // STEP_US)
    longest = VIEW.lookback // VIEW.step
    return [
        e
        for e in events
        if e.driver_id == driver_id
        and (not arrived or (e.arrival_us <= at_us and e.arrival_us - e.event_us <= lateness))
        and (arrived or e.event_us <= at_us)
        and floor - longest < -(-e.event_us // STEP_US) <= ceil
    ]


def served(events: list[Event], driver_id: int, at_us: int, *, arrived: bool = True) -> tuple[object, ...]:
    """Return each aggregation's value for one driver at `at_us`, by brute force over every event.

    `arrived=False` gives the corrected value instead: every event by event time, late ones included.
    """
    floor = at_us // STEP_US
    live = live_events(events, driver_id, at_us, arrived)
    if not live:
        return (None,) * len(VIEW.aggregations)
    values = []
    for aggregation in VIEW.aggregations:
        start = floor - aggregation.window // VIEW.step
        window = [e for e in live if -(-e.event_us // STEP_US) > start]
        present = [e for e in window if getattr(e, aggregation.column) is not None]
        column = [getattr(e, aggregation.column) for e in present]
        if aggregation.function == "count":
            values.append(len(column))
        elif not column:
            values.append(None)
        elif aggregation.function == "sum":
            values.append(math.fsum(column))
        elif aggregation.function == "mean":
            values.append(math.fsum(column) / len(column))
        elif aggregation.function == "min":
            values.append(min(column))
        elif aggregation.function == "max":
            values.append(max(column))
        else:
            values.append(max((e.event_us, e.arrival_us, e.fare) for e in present)[2])
    return tuple(values)


def corrected(events: list[Event], driver_id: int, step_us: int) -> tuple[object, ...]:
    """Return the batch view's value at a step boundary: every event (late ones too) by event time."""
    return served(events, driver_id, step_us, arrived=False)


def random_events(seed: int, start: datetime, count: int, drivers: int) -> list[Event]:
    """Events over two hours: on and off step edges, late and too late, early arrivals, duplicates, nulls."""
    rng = random.Random(seed)
    base = int(start.timestamp()) * 1_000_000
    events = []
    for _ in range(count):
        if rng.random() < 0.25:
            event = base + rng.randrange(0, 24) * STEP_US
        else:
            event = base + rng.randrange(0, 120 * MINUTE_US)
        delay = rng.choice([0, 0, rng.randrange(0, MINUTE_US), rng.randrange(0, 20 * MINUTE_US), -rng.randrange(1, 90)])
        fare = None if rng.random() < 0.1 else rng.randrange(0, 400) / 4
        trip = None if rng.random() < 0.1 else f"t{rng.randrange(10**6)}"
        events.append(Event(rng.randrange(1, drivers + 1), event, event + delay, fare, trip))
        if rng.random() < 0.05:
            events.append(events[-1])
    return events


def as_rows(events: list[Event]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "driver_id": [e.driver_id for e in events],
            "event_timestamp": [datetime.fromtimestamp(e.event_us / 1e6, UTC) for e in events],
            "fare": [e.fare for e in events],
            "trip": [e.trip for e in events],
        },
        schema={
            "driver_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", "UTC"),
            "fare": pl.Float64,
            "trip": pl.String,
        },
    )


def moment(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def drain(worker: StreamWorker) -> None:
    while worker.poll():
        pass


def online_values(store: RedisOnlineStore, drivers: list[int], at_us: int) -> dict[int, tuple[object, ...]]:
    response = store.get_online_features(FEATURES, [{"driver_id": d} for d in drivers], now=moment(at_us)).to_dict()
    return {d: tuple(response[name][i] for name in NAMES) for i, d in enumerate(drivers)}


@pytest.fixture
def store(redis_url, redis_client):
    online = RedisOnlineStore(url=redis_url, repository=REPOSITORY)
    yield online
    online.close()


def write_history(offline_store, events: list[Event]) -> None:
    """Write events as the stream source's batch history (arrival = event time)."""
    path = Path(offline_store.root) / "stream_test" / "trips"
    path.mkdir(parents=True, exist_ok=True)
    as_rows(events).write_parquet(path / "history.parquet")


@pytest.mark.parametrize("seed", [1, 2])
def test_online_values_and_available_training_rows_equal_the_oracle_at_arbitrary_instants(
    seed, store, offline_store, instance
):
    start = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    history = [Event(1, int((start - timedelta(days=1)).timestamp() * 1e6), 0, 1.0, "old")]
    write_history(offline_store, history)
    events = random_events(seed, start, 400, 5)
    rng = random.Random(seed + 100)
    first, last = min(e.arrival_us for e in events), max(e.arrival_us for e in events)
    instants = sorted(
        {rng.randrange(first, last + 20 * MINUTE_US) for _ in range(40)}
        | {e.arrival_us for e in rng.sample(events, 10)}
        | {first + k * STEP_US - first % STEP_US for k in range(1, 30, 3)}
    )
    worker = StreamWorker([VIEW], store.client)
    worker.create_groups()
    by_arrival: dict[int, list[Event]] = {}
    for event in sorted(events, key=lambda e: e.arrival_us):
        by_arrival.setdefault(event.arrival_us, []).append(event)
    pending = sorted(by_arrival)
    drivers = [1, 2, 3, 4, 5, 6]
    seen: dict[tuple[int, int], tuple[object, ...]] = {}
    for at_us in instants:
        while pending and pending[0] <= at_us:
            arrival = pending.pop(0)
            batch = as_rows(by_arrival[arrival])
            push(
                VIEW,
                batch,
                to="online_and_offline",
                online_store=store,
                offline_store=offline_store,
                arrival=moment(arrival),
            )
        drain(worker)
        for driver, values in online_values(store, drivers, at_us).items():
            assert values == served(events, driver, at_us), (driver, moment(at_us))
            seen[driver, at_us] = values
        read = store.get_online_features(
            FEATURES, [{"driver_id": d} for d in drivers], now=moment(at_us), include_timestamps=True
        )
        newest = [max((e.event_us for e in live_events(events, d, at_us)), default=None) for d in drivers]
        assert read.to_dict(include_ages=True)["driver_trips_live__event_timestamp"] == [
            None if us is None else moment(us) for us in newest
        ]
        assert read.ages()["driver_trips_live__age_seconds"] == [
            None if us is None else (moment(at_us) - moment(us)).total_seconds() for us in newest
        ]
    with pytest.raises(ValueError, match="read with include_timestamps=True"):
        store.get_online_features(FEATURES, [{"driver_id": 1}]).ages()
    lateness = VIEW.allowed_lateness // timedelta(microseconds=1)
    pushed_before_last = [e for e in events if e.arrival_us <= instants[-1]]
    assert worker.totals.late == sum(1 for e in pushed_before_last if e.arrival_us - e.event_us > lateness)
    assert worker.totals.applied + worker.totals.late + worker.totals.expired == len(pushed_before_last)

    entity_rows = pl.DataFrame(
        {
            "driver_id": [d for d, _ in seen],
            "event_timestamp": [moment(t) for _, t in seen],
        }
    ).sample(fraction=1.0, shuffle=True, seed=seed)
    training = get_historical_features(
        entity_rows, FEATURES, repository=repository, offline_store=offline_store, as_of="available"
    )
    for row in training.iter_rows(named=True):
        at_us = (row["event_timestamp"] - moment(0)) // timedelta(microseconds=1)
        assert tuple(row[name] for name in NAMES) == seen[row["driver_id"], at_us]

    days = sorted({moment(e.event_us).date() for e in events})
    for day in days:
        dg.materialize(
            [build_view_asset(VIEW)],
            instance=instance,
            resources={"offline_store": offline_store},
            partition_key=day.isoformat(),
        )
    boundaries = [t - t % STEP_US for t in instants]
    corrected_rows = get_historical_features(
        pl.DataFrame(
            {
                "driver_id": [d for d in drivers for _ in boundaries],
                "event_timestamp": [moment(t) for _ in drivers for t in boundaries],
            }
        ),
        FEATURES,
        repository=repository,
        offline_store=offline_store,
        as_of="event",
    )
    everything = [e for e in events if e.arrival_us <= instants[-1]] + history
    for row in corrected_rows.iter_rows(named=True):
        at_us = (row["event_timestamp"] - moment(0)) // timedelta(microseconds=1)
        assert tuple(row[name] for name in NAMES) == corrected(everything, row["driver_id"], at_us)


def test_at_every_step_boundary_the_batch_row_equals_what_the_worker_serves(store, offline_store, instance):
    start = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
    write_history(offline_store, [])
    events = [Event(e.driver_id, e.event_us, e.event_us, e.fare, e.trip) for e in random_events(7, start, 300, 4)]
    worker = StreamWorker([VIEW], store.client)
    worker.create_groups()
    boundaries = [int(start.timestamp() * 1e6) + k * STEP_US for k in range(0, 30)]
    online: dict[tuple[int, int], tuple[object, ...]] = {}
    for boundary in boundaries:
        arrived = [e for e in events if boundary - STEP_US < e.arrival_us <= boundary]
        for arrival in sorted({e.arrival_us for e in arrived}):
            rows = as_rows([e for e in arrived if e.arrival_us == arrival])
            push(
                VIEW,
                rows,
                to="online_and_offline",
                online_store=store,
                offline_store=offline_store,
                arrival=moment(arrival),
            )
        drain(worker)
        for driver, values in online_values(store, [1, 2, 3, 4], boundary).items():
            online[driver, boundary] = values
    dg.materialize(
        [build_view_asset(VIEW)],
        instance=instance,
        resources={"offline_store": offline_store},
        partition_key=start.date().isoformat(),
    )
    batch = {
        (row["driver_id"], (row["event_timestamp"] - moment(0)) // timedelta(microseconds=1)): tuple(
            row[name] for name in NAMES
        )
        for row in offline_store.read_partition(VIEW, start.date()).iter_rows(named=True)
    }
    for (driver, boundary), values in online.items():
        assert batch.get((driver, boundary), (None,) * len(NAMES)) == values, (driver, moment(boundary))
    assert any(any(v is not None for v in values) for values in online.values())


def push_now(store: RedisOnlineStore, events: list[Event]) -> None:
    for start in range(0, len(events), 2000):
        push(
            VIEW,
            as_rows(events[start : start + 2000]),
            to="online",
            online_store=store,
            arrival=moment(events[start].arrival_us),
        )


def fresh_events(seed: int, count: int, arrival_us: int) -> list[Event]:
    rng = random.Random(seed)
    return [
        Event(
            rng.randrange(1, 51),
            arrival_us - rng.randrange(0, 25 * MINUTE_US),
            arrival_us,
            rng.randrange(0, 80) / 4,
            "t",
        )
        for _ in range(count)
    ]


def start_worker(redis_url: str, consumer: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": redis_url}
    command = [
        sys.executable,
        "-m",
        "feature_assets.streaming.worker",
        "--repository",
        REPOSITORY,
        "--consumer",
        consumer,
    ]
    return subprocess.Popen([*command, *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def settled(client: redis.Redis, total: int) -> bool:
    states = partition_state(client, "fs", VIEW)
    return sum(s["applied"] + s["late"] + s["expired"] for s in states) >= total and not any(
        s["pending"] for s in states
    )


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_worker_killed_mid_batch_and_restarted_counts_every_event_once(redis_url, store):
    now_us = int(time.time() * 1e6)
    events = fresh_events(3, 30_000, now_us)
    worker = start_worker(redis_url, "first", "--batch", "200")
    try:
        wait_until(
            lambda: (
                store.client.exists(stream_keys("fs", VIEW, 0).stream)
                and store.client.xinfo_groups(stream_keys("fs", VIEW, 0).stream)
            )
        )
        push_now(store, events)
        wait_until(lambda: sum(s["applied"] for s in partition_state(store.client, "fs", VIEW)) > 3000)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        applied_at_kill = sum(s["applied"] for s in partition_state(store.client, "fs", VIEW))
        assert applied_at_kill < len(events)
        worker = start_worker(redis_url, "second", "--batch", "200", "--claim-idle-ms", "200")
        wait_until(lambda: settled(store.client, len(events)))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(10)
    states = partition_state(store.client, "fs", VIEW)
    assert sum(s["applied"] + s["late"] + s["expired"] for s in states) == len(events)
    assert online_values(store, list(range(1, 51)), now_us) == {d: served(events, d, now_us) for d in range(1, 51)}


def test_a_live_worker_takes_over_what_a_dead_consumer_left_pending(redis_url, store):
    now_us = int(time.time() * 1e6)
    events = fresh_events(4, 3000, now_us)
    worker = StreamWorker([VIEW], store.client, consumer="dead")
    worker.create_groups()
    push_now(store, events)
    for partition in range(3):
        stream = stream_keys("fs", VIEW, partition).stream
        store.client.xreadgroup(GROUP, "dead", {stream: ">"}, count=400)
    pending_before = sum(s["pending"] for s in partition_state(store.client, "fs", VIEW))
    assert pending_before > 0
    survivor = start_worker(redis_url, "survivor", "--claim-idle-ms", "300")
    try:
        wait_until(lambda: settled(store.client, len(events)))
    finally:
        survivor.send_signal(signal.SIGTERM)
        output = survivor.communicate(timeout=10)[0].decode()
    assert survivor.returncode == 0, output
    assert "claimed" in output
    states = partition_state(store.client, "fs", VIEW)
    assert sum(s["applied"] + s["late"] + s["expired"] for s in states) == len(events)
    assert online_values(store, list(range(1, 51)), now_us) == {d: served(events, d, now_us) for d in range(1, 51)}


def test_a_malformed_entry_is_dead_lettered_after_max_deliveries_and_the_rest_applied(store):
    now_us = int(time.time() * 1e6)
    worker = StreamWorker([VIEW], store.client, claim_idle_ms=20, max_deliveries=3)
    worker.create_groups()
    keys = stream_keys("fs", VIEW, partition_of("i:7", 3))
    store.client.xadd(keys.stream, {"k": "i:7", "t": "yesterday", "fare": "1"})
    store.client.xadd(keys.stream, {"k": "i:7", "t": str(now_us - 1000), "a": str(now_us), "fare": "not a number"})
    push_now(store, [Event(7, now_us - 1000, now_us, 2.5, "t")])
    drain(worker)
    for _ in range(50):
        time.sleep(0.03)
        worker.recover()
        if worker.totals.dead == 2:
            break
    assert worker.totals.dead == 2
    dead = store.client.xrange(keys.dead)
    assert [fields[b"deliveries"] for _, fields in dead] == [b"3", b"3"]
    assert {fields[b"t"] for _, fields in dead} == {b"yesterday", str(now_us - 1000).encode()}
    state = partition_state(store.client, "fs", VIEW)[partition_of("i:7", 3)]
    assert (state["applied"], state["dead"], state["pending"], state["dead_letters"]) == (1, 2, 0, 2)
    assert online_values(store, [7], now_us)[7][:2] == (2.5, 1)


def test_a_tile_bucket_in_an_older_format_reads_as_empty_and_is_replaced(store):
    now_us = int(time.time() * 1e6)
    worker = StreamWorker([VIEW], store.client)
    worker.create_groups()
    event = Event(8, now_us - 1000, now_us, 2.5, "t")
    tiles = stream_keys("fs", VIEW, partition_of("i:8", 3)).tiles + "i:8"
    bucket = -(-event.event_us // STEP_US)
    store.client.hset(tiles, mapping={str(bucket): f"{event.event_us} 3 3 7.5 - -", "fa": now_us // STEP_US})
    assert online_values(store, [8], now_us)[8] == served([], 8, now_us)
    push_now(store, [event])
    drain(worker)
    assert online_values(store, [8], now_us)[8] == served([event], 8, now_us)


def test_the_worker_runs_unchanged_on_redis_cluster(redis_cluster_urls):
    url = "redis+cluster://" + redis_cluster_urls[0].split("://")[1]
    store = RedisOnlineStore(url=url, repository=REPOSITORY, key_prefix="cl")
    store.client.flushall()
    now_us = int(time.time() * 1e6)
    events = fresh_events(5, 2000, now_us)
    worker = StreamWorker([VIEW], store.client, key_prefix="cl")
    worker.create_groups()
    push_now(store, events)
    for _ in range(20):
        worker.poll()
    assert worker.totals.applied + worker.totals.late == len(events)
    assert worker.totals.applied > 0 and worker.totals.late > 0
    assert online_values(store, list(range(1, 51)), now_us) == {d: served(events, d, now_us) for d in range(1, 51)}
    slots = {store.client.keyslot(stream_keys("cl", VIEW, p).stream) for p in range(3)}
    assert len(slots) == 3
    store.close()


def test_an_invalid_push_writes_nothing_to_the_streams_or_the_event_log(store, offline_store):
    now = datetime.now(UTC)
    good = {"driver_id": [1], "event_timestamp": [now], "fare": [1.0], "trip": ["a"]}
    cases = [
        ({**good, "fare": ["cheap"]}, "column 'fare' has dtype String; aggregations need numbers"),
        ({k: v for k, v in good.items() if k != "trip"}, "the events lack column(s) ['trip']"),
        ({k: v * 2 for k, v in good.items()} | {"driver_id": [1, None]}, "row 1: 'driver_id' is null"),
        ({**good, "driver_id": ["1"]}, "join key 'driver_id' has dtype String"),
        ({**good, "surge": [2.0]}, "column(s) ['surge'] are not read by the view"),
    ]
    for rows, message in cases:
        with pytest.raises(PushError, match=re.escape(message)):
            push(VIEW, rows, online_store=store, offline_store=offline_store)
    assert not store.client.keys("fs:*")
    assert not list(Path(offline_store.root).rglob("*.parquet"))


def test_stream_views_refuse_what_workers_cannot_keep():
    from feature_assets import Aggregation, FeatureView

    with pytest.raises(DefinitionError, match="uses count_distinct, which stream workers do not keep"):
        FeatureView(
            "distinct_riders",
            entities=VIEW.entities,
            source=VIEW.source,
            aggregations=[Aggregation("trip", "count_distinct", "1h")],
        )
    with pytest.raises(DefinitionError, match="spans 10080 steps of 1m; .* use a larger step, e.g. 10m"):
        FeatureView(
            "weekly",
            entities=VIEW.entities,
            source=VIEW.source,
            aggregations=[Aggregation("fare", "sum", "7d")],
            step="1m",
        )
    with pytest.raises(DefinitionError, match="allowed_lateness applies to views on a StreamSource only"):
        FeatureView(
            "batch",
            entities=VIEW.entities,
            source=VIEW.source.batch_source,
            aggregations=[Aggregation("fare", "sum", "1h")],
            allowed_lateness="1m",
        )


def test_dagster_shows_the_stream_and_checks_lag_freshness_dead_letters_and_parity(store, offline_store, instance):
    from feature_assets.language.asset_keys import online_asset_key, source_asset_key
    from feature_assets.orchestration.project import build_definitions
    from feature_assets.orchestration.stream_assets import report_observations

    write_history(offline_store, [])
    defs = build_definitions(repository, offline_store, store)
    graph = defs.resolve_asset_graph()
    online = online_asset_key(VIEW)
    assert graph.get(online).parent_keys == {source_asset_key(VIEW.source)}
    assert not graph.get(online).is_materializable
    assert "publish_online" not in {sensor.name for sensor in defs.sensors}

    now_us = int(time.time() * 1e6)
    worker = StreamWorker([VIEW], store.client, claim_idle_ms=10, max_deliveries=1)
    worker.create_groups()
    job = defs.resolve_job_def("check_streams")
    idle = job.execute_in_process(instance=instance, raise_on_error=False)
    stale = {e.check_name: e for e in idle.get_asset_check_evaluations()}["event_freshness"]
    assert not stale.passed and stale.description.startswith("no event has been applied yet")
    events = fresh_events(6, 200, now_us)
    push(VIEW, as_rows(events), to="online_and_offline", online_store=store, offline_store=offline_store)
    drain(worker)
    report_observations(instance, store, [VIEW])
    observed = instance.fetch_observations(online, limit=1).records[0].asset_observation
    assert observed.metadata["applied"].value + observed.metadata["late"].value == 200
    assert observed.metadata["lag_seconds"].value == 0.0

    passed = job.execute_in_process(instance=instance)
    evaluations = {e.check_name: e for e in passed.get_asset_check_evaluations()}
    assert {name: e.passed for name, e in evaluations.items()} == {
        "consumer_lag": True,
        "event_freshness": True,
        "dead_letters_empty": True,
        "stream_batch_parity": True,
    }
    tiles = len(store.client.keys("fs:{driver_trips_live:*}:t:*"))
    assert evaluations["stream_batch_parity"].metadata["entities_compared"].value == tiles > 10

    stream = stream_keys("fs", VIEW, 0).stream
    store.client.xadd(stream, {"k": "i:3", "t": "soon"})
    before_last_step = now_us - now_us % STEP_US - 1000
    push(VIEW, as_rows([Event(7, before_last_step, now_us, 2.5, "t")]), to="online", online_store=store)
    worker.poll()
    time.sleep(0.05)
    worker.recover()
    failed = job.execute_in_process(instance=instance, raise_on_error=False)
    evaluations = {e.check_name: e for e in failed.get_asset_check_evaluations()}
    assert not evaluations["dead_letters_empty"].passed
    assert "1 events in the dead-letter streams" in evaluations["dead_letters_empty"].description
    assert not evaluations["stream_batch_parity"].passed
    assert evaluations["stream_batch_parity"].metadata["sample"].value[0]["driver_id"] == 7


def test_two_worker_processes_one_killed_the_other_takes_over_its_pending_entries(redis_url, store):
    now_us = int(time.time() * 1e6)
    events = fresh_events(8, 30_000, now_us)
    StreamWorker([VIEW], store.client).create_groups()
    doomed = start_worker(redis_url, "doomed", "--batch", "300")
    survivor = start_worker(redis_url, "survivor", "--batch", "300", "--claim-idle-ms", "300")
    try:
        push_now(store, events)
        wait_until(lambda: sum(s["applied"] for s in partition_state(store.client, "fs", VIEW)) > 5000)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        left_pending = sum(
            int(store.client.xpending_range(stream_keys("fs", VIEW, p).stream, GROUP, "-", "+", 10_000, "doomed") != [])
            for p in range(3)
        )
        wait_until(lambda: settled(store.client, len(events)))
    finally:
        survivor.send_signal(signal.SIGTERM)
        output = survivor.communicate(timeout=10)[0].decode()
    states = partition_state(store.client, "fs", VIEW)
    assert sum(s["applied"] + s["late"] + s["expired"] for s in states) == len(events)
    if left_pending:
        assert "claimed=0," not in output, output
    assert online_values(store, list(range(1, 51)), now_us) == {d: served(events, d, now_us) for d in range(1, 51)}
