"""End to end under the real daemon: a GraphQL backfill, publishing by the sensor, quarantine, an alert, schedules."""

import time
from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl
import pytest

from feature_assets.language.feature_view import FeatureView
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore
from tests.fixtures.dagster_dev import (
    BACKFILLED_VIEWS,
    BAD_DAY,
    BAD_RATING,
    DagsterDev,
    demo_days,
)

pytestmark = pytest.mark.e2e

SENSOR_TIMEOUT_S = 240.0
ONLINE_PARTITIONS = """
query Online($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations { partition } } } }
"""
SCHEDULES = """
query Schedules($selector: RepositorySelector!) { repositoryOrError(repositorySelector: $selector) { __typename
  ... on Repository { schedules { name } } ... on PythonError { message } } }
"""
PASSING_DAYS = {
    view.name: set(demo_days()) - ({BAD_DAY} if view.name == "driver_profile" else set()) for view in BACKFILLED_VIEWS
}
"""The days each view should publish: every demo day, except driver_profile's deliberately bad one."""


def wait_for(condition: Callable[[], Any], timeout: float, what: str, dev: DagsterDev) -> Any:
    """Poll `condition` every 2 s until it returns something truthy; fail naming `what` with dagster dev's log."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s; dagster dev log:\n{dev.log_tail()}")
        time.sleep(2)
    return result


def published_days(dev: DagsterDev, view: FeatureView) -> set[date]:
    """Return the partitions of the view's online table that have a materialization (were published)."""
    result = dev.graphql(ONLINE_PARTITIONS, {"key": {"path": ["online", view.name]}})["assetOrError"]
    if result["__typename"] != "Asset":
        return set()
    return {date.fromisoformat(event["partition"]) for event in result["assetMaterializations"] if event["partition"]}


def latest_offline_row(offline_store: OfflineStore, view: FeatureView, day: date, key: str, entity: int) -> dict:
    """Return the entity's newest row in one stored (passed) partition of the view."""
    rows = offline_store.read_partition(view, day).filter(pl.col(key) == entity)
    return rows.sort("event_timestamp", "created_timestamp", nulls_last=True).row(-1, named=True)


def test_backfill_publish_quarantine_alert_and_schedules_under_the_daemon(
    dagster_dev: DagsterDev, demo_backfill: dict[str, Any]
) -> None:
    counts = {
        tuple(status["assetKey"]["path"]): status
        for status in demo_backfill["assetBackfillData"]["assetBackfillStatuses"]
    }
    for view in BACKFILLED_VIEWS:
        assert counts[(view.name,)]["numPartitionsTargeted"] == len(demo_days()), counts
        assert counts[(view.name,)]["numPartitionsInProgress"] == 0, counts
    assert demo_backfill["runs"], demo_backfill

    started = time.monotonic()
    for view in BACKFILLED_VIEWS:
        wait_for(
            lambda view=view: published_days(dagster_dev, view) >= PASSING_DAYS[view.name],
            SENSOR_TIMEOUT_S - (time.monotonic() - started),
            f"publish_online publishing {view.name} {sorted(PASSING_DAYS[view.name])}",
            dagster_dev,
        )
    dagster_dev.timings["publish_s"] = round(time.monotonic() - started, 1)
    for view in BACKFILLED_VIEWS:
        assert published_days(dagster_dev, view) == PASSING_DAYS[view.name]

    offline_store = OfflineStore(root=str(dagster_dev.offline_root))
    driver_profile = next(view for view in BACKFILLED_VIEWS if view.name == "driver_profile")
    assert set(offline_store.list_partitions(driver_profile)) == PASSING_DAYS["driver_profile"]
    quarantined = pl.read_parquet(offline_store.quarantine_path(driver_profile, BAD_DAY))
    assert quarantined.filter(pl.col("rating") == BAD_RATING).height == 10

    online = RedisOnlineStore(url=dagster_dev.redis_url)
    try:
        for view in BACKFILLED_VIEWS:
            key = view.join_keys[0]
            newest_passed = max(PASSING_DAYS[view.name])
            expected = latest_offline_row(offline_store, view, newest_passed, key, 1)
            features = [f"{view.name}:{name}" for name in view.feature_names]
            response = online.get_online_features(features, [{key: 1}])
            assert all(response.statuses[name] == ["present"] for name in view.feature_names), response.statuses
            for name in view.feature_names:
                assert response.columns[name][0] == pytest.approx(expected[name]), (view.name, name)
    finally:
        online.close()

    alert = wait_for(
        lambda: next(
            (
                alert
                for alert in dagster_dev.alerts.accepted
                if alert["kind"] == "check_failed"
                and alert["asset"] == "driver_profile"
                and alert["check"] == "schema"
                and alert["partition"] == BAD_DAY.isoformat()
            ),
            None,
        ),
        SENSOR_TIMEOUT_S,
        "the quality_alerts sensor POSTing the schema failure",
        dagster_dev,
    )
    assert alert["severity"] == "ERROR"

    selector = {"repositoryLocationName": dagster_dev.location, "repositoryName": dagster_dev.repository}
    repository = dagster_dev.graphql(SCHEDULES, {"selector": selector})["repositoryOrError"]
    schedules = {schedule["name"] for schedule in repository["schedules"]}
    assert {f"{view.name}_daily_schedule" for view in BACKFILLED_VIEWS} <= schedules
    print(f"\ndagster dev timings (s): {dagster_dev.timings}")
