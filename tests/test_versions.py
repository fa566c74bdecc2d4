"""Versions of a view serve side by side (`view@v1:feature`), a service can pin one, and an old one can be retired."""

import json
import re
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
import redis
from polars.testing import assert_frame_equal

from feature_assets import (
    Aggregation,
    Entity,
    FeatureRepository,
    FeatureService,
    FeatureView,
    Field,
    ParquetSource,
    StreamSource,
)
from feature_assets.language.errors import DefinitionError, FeatureReferenceError
from feature_assets.language.feature_service import FeatureReference
from feature_assets.retrieval.point_in_time import get_historical_features
from feature_assets.serving.cli import main as cli
from feature_assets.serving.versions import retire_version
from resources.online_store import RedisOnlineStore

DRIVER = Entity("driver", ["driver_id"])
SOURCE = ParquetSource("version_test_events", "version_test/events/*.parquet", timestamp_field="event_timestamp")
STATS_V1 = FeatureView(
    "driver_stats",
    entities=[DRIVER],
    source=SOURCE,
    ttl="3650d",
    version=1,
    schema=[Field("rating", pl.Int64), Field("city", pl.String)],
)
STATS_V2 = FeatureView(
    "driver_stats",
    entities=[DRIVER],
    source=SOURCE,
    ttl="1d",
    version=2,
    schema=[Field("rating", pl.Float64), Field("trips", pl.Int64)],
)
PROFILE = FeatureView("driver_profile", entities=[DRIVER], source=SOURCE, schema=[Field("rating", pl.Int64)])
LIVE_SOURCE = StreamSource("version_test_trips", batch_source=SOURCE, partitions=2)
LIVE_V1, LIVE_V2 = (
    FeatureView(
        "driver_live",
        entities=[DRIVER],
        source=LIVE_SOURCE,
        aggregations=[Aggregation("fare", "sum", "10m")],
        step="5m",
        version=version,
    )
    for version in (1, 2)
)
PINNED = FeatureService("pinned", ["driver_stats@v1:rating", "driver_stats:rating"])
repository = FeatureRepository([STATS_V2, PROFILE, LIVE_V2], services=[PINNED], previous_versions=[STATS_V1, LIVE_V1])
REPOSITORY = "tests.test_versions:repository"
NOW = datetime.now(UTC).replace(microsecond=0)
DRIVERS = [1, 2, 3]
DAY = date(2025, 3, 4)


@pytest.fixture
def store(redis_url, redis_client):
    """A store on the emptied session server, resolving references in this module's repository."""
    online = RedisOnlineStore(url=redis_url, repository=REPOSITORY)
    yield online
    online.close()


def frame(view: FeatureView, event: datetime, values: dict[str, list]) -> pl.DataFrame:
    """Return offline rows of `view` for DRIVERS at `event`."""
    rows = {"driver_id": DRIVERS, "event_timestamp": [event] * 3, "created_timestamp": [event] * 3, **values}
    return pl.DataFrame(rows, schema=view.output_schema)


V1_ROWS = {"rating": [10, 20, 30], "city": ["Lyon", "Oslo", None]}
V2_ROWS = {"rating": [1.5, 2.5, 3.5], "trips": [7, 8, 9]}


def write_both(online: RedisOnlineStore) -> None:
    online.write_batch(STATS_V1, frame(STATS_V1, NOW - timedelta(hours=1), V1_ROWS))
    online.write_batch(STATS_V2, frame(STATS_V2, NOW - timedelta(hours=2), V2_ROWS))
    online.write_batch(PROFILE, frame(PROFILE, NOW, {"rating": [4, 5, 6]}))


ENTITIES = [{"driver_id": 3}, {"driver_id": 1}, {"driver_id": 99}]


# --- references and the repository ---------------------------------------------------------------------------------


def test_a_versioned_reference_round_trips_and_the_current_version_is_the_plain_view():
    reference = FeatureReference.parse("driver_stats@v1:rating")
    assert (reference.view, reference.version, reference.feature) == ("driver_stats", 1, "rating")
    assert str(reference) == "driver_stats@v1:rating"
    assert str(FeatureReference.parse("driver_stats:rating")) == "driver_stats:rating"
    assert repository.view("driver_stats@v2") is repository.view("driver_stats") is STATS_V2
    assert repository.view("driver_stats@v1") is STATS_V1
    assert repository.versions("driver_stats") == {1: STATS_V1, 2: STATS_V2}
    assert repository.previous_versions == {"driver_stats": {1: STATS_V1}, "driver_live": {1: LIVE_V1}}
    resolved = repository.resolve(["driver_stats@v2:rating", "driver_stats:trips", "driver_stats@v1:city"])
    assert resolved.keys == ("driver_stats", "driver_stats@v1")
    assert resolved.features == {"driver_stats": ("rating", "trips"), "driver_stats@v1": ("city",)}


@pytest.mark.parametrize("bad", ["driver_stats@1:rating", "driver_stats@v0:rating", "driver_stats@latest:rating"])
def test_a_malformed_version_is_rejected(bad):
    with pytest.raises(DefinitionError, match="must be written 'view:feature' \\(or 'view@v<N>:feature'"):
        FeatureReference.parse(bad)


def test_an_unknown_version_is_rejected_listing_the_known_ones():
    with pytest.raises(FeatureReferenceError, match="'driver_stats' has no version 3; its versions are \\[1, 2\\]"):
        repository.view("driver_stats@v3")
    with pytest.raises(FeatureReferenceError, match="no version 5"):
        FeatureRepository([STATS_V2], [FeatureService("old", ["driver_stats@v5:rating"])], previous_versions=[STATS_V1])
    with pytest.raises(FeatureReferenceError, match="unknown feature 'trips' in view 'driver_stats@v1'"):
        repository.resolve(["driver_stats@v1:trips"])


def test_previous_versions_must_be_lower_than_a_current_view_of_the_same_name_and_unique():
    with pytest.raises(
        DefinitionError, match="previous version v2 of FeatureView 'driver_stats': the current view is v2"
    ):
        FeatureRepository([STATS_V2], previous_versions=[STATS_V2])
    with pytest.raises(DefinitionError, match="previous version v2 .* current view is v1; .* bump the current view"):
        FeatureRepository([STATS_V1], previous_versions=[STATS_V2])
    with pytest.raises(DefinitionError, match="no current view is called 'driver_stats'; add the current view"):
        FeatureRepository([PROFILE], previous_versions=[STATS_V1])
    with pytest.raises(DefinitionError, match="v1 of FeatureView 'driver_stats' is listed twice"):
        FeatureRepository([STATS_V2], previous_versions=[STATS_V1, STATS_V1])


def test_previous_versions_are_not_assets():
    from feature_assets.orchestration.project import build_definitions

    graph = build_definitions(repository).resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert "driver_stats" in keys and not any("@" in key or "v1" in key for key in keys)


# --- online: side by side --------------------------------------------------------------------------------------------


def test_two_versions_read_side_by_side_equal_each_version_read_alone(store):
    write_both(store)
    both = store.get_online_features(
        ["driver_stats:rating", "driver_stats@v1:rating", "driver_stats@v1:city"],
        ENTITIES,
        full_feature_names=True,
        include_timestamps=True,
    )
    v1 = store.get_online_features(["driver_stats@v1:rating", "driver_stats@v1:city"], ENTITIES).to_dict()
    v2 = store.get_online_features(["driver_stats:rating"], ENTITIES).to_dict()
    assert v1 == {"driver_id": [3, 1, 99], "rating": [30, 10, None], "city": [None, "Lyon", None]}
    assert both.to_dict() == {
        "driver_id": [3, 1, 99],
        "driver_stats__rating": v2["rating"],
        "driver_stats@v1__rating": v1["rating"],
        "driver_stats@v1__city": v1["city"],
        "driver_stats__event_timestamp": [NOW - timedelta(hours=2)] * 2 + [None],
        "driver_stats@v1__event_timestamp": [NOW - timedelta(hours=1)] * 2 + [None],
    }
    assert both.dtypes["driver_stats__rating"] == pl.Float64 and both.dtypes["driver_stats@v1__rating"] == pl.Int64
    assert both.statuses["driver_stats@v1__rating"] == ["present", "present", "not_found"]


def test_the_current_version_named_explicitly_is_the_plain_view(store):
    write_both(store)
    explicit = store.get_online_features(["driver_stats@v2:rating", "driver_stats:rating"], ENTITIES)
    assert explicit.to_dict() == {"driver_id": [3, 1, 99], "rating": [3.5, 1.5, None]}


def test_two_versions_of_one_feature_without_full_names_ask_for_full_feature_names(store):
    with pytest.raises(FeatureReferenceError, match="'rating' of view 'driver_stats@v1' clashes .*full_feature_names"):
        store.get_online_features(["driver_stats:rating", "driver_stats@v1:rating"], ENTITIES)


def test_a_service_pinning_v1_reads_it_beside_the_current_version(store):
    write_both(store)
    response = store.get_online_features(repository.services["pinned"], ENTITIES, full_feature_names=True)
    assert response.to_dict() == {
        "driver_id": [3, 1, 99],
        "driver_stats@v1__rating": [30, 10, None],
        "driver_stats__rating": [3.5, 1.5, None],
    }


# --- offline: point in time ----------------------------------------------------------------------------------------


def test_historical_features_of_a_v1_reference_read_v1_partitions(offline_store):
    event = datetime(2025, 3, 4, 9, tzinfo=UTC)
    offline_store.write_partition(STATS_V1, DAY, frame(STATS_V1, event, V1_ROWS))
    offline_store.write_partition(STATS_V2, DAY, frame(STATS_V2, event, V2_ROWS))
    entities = pl.DataFrame({"driver_id": [2, 1, 7], "event_timestamp": [event + timedelta(hours=1)] * 3})
    options = {"offline_store": offline_store}
    versioned = get_historical_features(entities, ["driver_stats@v1:rating"], repository=repository, **options)
    alone = get_historical_features(
        entities, ["driver_stats:rating"], repository=FeatureRepository([STATS_V1]), **options
    )
    assert_frame_equal(versioned, alone)
    assert versioned["rating"].to_list() == [20, 10, None]
    both = get_historical_features(
        entities,
        ["driver_stats:rating", "driver_stats@v1:rating"],
        repository=repository,
        full_feature_names=True,
        **options,
    )
    assert both.select("driver_stats__rating", "driver_stats@v1__rating").rows() == [
        (2.5, 20),
        (1.5, 10),
        (None, None),
    ]
    with pytest.raises(FeatureReferenceError, match="pass full_feature_names=True"):
        get_historical_features(
            entities, ["driver_stats:rating", "driver_stats@v1:rating"], repository=repository, **options
        )


# --- retiring a version ----------------------------------------------------------------------------------------------


def online_keys(client: redis.Redis) -> set[str]:
    """The store's keys but its usage counters (the reads' counts, flushed in the background)."""
    return {key.decode() for key in client.scan_iter(count=1000) if b":{usage}:" not in key}


def test_retire_deletes_only_the_old_versions_online_keys_and_refuses_the_current_one(store, redis_client):
    write_both(store)
    with pytest.raises(DefinitionError, match="'driver_stats' v2 is the current version .* cannot be retired"):
        retire_version(repository, "driver_stats", 2, online_store=store)
    with pytest.raises(FeatureReferenceError, match="has no version 3"):
        retire_version(repository, "driver_stats", 3, online_store=store)
    before = online_keys(redis_client)
    report = retire_version(repository, "driver_stats", 1, online_store=store)
    assert (report.view, report.version, report.online_keys, report.offline_folder) == ("driver_stats", 1, 3, None)
    assert "remove FeatureView 'driver_stats' v1 from the repository's previous_versions" in report.next_step
    assert online_keys(redis_client) == {key for key in before if not key.endswith(":driver_stats:v1")}
    assert len(online_keys(redis_client)) == 6
    after = store.get_online_features(
        ["driver_stats:rating", "driver_stats@v1:rating"], ENTITIES, full_feature_names=True
    )
    assert after.to_dict()["driver_stats__rating"] == [3.5, 1.5, None]
    assert after.statuses["driver_stats@v1__rating"] == ["not_found"] * 3


def test_retire_with_the_offline_store_deletes_the_old_versions_folder(store, offline_store):
    event = datetime(2025, 3, 4, 9, tzinfo=UTC)
    for view, rows in ((STATS_V1, V1_ROWS), (STATS_V2, V2_ROWS)):
        offline_store.write_partition(view, DAY, frame(view, event, rows))
        offline_store.write_partition(view, DAY + timedelta(days=1), frame(view, event + timedelta(days=1), rows))
    report = retire_version(repository, "driver_stats", 1, online_store=store, offline_store=offline_store)
    assert report.offline_folder == offline_store.view_root(STATS_V1) + "/"
    assert (report.offline_partitions, report.offline_files) == (2, 2)
    assert offline_store.list_partitions(STATS_V1) == []
    assert offline_store.list_partitions(STATS_V2) == [DAY, DAY + timedelta(days=1)]


def test_retire_deletes_a_streaming_versions_streams_and_tiles(store, redis_client):
    events = pl.DataFrame(
        {
            "driver_id": DRIVERS,
            "event_timestamp": [NOW] * 3,
            "created_timestamp": [NOW] * 3,
            "fare": [1.0, 2.0, 3.0],
        }
    )
    store.append_events(LIVE_V1, events)
    store.append_events(LIVE_V2, events)
    redis_client.hset("fs:{driver_live:v1:p0}:t:i:1", "1", "x")
    redis_client.hset("fs:{driver_live:v2:p0}:t:i:1", "1", "x")
    before = online_keys(redis_client)
    retired = {key for key in before if key.startswith("fs:{driver_live:v1:p")}
    assert retired > {"fs:{driver_live:v1:p0}:t:i:1"}
    report = retire_version(repository, "driver_live", 1, online_store=store)
    assert report.online_keys == len(retired)
    assert online_keys(redis_client) == before - retired


def test_retire_on_a_cluster_scans_every_primary(redis_cluster_urls):
    masters = [redis.Redis.from_url(url) for url in redis_cluster_urls]
    for master in masters:
        master.flushall()
    url = "redis+cluster://" + redis_cluster_urls[0].split("://")[1]
    store = RedisOnlineStore(url=url, repository=REPOSITORY)
    entities = list(range(200))
    event = NOW - timedelta(hours=1)
    rows = {"rating": entities, "city": ["x"] * 200}
    v1 = pl.DataFrame(
        {"driver_id": entities, "event_timestamp": [event] * 200, "created_timestamp": [event] * 200, **rows},
        schema=STATS_V1.output_schema,
    )
    store.write_batch(STATS_V1, v1)
    store.write_batch(STATS_V2, frame(STATS_V2, event, V2_ROWS))
    assert all(any(key.endswith(b":driver_stats:v1") for key in master.scan_iter(count=1000)) for master in masters)
    report = retire_version(repository, "driver_stats", 1, online_store=store)
    store.close()
    assert report.online_keys == 200
    remaining = [key.decode() for master in masters for key in master.scan_iter(count=1000) if b":{usage}:" not in key]
    assert sorted(remaining) == [f"fs:{{i:{d}}}:driver_stats:v2" for d in DRIVERS]


# --- the command line ------------------------------------------------------------------------------------------------


@pytest.fixture
def command_line(monkeypatch, redis_url, offline_store):
    """Run `feature-store` with only the versions noun, on the session Redis and the test's offline store."""
    monkeypatch.setattr(cli, "NOUNS", ("versions",))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OFFLINE_ROOT", offline_store.root)
    return lambda *args: cli.main([*args, "--repository", REPOSITORY])


def test_the_versions_command_lists_every_version(command_line, offline_store, capsys):
    offline_store.write_partition(STATS_V1, DAY, frame(STATS_V1, datetime(2025, 3, 4, 9, tzinfo=UTC), V1_ROWS))
    assert command_line("versions", "driver_stats", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {
            "version": 1,
            "current": False,
            "features": ["rating", "city"],
            "ttl": 3650 * 86400.0,
            "offline partitions": 1,
        },
        {"version": 2, "current": True, "features": ["rating", "trips"], "ttl": 86400.0, "offline partitions": 0},
    ]
    assert command_line("versions", "driver_stats") == 0
    table = capsys.readouterr().out
    assert "versions of driver_stats" in table and "3650d" in table and "rating, trips" in table


def test_the_retire_command_prints_its_report_and_refuses_the_current_version(
    command_line, store, redis_client, offline_store, capsys
):
    write_both(store)
    offline_store.write_partition(STATS_V1, DAY, frame(STATS_V1, datetime(2025, 3, 4, 9, tzinfo=UTC), V1_ROWS))
    assert command_line("retire", "driver_stats", "--version", "2") == 3
    assert "v2 is the current version" in capsys.readouterr().err
    assert command_line("retire", "driver_stats", "--version", "1", "--offline", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["online keys deleted"] == 3 and report["offline partitions deleted"] == 1
    assert "previous_versions" in report["next step"]
    assert not any(key.endswith(":driver_stats:v1") for key in online_keys(redis_client))
    assert command_line("retire", "driver_stats", "--version", "1") == 0
    printed = capsys.readouterr().out
    assert re.search(r"online keys deleted\s+0\s*\n", printed) and "offline" not in printed
