"""Rebuilding a streaming view's tiles from its event log (real Redis, the real archiver and worker): after Redis is
lost, and on a live store with a worker that has not seen the rebuild, every event counts once against the oracle."""

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from feature_assets.compute.stream_rebuild import StreamRebuildError, rebuild_stream_tiles
from feature_assets.serving.cli import main as cli
from feature_assets.streaming.archiver import StreamArchiver
from feature_assets.streaming.push import push
from feature_assets.streaming.worker import StreamWorker
from resources.online_store import RedisOnlineStore
from resources.stream_keys import partitions, stream_keys
from resources.stream_progress import partition_state
from tests.streaming_views import driver_trips_live as VIEW
from tests.test_stream_worker import (
    MINUTE_US,
    REPOSITORY,
    Event,
    as_rows,
    drain,
    moment,
    online_values,
    served,
    write_history,
)

DRIVERS = list(range(1, 21))


@pytest.fixture
def store(redis_url, redis_client):
    online = RedisOnlineStore(url=redis_url, repository=REPOSITORY)
    yield online
    online.close()


def recent_events(seed: int, count: int, now_us: int) -> list[Event]:
    """Events that arrived in the last 40 minutes: on time, late, too late, duplicated, with nulls."""
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        arrival = now_us - rng.randrange(0, 40 * MINUTE_US)
        delay = rng.choice([0, 0, rng.randrange(0, MINUTE_US), rng.randrange(0, 20 * MINUTE_US)])
        fare = None if rng.random() < 0.1 else rng.randrange(0, 400) / 4
        events.append(Event(rng.choice(DRIVERS), arrival - delay, arrival, fare, None if rng.random() < 0.1 else "t"))
        if rng.random() < 0.05:
            events.append(events[-1])
    return events


def send(store: RedisOnlineStore, offline_store, events: list[Event], produced: bool) -> None:
    """Append events as a producer does (XADD) or push them online and offline, each with its arrival time."""
    for event in sorted(events, key=lambda e: e.arrival_us):
        rows = as_rows([event])
        if produced:
            store.append_events(VIEW, rows.with_columns(created_timestamp=moment(event.arrival_us)))
        else:
            push(VIEW, rows, online_store=store, offline_store=offline_store, arrival=moment(event.arrival_us))


def archive_all(store: RedisOnlineStore, offline_store) -> None:
    archiver = StreamArchiver([VIEW], store.client, offline_store)
    archiver.create_groups()
    while archiver.poll():
        pass


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1e6)


def test_after_redis_is_lost_the_rebuild_command_restores_every_served_value(
    store, offline_store, redis_url, monkeypatch
):
    write_history(offline_store, [])
    events = recent_events(1, 400, now_us())
    produced = [e for i, e in enumerate(events) if i % 3 == 0]
    pushed = [e for i, e in enumerate(events) if i % 3]
    worker = StreamWorker([VIEW], store.client)
    worker.create_groups()
    send(store, offline_store, produced, produced=True)
    send(store, offline_store, pushed, produced=False)
    drain(worker)
    archive_all(store, offline_store)
    at_us = now_us()
    before = online_values(store, DRIVERS, at_us)
    assert before == {d: served(events, d, at_us) for d in DRIVERS}

    store.client.flushall()
    assert set(online_values(store, DRIVERS, at_us).values()) == {(None,) * len(VIEW.aggregations)}
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OFFLINE_ROOT", offline_store.root)
    args = ["rebuild-online", "--repository", REPOSITORY, "--view", VIEW.name, "--json"]
    assert cli.main(args) == 0
    assert online_values(store, DRIVERS, at_us) == before


def test_a_rebuild_on_a_live_store_counts_each_event_once_with_a_worker_that_has_not_seen_it(store, offline_store):
    write_history(offline_store, [])
    start = now_us()
    applied = recent_events(2, 300, start)
    worker = StreamWorker([VIEW], store.client)
    worker.create_groups()
    send(store, offline_store, applied[::2], produced=True)
    send(store, offline_store, applied[1::2], produced=False)
    drain(worker)
    unread = recent_events(3, 120, start)
    send(store, offline_store, unread, produced=True)
    archive_all(store, offline_store)
    for key in store.client.scan_iter(match="fs:{driver_trips_live:*}:t:*"):
        if random.Random(str(key)).random() < 0.5:
            store.client.hset(key, mapping={str(b): "bad" for b in range(start // 60_000_000 - 5, start // 60_000_000)})

    rebuilt = rebuild_stream_tiles(VIEW, offline_store, store, grace=timedelta(0))
    assert rebuilt.partitions == partitions(VIEW) and 0 < rebuilt.events <= len(applied) + len(unread)
    time.sleep(0.002)
    later = recent_events(4, 80, now_us())
    after_cut = [Event(e.driver_id, e.event_us, now_us(), e.fare, e.trip) for e in later]
    send(store, offline_store, after_cut, produced=False)
    drain(worker)

    at_us = now_us()
    everything = applied + unread + after_cut
    assert online_values(store, DRIVERS, at_us) == {d: served(everything, d, at_us) for d in DRIVERS}
    states = partition_state(store.client, "fs", VIEW)
    assert sum(int(s["covered"] or 0) for s in states) == len(unread)
    assert all(s["rebuilding"] is None and s["cut_us"] is not None for s in states)


def test_a_rebuild_refuses_and_changes_nothing_while_producers_events_are_not_archived(
    store, offline_store, redis_url, monkeypatch, capsys
):
    write_history(offline_store, [])
    events = recent_events(5, 60, now_us())
    worker = StreamWorker([VIEW], store.client)
    worker.create_groups()
    send(store, offline_store, events, produced=True)
    drain(worker)
    at_us = now_us()
    before = online_values(store, DRIVERS, at_us)
    with pytest.raises(StreamRebuildError, match="events appended by producers and no stream archiver has read it"):
        rebuild_stream_tiles(VIEW, offline_store, store, grace=timedelta(0))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OFFLINE_ROOT", offline_store.root)
    assert cli.main(["rebuild-online", "--repository", REPOSITORY, "--view", VIEW.name]) == 1
    assert "run `feature-store stream archive` and retry (nothing was changed)" in capsys.readouterr().err
    archiver = StreamArchiver([VIEW], store.client, offline_store)
    archiver.create_groups()
    with pytest.raises(StreamRebuildError, match="has not copied .* within .*nothing was changed"):
        rebuild_stream_tiles(VIEW, offline_store, store, grace=timedelta(0), archive_timeout=timedelta(seconds=0.3))
    assert online_values(store, DRIVERS, at_us) == before == {d: served(events, d, at_us) for d in DRIVERS}
    assert all(s["rebuilding"] is None and s["cut_us"] is None for s in partition_state(store.client, "fs", VIEW))


def test_a_worker_waits_while_a_rebuild_holds_the_partition_and_applies_its_batch_after(store, offline_store):
    write_history(offline_store, [])
    worker = StreamWorker([VIEW], store.client)
    worker.create_groups()
    states = [stream_keys("fs", VIEW, p).state for p in range(partitions(VIEW))]
    for state in states:
        store.client.hset(state, "rebuilding", "another-rebuild")
    events = recent_events(6, 40, now_us())
    send(store, offline_store, events, produced=False)
    polling = threading.Thread(target=drain, args=(worker,))
    polling.start()
    time.sleep(0.5)
    assert polling.is_alive() and worker.totals.applied == 0
    for state in states:
        store.client.hdel(state, "rebuilding")
    polling.join(timeout=10)
    assert not polling.is_alive()
    at_us = now_us()
    assert online_values(store, DRIVERS, at_us) == {d: served(events, d, at_us) for d in DRIVERS}


def test_the_rebuild_runs_unchanged_on_redis_cluster_and_needs_no_archiver_when_every_event_was_pushed(
    redis_cluster_urls, offline_store
):
    url = "redis+cluster://" + redis_cluster_urls[0].split("://")[1]
    store = RedisOnlineStore(url=url, repository=REPOSITORY, key_prefix="rb")
    store.client.flushall()
    write_history(offline_store, [])
    events = recent_events(7, 200, now_us())
    worker = StreamWorker([VIEW], store.client, key_prefix="rb")
    worker.create_groups()
    send(store, offline_store, events, produced=False)
    for _ in range(10):
        worker.poll()
    at_us = now_us()
    expected = {d: served(events, d, at_us) for d in DRIVERS}
    assert online_values(store, DRIVERS, at_us) == expected
    for node in store.client.get_primaries():
        for key in store.client.keys("rb:*:t:*", target_nodes=node):
            store.client.delete(key)
    assert set(online_values(store, DRIVERS, at_us).values()) == {(None,) * len(VIEW.aggregations)}
    rebuild_stream_tiles(VIEW, offline_store, store, grace=timedelta(0))
    for _ in range(3):
        worker.poll()
    assert online_values(store, DRIVERS, at_us) == expected
    store.close()
