"""Online read usage: counted in memory, added to Redis exactly, kept across outages, observed by a Dagster sensor."""

import json
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import redis
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.sensor import execute_sensor_iteration
from redis.cluster import RedisCluster

from feature_assets.language.asset_keys import online_asset_key
from feature_assets.language.errors import OnlineStoreError
from feature_assets.orchestration.project import build_definitions
from feature_assets.orchestration.usage_observations import NEW_READS, READS, USAGE_SENSOR, feature_reads_label
from resources.embedded_redis import RedisServer
from resources.online_store import RedisOnlineStore
from resources.read_usage import ReadUsage, daily_feature_reads, usage_counts
from tests.publishing_views import driver_quality, repository

ROOT = Path(__file__).resolve().parent.parent
THREADS = 8
READS_PER_THREAD = 2000


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, database 9: other tests' stores flush their own reads to database 0 meanwhile."""
    return redis_server.url.rsplit("/", 1)[0] + "/9"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A raw client on database 9, emptied before the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


def read_from_threads(usage: ReadUsage) -> None:
    """Record READS_PER_THREAD reads in each of THREADS threads: caller by thread, every third through a service."""

    def reads(thread: int) -> None:
        for index in range(READS_PER_THREAD):
            service = "ranking" if index % 3 == 0 else None
            usage.record(f"caller_{thread % 2}", ["driver_quality:rating", "driver_quality:city"], service, 5)
            usage.record("batch", ["driver_quality:rating", "other_view:score"], None, 100)

    workers = [threading.Thread(target=reads, args=(thread,)) for thread in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def assert_every_read_counted(client: redis.Redis | RedisCluster) -> None:
    counts = usage_counts(client)
    reads = THREADS * READS_PER_THREAD
    assert counts.features == {
        "driver_quality:rating": 2 * reads,
        "driver_quality:city": reads,
        "other_view:score": reads,
    }
    assert counts.views == {"driver_quality": 2 * reads, "other_view": reads}
    assert counts.services == {"ranking": THREADS * len(range(0, READS_PER_THREAD, 3))}
    assert counts.callers == {"caller_0": reads // 2, "caller_1": reads // 2, "batch": reads}
    assert counts.entity_rows == {"caller_0": 5 * reads // 2, "caller_1": 5 * reads // 2, "batch": 100 * reads}
    assert counts.reads == 2 * reads


def test_reads_counted_from_several_threads_while_flushing_add_up_exactly(redis_client):
    usage = ReadUsage(redis_client, flush_every=0.01)
    usage.start()
    read_from_threads(usage)
    usage.close()
    assert_every_read_counted(redis_client)
    today = datetime.now(UTC).date()
    by_day = [daily_feature_reads(redis_client, day) for day in (today - timedelta(days=1), today)]
    assert sum(day.get("driver_quality:city", 0) for day in by_day) == THREADS * READS_PER_THREAD
    assert 0 < redis_client.ttl(f"fs:{{usage}}:features:{today.isoformat()}") <= 90 * 86400


def test_reads_add_up_exactly_on_a_redis_cluster(redis_cluster_urls):
    client = RedisCluster.from_url(redis_cluster_urls[0])
    try:
        for key in client.scan_iter(match="fs:{usage}:*", target_nodes=RedisCluster.ALL_NODES):
            client.delete(key)
        usage = ReadUsage(client)
        read_from_threads(usage)
        usage.flush()
        assert_every_read_counted(client)
    finally:
        client.close()


def test_a_flush_while_redis_is_down_keeps_the_counts_and_the_next_flush_adds_them():
    server = RedisServer().start()
    client = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
    try:
        usage = ReadUsage(client, key_prefix="svc")
        usage.record("app", ["driver_quality:rating"], "ranking", 3)
        server.kill()
        usage.record("app", ["driver_quality:rating", "driver_quality:city"], None, 2)
        with pytest.raises(OnlineStoreError, match="flushing 2 counted reads to Redis failed .* they are kept"):
            usage.flush()
        usage.record("app", ["driver_quality:city"], None, 1)
        server.start()
        usage.flush()
        counts = usage_counts(client, key_prefix="svc")
        assert counts.features == {"driver_quality:rating": 2, "driver_quality:city": 2}
        assert counts.services == {"ranking": 1}
        assert counts.callers == {"app": 3}
        assert counts.entity_rows == {"app": 6}
        usage.flush()
        assert usage_counts(client, key_prefix="svc") == counts
    finally:
        client.close()
        server.stop()


@pytest.fixture
def usage_definitions(redis_url, redis_client) -> dg.Definitions:
    online = RedisOnlineStore(url=redis_url, repository="tests.publishing_views:repository")
    return build_definitions(repository, online_store=online)


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    sensor = defs.resolve_sensor_def(USAGE_SENSOR)
    return sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources, cursor=cursor)
    )


def test_the_sensor_observes_an_online_view_with_its_reads_only_when_they_changed(
    usage_definitions, redis_client, instance
):
    first = tick(usage_definitions, instance, None)
    assert first.asset_events == []
    assert first.skip_message == "no online view was read since the last tick"

    usage = ReadUsage(redis_client)
    for _ in range(3):
        usage.record("app", ["driver_quality:rating"], None, 1)
    usage.flush()
    second = tick(usage_definitions, instance, first.cursor)
    [observation] = second.asset_events
    assert observation.asset_key == online_asset_key(driver_quality)
    assert {label: value.value for label, value in observation.metadata.items()} == {
        READS: 3,
        NEW_READS: 3,
        feature_reads_label("rating"): 3,
        feature_reads_label("city"): 0,
    }
    assert json.loads(second.cursor) == {"driver_quality": 3}

    assert tick(usage_definitions, instance, second.cursor).asset_events == []

    usage.record("app", ["driver_quality:rating", "driver_quality:city"], None, 1)
    usage.flush()
    [later] = tick(usage_definitions, instance, second.cursor).asset_events
    assert later.metadata[READS].value == 4
    assert later.metadata[NEW_READS].value == 1
    assert later.metadata[feature_reads_label("city")].value == 1


def test_the_sensor_daemon_records_the_observations_on_the_instance(
    redis_url, redis_client, instance, monkeypatch, tmp_path
):
    monkeypatch.setenv("REDIS_URL", redis_url)
    definitions = tmp_path / "usage_definitions.py"
    definitions.write_text(
        "from feature_assets.orchestration.project import build_definitions\n"
        "from tests.publishing_views import repository\n\n"
        "defs = build_definitions(repository)\n"
    )
    usage = ReadUsage(redis_client)
    usage.record("app", ["driver_quality:city"], None, 7)
    usage.flush()
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable, python_file=str(definitions), attribute="defs", working_directory=str(ROOT)
        ),
        location_name="usage",
    )
    with create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance) as workspace:
        [remote_repository] = workspace.create_request_context().get_code_location("usage").get_repositories().values()
        for remote_sensor in remote_repository.get_sensors():
            if remote_sensor.name != USAGE_SENSOR:
                instance.stop_sensor(remote_sensor.get_remote_origin_id(), remote_sensor.selector_id, remote_sensor)
        list(execute_sensor_iteration(workspace, logging.getLogger("test"), None, None))

    [observed] = instance.fetch_observations(online_asset_key(driver_quality), limit=10).records
    metadata = observed.asset_observation.metadata
    assert metadata[READS].value == 1
    assert metadata[feature_reads_label("city")].value == 1
    assert metadata[feature_reads_label("rating")].value == 0


def test_the_python_resource_counts_its_reads_per_feature_service_and_caller(redis_url, redis_client):
    from tests import online_views

    store = RedisOnlineStore(url=redis_url, repository="tests.online_views:repository", caller="ranker")
    store.get_online_features(["driver_stats:trips_today", "driver_stats:rating"], [{"driver_id": 1}])
    store.get_online_features(online_views.driver_ranking, [{"driver_id": 1}, {"driver_id": 2}])
    store.get_online_features(["driver_stats:trips_today"], [{"driver_id": 3}], caller="batch-scorer")
    store.close()

    counts = usage_counts(redis_client)
    assert counts.callers == {"ranker": 2, "batch-scorer": 1}
    assert counts.entity_rows == {"ranker": 3, "batch-scorer": 1}
    assert counts.services == {"driver_ranking": 1}
    assert counts.features == {
        "driver_stats:trips_today": 3,
        "driver_stats:rating": 2,
        "driver_profile:vehicle_count": 1,
    }
