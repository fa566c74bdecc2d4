"""Forgetting an entity leaves no trace of it online or offline, and every other entity's data exactly as it was."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import redis
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest
from polars.testing import assert_frame_equal

from feature_assets import (
    Aggregation,
    Entity,
    FeatureRepository,
    FeatureView,
    Field,
    ParquetSource,
    PushSource,
    StreamSource,
)
from feature_assets.language.asset_keys import training_set_asset_key, view_asset_key
from feature_assets.language.errors import EntityFrameError
from feature_assets.language.training_set import TrainingSet
from feature_assets.orchestration.project import build_definitions
from feature_assets.orchestration.training_assets import build_training_set_asset
from feature_assets.serving.cli import main as cli_main
from feature_assets.serving.forget import forget_entity
from feature_assets.streaming.push import push
from feature_assets.streaming.worker import StreamWorker
from resources import entity_erasure
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

ROOT = Path(__file__).resolve().parent.parent
FORGOTTEN = 987654321
DRIVER = Entity("driver", ["driver_id"])
CUSTOMER = Entity("customer", ["customer_id"], key_dtypes={"customer_id": pl.String})
STATS_SOURCE = ParquetSource("driver_stats_source", "raw/driver_stats/*.parquet", timestamp_field="event_timestamp")
STATS_V1 = FeatureView(
    "driver_stats", entities=[DRIVER], source=STATS_SOURCE, schema=[Field("conv_rate", pl.Float64)], version=1
)
STATS = FeatureView(
    "driver_stats",
    entities=[DRIVER],
    source=STATS_SOURCE,
    schema=[Field("conv_rate", pl.Float64), Field("trips", pl.Int32)],
    version=2,
)
PROFILE = FeatureView(
    "driver_profile",
    entities=[DRIVER],
    source=PushSource(
        "driver_profile_push", batch_source=ParquetSource("profiles", "/elsewhere/profiles/*.parquet", "updated_at")
    ),
    schema=[Field("city", pl.String)],
)
LIVE = FeatureView(
    "driver_trips_live",
    entities=[DRIVER],
    source=StreamSource(
        "trip_events",
        batch_source=ParquetSource("trip_history", "raw/trips/*.parquet", "event_timestamp"),
        partitions=3,
    ),
    aggregations=[Aggregation("fare", "sum", "10m"), Aggregation("fare", "count", "10m")],
    step="5m",
    allowed_lateness="10m",
)
PAIR = FeatureView(
    "driver_customer",
    entities=[DRIVER, CUSTOMER],
    source=ParquetSource("rides", "raw/rides/*.parquet", timestamp_field="event_timestamp"),
    schema=[Field("rides", pl.Int64)],
)
repository = FeatureRepository([STATS, PROFILE, LIVE], previous_versions=[STATS_V1])
pair_repository = FeatureRepository([STATS, PAIR])
LABELS = ParquetSource("driver_labels", "labels/driver_labels.parquet", timestamp_field="requested_at")
TRAINING = TrainingSet("driver_model", ["driver_stats:conv_rate", "driver_profile:city"], LABELS)
DAYS = [date(2025, 3, day) for day in (1, 2, 3, 4)]
LIVE_FEATURES = ["driver_trips_live:fare_sum_10m", "driver_trips_live:fare_count_10m"]


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def view_rows(view: FeatureView, drivers: list[int], day: date, rng: random.Random) -> pl.DataFrame:
    """Rows of a view for `drivers` on `day`, random values, schema exactly the view's."""
    times = [at(day, rng.randrange(24)) for _ in drivers]
    columns: dict[str, list[object]] = {"driver_id": drivers, "event_timestamp": times, "created_timestamp": times}
    for f in view.schema:
        if f.dtype == pl.String:
            columns[f.name] = [rng.choice(["Lyon", "Oslo", None]) for _ in drivers]
        elif f.dtype.is_float():
            columns[f.name] = [rng.random() for _ in drivers]
        else:
            columns[f.name] = [rng.randrange(100) for _ in drivers]
    return pl.DataFrame(columns, schema=view.output_schema)


def populate(online: RedisOnlineStore, offline: OfflineStore, seed: int) -> list[int]:
    """Write both versions of driver_stats, profiles (pushed), live trips (streams and tiles), sources and labels.

    The forgotten driver is in every kind of file but not in every file; return the other drivers.
    """
    rng = random.Random(seed)
    others = rng.sample(range(1, 10_000), 12)
    for view in (STATS_V1, STATS):
        for day in DAYS:
            drivers = rng.sample(others, 6) + ([FORGOTTEN] if day != DAYS[-1] else [])
            frame = view_rows(view, drivers, day, rng)
            offline.write_partition(view, day, frame)
            online.write_batch(view, frame)
    offline.quarantine_partition(STATS, DAYS[1], view_rows(STATS, [FORGOTTEN, others[0]], DAYS[1], rng))
    offline.write_file("raw/driver_stats/history.parquet", view_rows(STATS, [*others, FORGOTTEN], DAYS[0], rng))
    for day in DAYS:
        offline.write_partition(PROFILE, day, view_rows(PROFILE, rng.sample(others, 5) + [FORGOTTEN], day, rng))
    pushed = view_rows(PROFILE, [*others[:4], FORGOTTEN], DAYS[-1], rng).drop("created_timestamp")
    push(PROFILE, pushed, online_store=online, offline_store=offline)
    push(PROFILE, pushed.filter(pl.col("driver_id") == FORGOTTEN), to="offline", offline_store=offline)
    worker = StreamWorker([LIVE], online.client, key_prefix=online.key_prefix)
    worker.create_groups()
    now = datetime.now(UTC)
    for batch in range(2):
        drivers = [*others, FORGOTTEN] * 3
        events = {
            "driver_id": drivers,
            "event_timestamp": [now - timedelta(minutes=rng.randrange(8)) for _ in drivers],
            "fare": [float(rng.randrange(1, 50)) for _ in drivers],
        }
        push(LIVE, events, online_store=online, offline_store=offline)
        while batch == 0 and worker.poll():
            pass
    labels = pl.DataFrame(
        {
            "driver_id": [*others, FORGOTTEN, FORGOTTEN],
            "requested_at": [at(DAYS[1], rng.randrange(24)) for _ in range(len(others) + 2)],
            "completed": [rng.random() < 0.5 for _ in range(len(others) + 2)],
        }
    )
    offline.write_file(LABELS.path, labels)
    return others


def parquet_snapshot(root: str) -> dict[str, tuple[int, pl.DataFrame]]:
    """Every Parquet file under the root: its modification time and its rows."""
    return {str(p): (p.stat().st_mtime_ns, pl.read_parquet(p)) for p in sorted(Path(root).rglob("*.parquet"))}


def redis_snapshot(client: redis.Redis, prefix: str) -> dict[bytes, object]:
    """Every key of the store but the usage counters (reads counted meanwhile): hash contents, stream entries, value."""
    values: dict[bytes, object] = {}
    for key in client.scan_iter(match=f"{prefix}:*"):
        if b":{usage}:" in key:
            continue
        kind = client.type(key)
        values[key] = (
            client.hgetall(key) if kind == b"hash" else client.xrange(key) if kind == b"stream" else client.dump(key)
        )
    return values


def entity_traces(client: redis.Redis, prefix: str, driver: int) -> list[object]:
    """Keys of the driver (its hashes and tiles) and stream entries carrying it."""
    own = [key for key in client.scan_iter(match=f"{prefix}:*") if f"i:{driver}".encode() in key]
    entries = [
        (key, entry_id)
        for key in client.scan_iter(match=f"{prefix}:*", _type="stream")
        for entry_id, fields in client.xrange(key)
        if fields.get(b"k") == f"i:{driver}".encode()
    ]
    return own + entries


def online_values(store: RedisOnlineStore, drivers: list[int], now: datetime) -> dict[str, list[object]]:
    features = ["driver_stats@v1:conv_rate", "driver_stats:trips", "driver_profile:city", *LIVE_FEATURES]
    return store.get_online_features(
        features, [{"driver_id": driver} for driver in drivers], now=now, include_timestamps=True
    ).to_dict(include_statuses=True)


def assert_only_the_entity_was_removed(before: dict, after: dict, key: str = "driver_id") -> None:
    """Each file holds exactly its rows without the forgotten driver's; files without it were not touched."""
    assert set(after) >= set(before)
    for path, (mtime, frame) in before.items():
        new_mtime, new_frame = after[path]
        assert_frame_equal(new_frame, frame.filter(pl.col(key) != FORGOTTEN), check_exact=True)
        if FORGOTTEN not in frame[key]:
            assert new_mtime == mtime, path


@pytest.fixture
def online(redis_url, redis_client):
    store = RedisOnlineStore(url=redis_url, repository="tests.test_forget:repository")
    yield store
    store.close()


def stale_status(instance: dg.DagsterInstance) -> StaleStatus:
    graph = build_definitions(repository, training_sets=[TRAINING]).resolve_asset_graph()
    return CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance)).get_status(
        training_set_asset_key(TRAINING)
    )


def test_forget_removes_every_trace_of_the_entity_and_nothing_else(online, offline_store, instance, caplog):
    others = populate(online, offline_store, seed=7)
    result = dg.materialize(
        [build_training_set_asset(TRAINING, repository)], instance=instance, resources={"offline_store": offline_store}
    )
    assert result.success and stale_status(instance) == StaleStatus.FRESH
    now = datetime.now(UTC)
    files, keys = parquet_snapshot(offline_store.root), redis_snapshot(online.client, "fs")
    values = online_values(online, others, now)
    assert entity_traces(online.client, "fs", FORGOTTEN)
    assert any(FORGOTTEN in frame["driver_id"] for _, frame in files.values())

    caplog.set_level("INFO", logger="feature_store.audit")
    report = forget_entity(
        repository,
        {"driver_id": FORGOTTEN},
        online_store=online,
        offline_store=offline_store,
        instance=instance,
        training_sets=[TRAINING],
        actor="dpo@example.com",
    )

    assert entity_traces(online.client, "fs", FORGOTTEN) == []
    after_keys = redis_snapshot(online.client, "fs")
    for key, value in keys.items():
        if f"i:{FORGOTTEN}".encode() in key:
            assert key not in after_keys
        elif isinstance(value, list):
            assert after_keys[key] == [e for e in value if e[1].get(b"k") != f"i:{FORGOTTEN}".encode()]
        else:
            assert after_keys[key] == value, key
    assert online_values(online, others, now) == values
    statuses = online_values(online, [FORGOTTEN], now)
    assert (
        statuses["conv_rate__status"] == statuses["city__status"] == statuses["fare_count_10m__status"] == ["not_found"]
    )

    after = parquet_snapshot(offline_store.root)
    assert_only_the_entity_was_removed(files, after)
    (emptied,) = [path for path, (_, frame) in after.items() if frame.is_empty()]
    assert after[emptied][1].schema == files[emptied][1].schema == PROFILE.output_schema
    assert not any(FORGOTTEN in frame["driver_id"] for _, frame in after.values())
    kinds = {rewrite.kind for rewrite in report.files}
    assert kinds == {"partition", "quarantine", "pushed", "training_set", "labels", "source"}
    assert {r.path for r in report.files} >= {"driver_stats/v1/date=2025-03-01/data.parquet", LABELS.path}
    assert report.online["driver_stats"]["hashes"] == 2 and report.online["driver_trips_live"]["tiles"] == 1
    assert report.online["driver_trips_live"]["stream_entries"] == 6
    assert report.sources_outside_root == ("/elsewhere/profiles/*.parquet",)

    (audit_file,) = Path(offline_store.root, "_audit", "forget").glob("*.json")
    text = audit_file.read_text()
    record = json.loads(text)
    assert str(FORGOTTEN) not in text and str(FORGOTTEN) not in caplog.text
    assert record["who"] == "dpo@example.com" and record["what"] == {
        "entity_keys": ["driver_id"],
        "entity_sha256": hashlib.sha256(f"driver_id=i:{FORGOTTEN}".encode()).hexdigest(),
    }
    assert record["offline_rows_removed"]["driver_stats"] == sum(
        r.rows_removed for r in report.files if r.owner == "driver_stats"
    )
    assert json.loads(caplog.records[-1].getMessage()) == record

    assert stale_status(instance) == StaleStatus.STALE
    marked = instance.get_latest_materialization_event(training_set_asset_key(TRAINING)).asset_materialization
    assert marked.metadata["needs_rematerialization"].value is True and marked.metadata["rows_removed"].value == 2
    observed = instance.fetch_observations(view_asset_key(STATS), limit=1).records[0].asset_observation
    assert observed.metadata["forget_record"].value == report.record_id

    again = forget_entity(repository, {"driver_id": FORGOTTEN}, online_store=online, offline_store=offline_store)
    assert again.files == () and all(not any(c.values()) for c in again.online.values())
    assert parquet_snapshot(offline_store.root).keys() == after.keys()


def test_a_composite_entity_removes_only_the_pair_from_a_view_keyed_by_both(online, offline_store):
    rides = pl.DataFrame(
        {
            "driver_id": [FORGOTTEN, FORGOTTEN, 5],
            "customer_id": ["c-7", "c-8", "c-7"],
            "event_timestamp": [at(DAYS[0], 1)] * 3,
            "created_timestamp": [at(DAYS[0], 1)] * 3,
            "rides": [1, 2, 3],
        },
        schema=PAIR.output_schema,
    )
    online = RedisOnlineStore(url=online.url, repository="tests.test_forget:pair_repository")
    offline_store.write_partition(PAIR, DAYS[0], rides)
    online.write_batch(PAIR, rides)
    with pytest.raises(EntityFrameError, match=r"no feature view is keyed by \['customer_id'\] alone"):
        forget_entity(pair_repository, {"customer_id": "c-7"}, online_store=online, offline_store=offline_store)
    entity = {"driver_id": FORGOTTEN, "customer_id": "c-7"}
    report = forget_entity(pair_repository, entity, online_store=online, offline_store=offline_store)
    assert report.views == ("driver_stats", "driver_customer")
    assert_frame_equal(offline_store.read_partition(PAIR, DAYS[0]), rides[1:])
    response = online.get_online_features(
        ["driver_customer:rides"], [{"driver_id": FORGOTTEN, "customer_id": c} for c in ("c-7", "c-8")]
    ).to_dict()
    assert response["rides"] == [None, 2]
    online.close()


@pytest.mark.parametrize(
    ("entity", "message"),
    [
        ({"rider_id": 1}, r"no feature view uses join keys \['rider_id'\]; known join keys: \['driver_id'\]"),
        ({"driver_id": "42"}, r"join key 'driver_id' is Int64 in FeatureView 'driver_stats': give an integer"),
        ({"driver_id": True}, r"give an integer, got True \(bool\)"),
        ({}, "no entity given"),
    ],
)
def test_a_wrong_entity_is_refused_naming_the_keys(entity, message, online, offline_store):
    with pytest.raises(EntityFrameError, match=message):
        forget_entity(repository, entity, online_store=online, offline_store=offline_store)


def test_forget_only_in_the_chosen_view(online, offline_store):
    populate(online, offline_store, seed=3)
    report = forget_entity(
        repository, {"driver_id": FORGOTTEN}, online_store=online, offline_store=offline_store, views=["driver_profile"]
    )
    assert report.views == ("driver_profile",) and set(report.online) == {"driver_profile"}
    assert {r.owner for r in report.files if r.kind in ("partition", "pushed")} == {"driver_profile"}
    assert online.client.exists(f"fs:{{i:{FORGOTTEN}}}:driver_stats:v2")


def test_a_killed_forget_leaves_each_file_old_or_new_and_a_rerun_finishes(online, offline_store, redis_url):
    others = populate(online, offline_store, seed=11)
    before, now = parquet_snapshot(offline_store.root), datetime.now(UTC)
    values = online_values(online, others, now)
    child = textwrap.dedent(
        f"""
        import sys, time
        from resources import offline_rewrite
        from resources.offline_store import OfflineStore
        from resources.online_store import RedisOnlineStore
        from feature_assets.serving.forget import forget_entity
        from tests.test_forget import TRAINING, repository

        rewrite, done = offline_rewrite.rewrite_without, []

        def rewrite_then_pause(store, path, predicate_for):
            result = rewrite(store, path, predicate_for)
            done.append(path)
            print(path, flush=True)
            if len(done) == 3:
                time.sleep(600)
            return result

        offline_rewrite.rewrite_without = rewrite_then_pause
        forget_entity(
            repository, {{"driver_id": {FORGOTTEN}}},
            online_store=RedisOnlineStore(url={redis_url!r}), offline_store=OfflineStore(root={offline_store.root!r}),
            training_sets=[TRAINING],
        )
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    replaced = [process.stdout.readline().strip() for _ in range(3)]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()

    middle = parquet_snapshot(offline_store.root)
    assert set(middle) == set(before)
    for path, (_, frame) in before.items():
        new = frame.filter(pl.col("driver_id") != FORGOTTEN)
        expected = new if path in replaced else frame
        assert_frame_equal(middle[path][1], expected, check_exact=True)
    assert sum(FORGOTTEN in frame["driver_id"] for _, frame in middle.values()) > 0
    assert not Path(offline_store.root, "_audit").exists()

    report = forget_entity(
        repository, {"driver_id": FORGOTTEN}, online_store=online, offline_store=offline_store, training_sets=[TRAINING]
    )
    assert not set(replaced) & {offline_store.resolve(r.path) for r in report.files}
    assert_only_the_entity_was_removed(before, parquet_snapshot(offline_store.root))
    assert entity_traces(online.client, "fs", FORGOTTEN) == []
    assert len(list(Path(offline_store.root, "_audit", "forget").glob("*.json"))) == 1
    assert online_values(online, others, now) == values


def test_the_online_part_on_redis_cluster(redis_cluster_urls, offline_store, monkeypatch):
    monkeypatch.setattr(entity_erasure, "XRANGE_COUNT", 4)
    monkeypatch.setattr(entity_erasure, "DELETE_BATCH", 2)
    url = "redis+cluster://" + redis_cluster_urls[0].split("://")[1]
    online = RedisOnlineStore(url=url, repository="tests.test_forget:repository", key_prefix="forget")
    online.client.flushall()
    others = populate(online, offline_store, seed=5)
    values = online_values(online, others, now := datetime.now(UTC))
    keys = redis_snapshot(online.client, "forget")
    assert entity_traces(online.client, "forget", FORGOTTEN)
    report = forget_entity(repository, {"driver_id": FORGOTTEN}, online_store=online, offline_store=offline_store)
    assert entity_traces(online.client, "forget", FORGOTTEN) == []
    assert report.online["driver_stats"]["hashes"] == 2 and report.online["driver_trips_live"]["tiles"] == 1
    assert report.online["driver_trips_live"]["stream_entries"] == 6
    assert online_values(online, others, now) == values
    after_keys = redis_snapshot(online.client, "forget")
    assert {k for k in keys if f"i:{FORGOTTEN}".encode() not in k} == set(after_keys)
    online.close()


def test_forget_on_s3_rewrites_only_the_files_holding_the_entity(s3_offline_store, online):
    rng = random.Random(1)
    for day in DAYS[:2]:
        drivers = [1, 2, 3] + ([FORGOTTEN] if day == DAYS[0] else [])
        s3_offline_store.write_partition(STATS, day, view_rows(STATS, drivers, day, rng))
    paths = [s3_offline_store.partition_path(STATS, day) for day in DAYS[:2]]
    frames = [s3_offline_store.read_partition(STATS, day) for day in DAYS[:2]]
    untouched = s3_offline_store.filesystem.info(paths[1])["LastModified"]
    report = forget_entity(repository, {"driver_id": FORGOTTEN}, online_store=online, offline_store=s3_offline_store)
    assert [r.path for r in report.files] == ["driver_stats/v2/date=2025-03-01/data.parquet"]
    assert_frame_equal(
        s3_offline_store.read_partition(STATS, DAYS[0]), frames[0].filter(pl.col("driver_id") != FORGOTTEN)
    )
    assert s3_offline_store.filesystem.info(paths[1])["LastModified"] == untouched
    assert report.audit_path.startswith(s3_offline_store.root + "/_audit/forget/")
    assert str(FORGOTTEN) not in s3_offline_store.filesystem.cat_file(report.audit_path).decode()


def test_the_cli_shows_a_dry_run_and_erases_with_yes(online, offline_store, redis_url, monkeypatch, capsys):
    populate(online, offline_store, seed=9)
    monkeypatch.setattr(cli_main, "NOUNS", ("forget",))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OFFLINE_ROOT", offline_store.root)
    base = ["forget", "--repository", "tests.test_forget:repository", "--entity", f"driver_id={FORGOTTEN}"]
    files = parquet_snapshot(offline_store.root)
    assert cli_main.main([*base, "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True and dry["online"]["driver_stats"]["hashes"] == 2
    assert parquet_snapshot(offline_store.root).keys() == files.keys()
    assert all(mtime == files[p][0] for p, (mtime, _) in parquet_snapshot(offline_store.root).items())
    assert entity_traces(online.client, "fs", FORGOTTEN)

    assert cli_main.main([*base, "--yes"]) == 0
    printed = capsys.readouterr().out
    assert "erased" in printed
    assert entity_traces(online.client, "fs", FORGOTTEN) == []
    assert cli_main.main([*base[:-1], "driver_id=x42"]) == 1
    assert "'x42' is not an integer" in capsys.readouterr().err
    assert cli_main.main([*base[:-1], "rider_id=1"]) == 1
    assert "known join keys: ['driver_id']" in capsys.readouterr().err
