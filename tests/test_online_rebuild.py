"""Disaster recovery: after FLUSHALL, rebuilding from the offline store gives back exactly what Redis served."""

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource
from feature_assets.orchestration.online_rebuild_job import REBUILD_JOB
from feature_assets.orchestration.project import build_definitions
from feature_assets.serving.cli import main as cli
from resources.online_store import RedisOnlineStore

DRIVER = Entity("driver", ["driver_id"])
EVENTS = ParquetSource("rebuild_events", "raw/rebuild/*.parquet", timestamp_field="event_timestamp")
TODAY = datetime.now(UTC).date()
FRESH = FeatureView(
    "fresh_stats",
    entities=[DRIVER],
    source=EVENTS,
    ttl="1d",
    schema=[Field("trips", pl.Int64), Field("city", pl.String)],
    start_date=TODAY - timedelta(days=5),
)
LASTING = FeatureView(
    "lasting_stats",
    entities=[DRIVER],
    source=EVENTS,
    schema=[Field("rating", pl.Float64)],
    start_date=TODAY - timedelta(days=5),
)
repository = FeatureRepository([FRESH, LASTING])
FEATURES = ["fresh_stats:trips", "fresh_stats:city", "lasting_stats:rating"]
ENTITIES = [{"driver_id": driver} for driver in range(60)]


def partition(view: FeatureView, day, rng: random.Random) -> pl.DataFrame:
    """Rows of one day: some drivers several times (ties on event time too), nulls, a spread of hours."""
    rows = []
    for _ in range(80):
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=rng.randrange(24 * 60))
        if moment > datetime.now(UTC) or abs(moment - (datetime.now(UTC) - timedelta(days=1))) < timedelta(minutes=10):
            continue  # no event in the future, none near the 1-day ttl edge (reads are seconds apart)
        row = {"driver_id": rng.randrange(60), "event_timestamp": moment, "created_timestamp": moment}
        row["created_timestamp"] += timedelta(seconds=rng.choice([0, 0, 5]))
        if view is FRESH:
            row |= {"trips": rng.choice([None, *range(20)]), "city": rng.choice([None, "a", "b"])}
        else:
            row |= {"rating": rng.choice([None, 1.5, 4.0, 5.0])}
        rows.append(row)
    frame = pl.DataFrame(rows, schema=view.output_schema)
    return frame.unique(subset=["driver_id", "event_timestamp", "created_timestamp"], keep="first")


@pytest.fixture
def published(redis_url, redis_client, offline_store):
    """Five days of both views written offline and published day by day, as the publishing sensor does."""
    rng = random.Random(11)
    online = RedisOnlineStore(url=redis_url, repository="tests.test_online_rebuild:repository", count_usage=False)
    for day in [TODAY - timedelta(days=offset) for offset in range(4, -1, -1)]:
        for view in (FRESH, LASTING):
            frame = partition(view, day, rng)
            offline_store.write_partition(view, day, frame)
            online.write_batch(view, frame)
    yield online
    online.close()


def served(online: RedisOnlineStore) -> tuple[dict, dict]:
    response = online.get_online_features(FEATURES, ENTITIES, include_timestamps=True)
    return response.columns, response.statuses


def test_the_rebuild_job_restores_every_read_after_flushall(published, redis_client, offline_store, instance):
    before = served(published)
    assert "present" in before[1]["trips"] and "not_found" in before[1]["trips"]
    redis_client.flushall()
    assert served(published) != before
    defs = build_definitions(repository, offline_store=offline_store, online_store=published)
    result = defs.get_job_def(REBUILD_JOB).execute_in_process(instance=instance)
    assert result.success
    assert served(published) == before


def test_the_rebuild_command_restores_every_read_and_refuses_unknown_views(
    published, redis_client, redis_url, offline_store, monkeypatch, capsys
):
    before = served(published)
    redis_client.flushall()
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OFFLINE_ROOT", offline_store.root)
    args = ["rebuild-online", "--repository", "tests.test_online_rebuild:repository", "--json"]
    assert cli.main(args) == 0
    assert served(published) == before
    assert cli.main([*args, "--view", "nope"]) == 1
    assert "unknown feature view 'nope'" in capsys.readouterr().err
