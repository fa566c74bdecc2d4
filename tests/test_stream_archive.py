"""The stream archiver (real processes, real Redis): producers' own XADDs reach the offline event log once each, so
training rows equal what was served, also across archivers killed mid-batch."""

import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from feature_assets.retrieval.point_in_time import get_historical_features
from feature_assets.streaming.push import push
from feature_assets.streaming.worker import StreamWorker
from resources.online_store import RedisOnlineStore
from resources.stream_archive import ARCHIVE_CONSUMER
from resources.stream_keys import ARCHIVE_GROUP, partition_of, stream_keys
from resources.stream_progress import partition_state
from tests.streaming_views import driver_trips_live as VIEW
from tests.streaming_views import repository
from tests.test_stream_worker import (
    FEATURES,
    MINUTE_US,
    NAMES,
    REPOSITORY,
    ROOT,
    STEP_US,
    Event,
    as_rows,
    drain,
    fresh_events,
    moment,
    online_values,
    random_events,
    served,
    wait_until,
    write_history,
)


@pytest.fixture
def store(redis_url, redis_client):
    online = RedisOnlineStore(url=redis_url, repository=REPOSITORY)
    yield online
    online.close()


def start_archiver(redis_url: str, offline_root: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": redis_url, "OFFLINE_ROOT": offline_root}
    command = [sys.executable, "-m", "feature_assets.streaming.archiver", "--repository", REPOSITORY, *extra]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def archived(client) -> int:
    return sum(int(state["archived"]) for state in partition_state(client, "fs", VIEW))


def stream_lengths(client) -> int:
    return sum(client.xlen(stream_keys("fs", VIEW, p).stream) for p in range(3))


def event_log(offline_store) -> pl.DataFrame:
    files = sorted(Path(offline_store.view_root(VIEW)).glob("pushed/date=*/*.parquet"))
    return pl.concat([pl.read_parquet(path) for path in files]) if files else pl.DataFrame()


def produce(online: RedisOnlineStore, events: list[Event], arrival_us: int) -> None:
    """Append events to the streams as a producer does (XADD, not push), stamped with their arrival time."""
    frame = as_rows(events).with_columns(created_timestamp=pl.lit(moment(arrival_us)).dt.cast_time_unit("us"))
    online.append_events(VIEW, frame)


def test_producer_events_reach_training_through_the_archiver_so_training_equals_what_was_served(
    redis_url, store, offline_store
):
    start = datetime(2026, 3, 6, 10, 0, tzinfo=UTC)
    write_history(offline_store, [])
    events = random_events(11, start, 300, 5)
    rng = random.Random(11)
    produced = {id(e): rng.random() < 0.6 for e in events}
    first, last = min(e.arrival_us for e in events), max(e.arrival_us for e in events)
    instants = sorted(
        {rng.randrange(first, last + 20 * MINUTE_US) for _ in range(25)}
        | {first + k * STEP_US - first % STEP_US for k in range(1, 30, 4)}
    )
    worker = StreamWorker([VIEW], store.client)
    worker.create_groups()
    archiver = start_archiver(redis_url, offline_store.root, "--lock-ms", "2000")
    try:
        by_arrival: dict[int, list[Event]] = {}
        for event in sorted(events, key=lambda e: e.arrival_us):
            by_arrival.setdefault(event.arrival_us, []).append(event)
        pending, sent = sorted(by_arrival), []
        seen: dict[tuple[int, int], tuple[object, ...]] = {}
        for at_us in instants:
            while pending and pending[0] <= at_us:
                arrival = pending.pop(0)
                batch = by_arrival[arrival]
                if mine := [e for e in batch if produced[id(e)]]:
                    produce(store, mine, arrival)
                if theirs := [e for e in batch if not produced[id(e)]]:
                    rows = as_rows(theirs)
                    push(VIEW, rows, online_store=store, offline_store=offline_store, arrival=moment(arrival))
                sent += batch
            drain(worker)
            for driver, values in online_values(store, [1, 2, 3, 4, 5], at_us).items():
                assert values == served(events, driver, at_us)
                seen[driver, at_us] = values
        wait_until(lambda: archived(store.client) == stream_lengths(store.client))
    finally:
        archiver.send_signal(signal.SIGTERM)
        output = archiver.communicate(timeout=10)[0].decode()
    assert archiver.returncode == 0, output

    logged = event_log(offline_store)
    assert logged.height == len(sent)
    assert sorted(logged["fare"].fill_null(-1.0).to_list()) == sorted(-1.0 if e.fare is None else e.fare for e in sent)
    entity_rows = pl.DataFrame({"driver_id": [d for d, _ in seen], "event_timestamp": [moment(t) for _, t in seen]})
    training = get_historical_features(
        entity_rows, FEATURES, repository=repository, offline_store=offline_store, as_of="available"
    )
    for row in training.iter_rows(named=True):
        at_us = (row["event_timestamp"] - moment(0)).total_seconds() * 1e6
        assert tuple(row[name] for name in NAMES) == seen[row["driver_id"], round(at_us)]


def test_archivers_killed_mid_batch_write_each_producer_event_once(redis_url, store, offline_store):
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    events = [
        Event(e.driver_id, e.event_us, e.arrival_us, e.fare, f"t{i}")
        for i, e in enumerate(fresh_events(5, 20_000, now_us))
    ]
    StreamWorker([VIEW], store.client).create_groups()
    produce(store, events, now_us)
    malformed = stream_keys("fs", VIEW, partition_of("i:7", 3)).stream
    store.client.xadd(malformed, {"k": "i:7", "t": "yesterday", "fare": "1"})
    store.client.xadd(malformed, {"k": "s:not-an-integer-key", "t": str(now_us), "fare": "1"})
    push(VIEW, as_rows(events[:5]), to="online", online_store=store)
    total = stream_lengths(store.client)
    dead_holder = stream_keys("fs", VIEW, 0)
    store.client.xgroup_create(dead_holder.stream, ARCHIVE_GROUP, id="0")
    store.client.xreadgroup(ARCHIVE_GROUP, ARCHIVE_CONSUMER, {dead_holder.stream: ">"}, count=250)
    store.client.set(dead_holder.archive_lock, "an archiver that died after reading", px=800)

    first = start_archiver(redis_url, offline_store.root, "--batch", "100", "--lock-ms", "800")
    standby = start_archiver(redis_url, offline_store.root, "--batch", "200", "--lock-ms", "800")
    try:
        wait_until(lambda: archived(store.client) > 2000)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        wait_until(lambda: archived(store.client) > 8000)
        standby.send_signal(signal.SIGKILL)
        standby.wait(10)
        first = start_archiver(redis_url, offline_store.root, "--batch", "500", "--lock-ms", "800")
        wait_until(lambda: archived(store.client) == total)
    finally:
        for process in (first, standby):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(10)

    logged = event_log(offline_store)
    assert logged.height == len(events)
    assert sorted(logged["trip"].to_list()) == sorted(e.trip for e in events)
    assert logged.schema["driver_id"] == pl.Int64 and logged.schema["created_timestamp"] == pl.Datetime("us", "UTC")
