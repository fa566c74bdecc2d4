"""The `feature-store` console script, run as users run it: tables by default, JSON for scripts, reliable exit codes."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("feature-store")
REPOSITORY = "tests.cli_views:repository"


@pytest.fixture
def environment(redis_url, redis_client, tmp_path):
    redis_client.flushdb()
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "OFFLINE_ROOT": str(tmp_path / "offline"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "FEATURE_REPOSITORY": REPOSITORY,
        "PYTHONPATH": str(ROOT),
    }


def feature_store(environment, *args: str) -> subprocess.CompletedProcess[str]:
    Path(environment["DAGSTER_HOME"]).mkdir(exist_ok=True)
    return subprocess.run([str(SCRIPT), *args], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_list_shows_every_kind_of_object_as_a_table_and_as_json(environment):
    table = feature_store(environment, "list")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["kind", "name", "owner", "description"]
    listed = json.loads(feature_store(environment, "list", "--json").stdout)
    assert {(row["kind"], row["name"]) for row in listed} == {
        ("entity", "driver"),
        ("source", "driver_stats_push"),
        ("source", "driver_history"),
        ("feature view", "driver_stats"),
        ("feature view", "driver_rating"),
        ("feature service", "ranking"),
    }


def test_search_finds_names_descriptions_and_features_and_exits_1_on_no_match(environment):
    found = json.loads(feature_store(environment, "search", "ACCEPTED", "--json").stdout)
    assert [(row["kind"], row["name"]) for row in found] == [("feature view", "driver_stats")]
    assert feature_store(environment, "search", "no such words").returncode == 1


def test_push_then_get_online_reads_the_pushed_values(environment, tmp_path):
    rows = tmp_path / "rows.csv"
    pl.DataFrame(
        {
            "driver_id": [7, 8],
            "event_timestamp": ["2025-01-07T10:00:00Z", "2025-01-07T11:00:00+01:00"],
            "conv_rate": [0.5, 0.25],
            "trips": [3, 4],
        }
    ).write_csv(rows)
    pushed = feature_store(environment, "push", str(rows), "--source", "driver_stats_push", "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)[0] | {"arrival": None} == {
        "view": "driver_stats",
        "rows": 2,
        "online written": 2,
        "offline files": 1,
        "arrival": None,
    }
    read = feature_store(
        environment, "get-online", "driver_stats", "--entity", "driver_id=8", "--entity", "driver_id=9", "--json"
    )
    assert read.returncode == 0, read.stderr
    first, second = json.loads(read.stdout)
    assert (first["driver_id"], first["conv_rate"], first["trips"]) == (8, 0.25, 4)
    assert first["statuses"] == {"conv_rate": "present", "trips": "present"}
    assert second["statuses"] == {"conv_rate": "not_found", "trips": "not_found"}
    assert first["driver_stats__event_timestamp"].startswith("2025-01-07T10:00:00")
    described = json.loads(feature_store(environment, "describe", "driver_stats", "--json").stdout)
    assert described["usage"] == {"conv_rate": 1, "trips": 1}
    service = feature_store(environment, "get-online", "ranking", "--entity", "driver_id=8", "--json")
    assert json.loads(service.stdout)[0]["statuses"] == {"conv_rate": "present", "rating": "not_found"}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["describe", "nope"], 1, "unknown feature view 'nope'"),
        (["get-online", "driver_stats", "--entity", "driver_id=x"], 1, "'driver_id' values ['x'] are not Int64"),
        (["get-online", "driver_stats", "--entity", "rider=1"], 1, "'rider' is neither a join key"),
        (["push", "missing.csv", "--view", "driver_stats"], 1, "missing.csv: no such file"),
        (["push", "rows.txt", "--view", "driver_stats"], 1, "unknown file type '.txt'"),
        (["lineage"], 2, "the following arguments are required: VIEW"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message_that_says_what_to_fix(environment, args, code, message):
    done = feature_store(environment, *args)
    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_push_of_rows_failing_a_check_writes_nothing_and_exits_1(environment, tmp_path):
    rows = tmp_path / "rows.json"
    rows.write_text(
        json.dumps([{"driver_id": 1, "event_timestamp": "2025-01-07T10:00:00", "conv_rate": 2.0, "trips": 1}])
    )
    done = feature_store(environment, "push", str(rows), "--view", "driver_stats")
    assert done.returncode == 1
    assert "conv_rate" in done.stderr and "nothing was written" in done.stderr
    assert not (tmp_path / "offline").exists()


def test_describe_and_lineage_read_the_definitions_instance_and_usage(environment):
    described = json.loads(feature_store(environment, "describe", "driver_stats", "--json").stdout)
    assert described["owner"] == "team:marketplace"
    assert described["ttl"] == "3650d"
    assert described["features"][0] == {
        "name": "conv_rate",
        "dtype": "Float64",
        "checks": [">= 0.0", "<= 1.0"],
        "description": "share of offers accepted",
    }
    assert described["latest partition"] == "none"
    assert described["usage"] == {}
    lineage = json.loads(feature_store(environment, "lineage", "driver_stats", "--json").stdout)
    assert {(row["direction"], row["asset"]) for row in lineage} == {
        ("upstream", "source/driver_stats_push"),
        ("downstream", "online/driver_stats"),
    }


VERSIONED = """
from datetime import datetime, UTC
import polars as pl
from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource

driver = Entity("driver", ["driver_id"])
source = ParquetSource("driver_log", "raw/driver_log/*.parquet", timestamp_field="ts")


def profile(rating_dtype, version):
    return FeatureView(
        "driver_profile", entities=[driver], source=source, version=version, ttl="3650d", start_date="2025-01-01",
        schema=[Field("rating", rating_dtype), Field("trips", pl.Int64)],
    )
"""


def test_a_breaking_change_is_refused_and_with_a_bump_both_versions_serve(environment, tmp_path, redis_url):
    from resources.online_store import RedisOnlineStore

    (tmp_path / "repo_v1.py").write_text(VERSIONED + "repository = FeatureRepository([profile(pl.Float64, 1)])\n")
    (tmp_path / "repo_retyped.py").write_text(VERSIONED + "repository = FeatureRepository([profile(pl.Int64, 1)])\n")
    (tmp_path / "repo_v2.py").write_text(
        VERSIONED + "v1 = profile(pl.Float64, 1)\n"
        "repository = FeatureRepository([profile(pl.Int64, 2)], previous_versions=[v1])\n"
    )
    environment = {
        **environment,
        "PYTHONPATH": f"{tmp_path}:{ROOT}",
        "FEATURE_SNAPSHOT": str(tmp_path / "applied.json"),
    }
    assert feature_store(environment, "apply", "--repository", "repo_v1:repository").returncode == 0

    refused = feature_store(environment, "plan", "--repository", "repo_retyped:repository")
    assert refused.returncode == 3
    assert "feature 'rating' retyped Float64 -> Int64 (breaking); bump version to 2" in refused.stderr
    assert feature_store(environment, "apply", "--repository", "repo_retyped:repository").returncode == 3

    bumped = feature_store(environment, "plan", "--repository", "repo_v2:repository", "--json")
    assert bumped.returncode == 0, bumped.stderr
    assert json.loads(bumped.stdout)["refused"] is False
    assert feature_store(environment, "apply", "--repository", "repo_v2:repository").returncode == 0

    sys.path.insert(0, str(tmp_path))
    try:
        import repo_v2
    finally:
        sys.path.remove(str(tmp_path))
    store = RedisOnlineStore(url=redis_url, repository="repo_v2:repository", count_usage=False)
    at = datetime(2025, 1, 7, tzinfo=UTC)
    for view, rating in ((repo_v2.v1, 4.5), (repo_v2.repository.views["driver_profile"], 5)):
        rows = {"driver_id": [1], "event_timestamp": [at], "created_timestamp": [at], "rating": [rating], "trips": [3]}
        store.write_batch(
            view, pl.DataFrame(rows).with_columns(pl.col("rating").cast(view.fields_by_name["rating"].dtype))
        )
    store.close()
    old = json.loads(
        feature_store(
            environment,
            "get-online",
            "driver_profile@v1",
            "--repository",
            "repo_v2:repository",
            "--entity",
            "driver_id=1",
            "--json",
        ).stdout
    )
    new = json.loads(
        feature_store(
            environment,
            "get-online",
            "driver_profile",
            "--repository",
            "repo_v2:repository",
            "--entity",
            "driver_id=1",
            "--json",
        ).stdout
    )
    assert (old[0]["rating"], new[0]["rating"]) == (4.5, 5)
