"""Publishing checked partitions to Redis through the sensor, on a real Dagster instance and a real Redis."""

import random
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
import redis

from feature_assets.compute.latest import latest_per_entity
from feature_assets.language.asset_keys import online_asset_key, view_asset_key
from feature_assets.orchestration.project import build_definitions
from feature_assets.retrieval.point_in_time import get_historical_features
from resources.embedded_redis import RedisServer
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore
from tests.publishing_views import driver_quality, repository

REPOSITORY = "tests.publishing_views:repository"
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def at(day: int, hour: int) -> datetime:
    return datetime(2025, 1, day, hour, tzinfo=UTC)


def write_day(store: OfflineStore, day: int, rows: list[tuple[int, int, float | None, str]]) -> None:
    """Write source rows (driver, hour, rating, city) for one January day."""
    frame = pl.DataFrame(
        [{"driver_id": d, "ts": at(day, h), "rating": r, "city": c} for d, h, r, c in rows],
        schema={"driver_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "rating": pl.Float64, "city": pl.String},
    )
    store.write_file(f"raw/driver_quality/day-{day:02d}.parquet", frame)


@pytest.mark.parametrize(("seed", "drivers"), [(1, 5), (2, 40), (3, 10**6)])
def test_latest_per_entity_keeps_the_newest_row_of_each_entity(seed, drivers):
    rng = random.Random(seed)
    moments = rng.sample([(e, c) for e in range(12) for c in range(12)], 60)
    rows = [
        {
            "driver_id": rng.randrange(drivers),
            "event_timestamp": at(3, 0) + timedelta(minutes=e),
            "created_timestamp": at(3, 0) + timedelta(minutes=c),
            "rating": float(index),
            "city": rng.choice(["oslo", None]),
        }
        for index, (e, c) in enumerate(moments)
    ]
    newest: dict[int, dict] = {}
    for row in rows:
        known = newest.get(row["driver_id"])
        if known is None or (row["event_timestamp"], row["created_timestamp"]) > (
            known["event_timestamp"],
            known["created_timestamp"],
        ):
            newest[row["driver_id"]] = row
    latest = latest_per_entity(driver_quality, pl.DataFrame(rows))
    assert sorted(latest.to_dicts(), key=lambda row: row["driver_id"]) == sorted(
        newest.values(), key=lambda row: row["driver_id"]
    )


@pytest.fixture
def online(redis_url, redis_client) -> RedisOnlineStore:
    store = RedisOnlineStore(url=redis_url, repository=REPOSITORY)
    yield store
    store.close()


def definitions(offline_store: OfflineStore, online_store: RedisOnlineStore) -> dg.Definitions:
    return build_definitions(repository, offline_store, online_store)


def materialize_view(defs: dg.Definitions, instance, first: str, last: str | None = None) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        asset_selection=[view_asset_key(driver_quality)],
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first},
        raise_on_error=False,
    )


def tick(defs: dg.Definitions, instance, cursor: str | None):
    sensor = defs.resolve_sensor_def("publish_online")
    context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
    return sensor.evaluate_tick(context)


def run_requests(defs: dg.Definitions, instance, requests) -> list[dg.ExecuteInProcessResult]:
    job = defs.resolve_implicit_global_asset_job_def()
    return [
        job.execute_in_process(
            instance=instance,
            asset_selection=list(request.asset_selection),
            partition_key=request.partition_key,
            tags=request.tags,
            raise_on_error=False,
        )
        for request in requests
    ]


def online_values(store: RedisOnlineStore, driver_ids: list[int]) -> dict[int, tuple]:
    response = store.get_online_features(
        ["driver_quality:rating", "driver_quality:city"], [{"driver_id": d} for d in driver_ids]
    ).to_dict()
    return {d: (r, c) for d, r, c in zip(driver_ids, response["rating"], response["city"], strict=True)}


def test_sensor_publishes_a_checked_partition_and_the_resource_reads_it_back(instance, offline_store, online):
    write_day(offline_store, 3, [(1, 8, 4.0, "oslo"), (1, 17, 4.5, "bergen"), (2, 9, 3.0, None), (3, 23, 5.0, "oslo")])
    defs = definitions(offline_store, online)
    assert materialize_view(defs, instance, "2025-01-03").success

    result = tick(defs, instance, cursor=None)
    assert [(r.partition_key, list(r.asset_selection)) for r in result.run_requests] == [
        ("2025-01-03", [online_asset_key(driver_quality)])
    ]
    assert all(run.success for run in run_requests(defs, instance, result.run_requests))

    partition = offline_store.read_partition(driver_quality, date(2025, 1, 3))
    expected = {
        row["driver_id"]: (row["rating"], row["city"])
        for row in latest_per_entity(driver_quality, partition).to_dicts()
    }
    assert expected == {1: (4.5, "bergen"), 2: (3.0, None), 3: (5.0, "oslo")}
    assert online_values(online, [1, 2, 3]) == expected
    assert instance.get_materialized_partitions(online_asset_key(driver_quality)) == {"2025-01-03"}


def test_a_second_tick_requests_nothing_new(instance, offline_store, online):
    write_day(offline_store, 3, [(1, 8, 4.0, "oslo")])
    defs = definitions(offline_store, online)
    materialize_view(defs, instance, "2025-01-03")
    first = tick(defs, instance, cursor=None)
    run_requests(defs, instance, first.run_requests)
    second = tick(defs, instance, cursor=first.cursor)
    assert second.run_requests == []
    assert len(first.run_requests) == 1


def test_a_partition_failing_its_blocking_check_is_not_published(instance, offline_store, online, redis_client):
    write_day(offline_store, 4, [(1, 8, 4.0, "oslo"), (2, 9, 9.9, "oslo")])
    defs = definitions(offline_store, online)
    assert not materialize_view(defs, instance, "2025-01-04").success
    result = tick(defs, instance, cursor=None)
    assert result.run_requests == []
    assert [key for key in redis_client.scan_iter() if b":{usage}:" not in key] == []  # usage counts aside
    assert online_values(online, [1]) == {1: (None, None)}


def test_every_partition_of_a_range_backfill_is_published_once_in_one_run(instance, offline_store, online):
    for day in (5, 6, 7):
        write_day(offline_store, day, [(1, day, float(day - 3), f"city{day}")])
    defs = definitions(offline_store, online)
    assert materialize_view(defs, instance, "2025-01-05", "2025-01-07").success
    result = tick(defs, instance, cursor=None)
    (request,) = result.run_requests
    assert request.partition_key is None
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2025-01-05", "2025-01-07")
    (run,) = run_requests(defs, instance, result.run_requests)
    assert run.success
    assert sorted(e.partition for e in run.get_asset_materialization_events()) == [
        "2025-01-05",
        "2025-01-06",
        "2025-01-07",
    ]
    assert online_values(online, [1]) == {1: (4.0, "city7")}


def test_a_late_backfill_does_not_overwrite_a_fresher_published_value(instance, offline_store, online):
    write_day(offline_store, 9, [(1, 12, 4.9, "new")])
    write_day(offline_store, 8, [(1, 12, 1.5, "old")])
    defs = definitions(offline_store, online)
    materialize_view(defs, instance, "2025-01-09")
    first = tick(defs, instance, cursor=None)
    run_requests(defs, instance, first.run_requests)
    materialize_view(defs, instance, "2025-01-08")
    second = tick(defs, instance, cursor=first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["2025-01-08"]
    assert all(run.success for run in run_requests(defs, instance, second.run_requests))
    assert online_values(online, [1]) == {1: (4.9, "new")}


def test_publishing_a_partition_that_failed_its_check_by_hand_is_refused(instance, offline_store, online):
    write_day(offline_store, 4, [(2, 9, 9.9, "oslo")])
    defs = definitions(offline_store, online)
    materialize_view(defs, instance, "2025-01-04")
    (run,) = run_requests(
        defs, instance, [dg.RunRequest(asset_selection=[online_asset_key(driver_quality)], partition_key="2025-01-04")]
    )
    assert not run.success
    error = run.failure_data_for_node("online__driver_quality").error.cause
    assert "2025-01-04 have not passed their blocking schema check" in error.message


@pytest.fixture
def own_redis():
    server = RedisServer().start()
    yield server
    server.stop()


def test_redis_down_fails_the_publish_run_and_a_rerun_after_recovery_publishes_everything(
    instance, offline_store, own_redis
):
    rows = [(d, h, 1.0 + (d * 7 + h) % 40 / 10, f"c{d % 5}") for d in range(1, 3001) for h in (6, 18)]
    write_day(offline_store, 10, rows)
    store = RedisOnlineStore(url=own_redis.url, repository=REPOSITORY, socket_timeout=1.0)
    defs = definitions(offline_store, store)
    materialize_view(defs, instance, "2025-01-10")
    requests = tick(defs, instance, cursor=None).run_requests

    client = redis.Redis.from_url(own_redis.url)
    client.config_set("maxmemory", str(client.info("memory")["used_memory"] + 200_000))
    client.config_set("maxmemory-policy", "noeviction")
    (failed,) = run_requests(defs, instance, requests)
    assert not failed.success
    error = failed.failure_data_for_node("online__driver_quality").error.cause
    assert "driver_quality" in error.message
    written_before_failure = client.dbsize()
    assert 0 < written_before_failure < 3000, "the failure happened mid-publish"
    assert instance.get_materialized_partitions(online_asset_key(driver_quality)) == set()

    own_redis.kill()
    (unreachable,) = run_requests(defs, instance, requests)
    assert not unreachable.success
    assert "driver_quality" in unreachable.failure_data_for_node("online__driver_quality").error.cause.message

    own_redis.start()
    store.close()
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("maxmemory", "0")
    (rerun,) = run_requests(defs, instance, requests)
    assert rerun.success
    partition = offline_store.read_partition(driver_quality, date(2025, 1, 10))
    latest = latest_per_entity(driver_quality, partition)
    expected = {row["driver_id"]: (row["rating"], row["city"]) for row in latest.to_dicts()}
    assert online_values(store, sorted(expected)) == expected
    assert instance.get_materialized_partitions(online_asset_key(driver_quality)) == {"2025-01-10"}


def test_a_30_partition_backfill_is_published_in_at_most_3_runs_and_a_second_tick_requests_nothing(
    instance, offline_store, online
):
    days = range(1, 31)
    for day in days:
        write_day(offline_store, day, [(day, 6, 1.0 + day / 10, f"city{day}"), (100, day % 24, 1.0 + day / 10, "all")])
    defs = definitions(offline_store, online)
    assert materialize_view(defs, instance, "2025-01-01", "2025-01-30").success

    first = tick(defs, instance, cursor=None)
    assert 1 <= len(first.run_requests) <= 3
    runs = run_requests(defs, instance, first.run_requests)
    assert all(run.success for run in runs)
    published = [e.partition for run in runs for e in run.get_asset_materialization_events()]
    assert sorted(published) == [f"2025-01-{day:02d}" for day in days]
    expected = {day: (1.0 + day / 10, f"city{day}") for day in days} | {100: (4.0, "all")}
    assert online_values(online, sorted(expected)) == expected

    assert tick(defs, instance, cursor=first.cursor).run_requests == []
    assert tick(defs, instance, cursor=None).run_requests == [], "a fresh sensor reads what is already published"


def test_a_failing_rerun_is_quarantined_and_readers_keep_the_partition_that_passed(
    instance, offline_store, online, redis_client
):
    write_day(offline_store, 3, [(1, 8, 4.0, "oslo"), (2, 9, 3.0, "bergen")])
    defs = definitions(offline_store, online)
    assert materialize_view(defs, instance, "2025-01-03").success
    run_requests(defs, instance, tick(defs, instance, cursor=None).run_requests)
    entities = pl.DataFrame({"driver_id": [1, 2], "event_timestamp": [at(3, 23), at(3, 23)]})
    features = ["driver_quality:rating", "driver_quality:city"]
    training = get_historical_features(entities, features, repository=repository, offline_store=offline_store)
    passed_rows = offline_store.read_partition(driver_quality, date(2025, 1, 3))

    write_day(offline_store, 3, [(1, 8, 4.0, "oslo"), (2, 9, 9.9, "bergen")])
    failed = materialize_view(defs, instance, "2025-01-03")
    assert not failed.success
    (evaluation,) = [e for e in failed.get_asset_check_evaluations() if e.check_name == "schema"]
    quarantined = evaluation.metadata["quarantine_path"].value
    assert quarantined == offline_store.quarantine_path(driver_quality, date(2025, 1, 3))
    assert pl.read_parquet(quarantined)["rating"].to_list() == [4.0, 9.9]
    (materialization,) = failed.get_asset_materialization_events()
    assert materialization.materialization.metadata["quarantined"].value is True
    assert offline_store.read_partition(driver_quality, date(2025, 1, 3)).equals(passed_rows)
    assert get_historical_features(entities, features, repository=repository, offline_store=offline_store).equals(
        training
    )
    assert tick(defs, instance, cursor=None).run_requests == []
    assert online_values(online, [1, 2]) == {1: (4.0, "oslo"), 2: (3.0, "bergen")}

    write_day(offline_store, 3, [(1, 8, 4.0, "oslo"), (2, 10, 4.9, "bergen")])
    assert materialize_view(defs, instance, "2025-01-03").success, "re-running after the fix promotes it"
    assert not offline_store.filesystem.exists(quarantined)
    assert offline_store.read_partition(driver_quality, date(2025, 1, 3))["rating"].to_list() == [4.0, 4.9]
    (request,) = tick(defs, instance, cursor=None).run_requests
    assert all(run.success for run in run_requests(defs, instance, [request]))
    assert online_values(online, [1, 2]) == {1: (4.0, "oslo"), 2: (4.9, "bergen")}
