"""Materializing views over a range from outside the UI: real Dagster runs on the instance, through its run queue.

The code location is `tests.mixed_start_views` (three tiny views starting on three days), loaded from a workspace
file in the test's folder by a real code server; runs execute in their own processes as under `dagster dev`.
"""

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from feature_assets.language.asset_keys import schema_check_key, view_asset_key
from feature_assets.language.errors import DefinitionError, FeatureReferenceError
from feature_assets.serving.cli import main as cli_main
from feature_assets.serving.cli.output import FAILED, OK, UNAVAILABLE, USAGE
from feature_assets.serving.materialize import (
    LAUNCHED_BY_TAG,
    launch_materialization,
    materialization_workspace,
    run_states,
    wait_for_runs,
    workspace_target,
)
from resources.offline_store import OfflineStore
from tests.mixed_start_views import repository

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "tests.mixed_start_views:repository"
RUN_TIMEOUT_S = 300
DEFAULT_COORDINATOR = "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"


def days(first: int, last: int) -> list[str]:
    return [date(2025, 1, day).isoformat() for day in range(first, last + 1)]


def write_driver_events(store: OfflineStore) -> None:
    """Write one event a day from 2025-01-01 to 2025-01-14 to the views' source."""
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    frame = pl.DataFrame(
        {"driver_id": [1] * 14, "ts": [start + timedelta(days=d) for d in range(14)], "rating": [4.0] * 14},
        schema={"driver_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "rating": pl.Float64},
    )
    store.write_file("raw/driver_events/all.parquet", frame)


@pytest.fixture
def dagster_home(tmp_path, monkeypatch, offline_store):
    """Return a function making DAGSTER_HOME a fresh instance folder, queued (the default) or launching at once.

    Its code servers are waited for on shutdown, so no process outlives the test.
    """

    def make(*, queued: bool) -> Path:
        home = tmp_path / "dagster_home"
        home.mkdir()
        config = "telemetry:\n  enabled: false\ncode_servers:\n  wait_for_local_processes_on_shutdown: true\n"
        (home / "dagster.yaml").write_text(config + ("" if queued else DEFAULT_COORDINATOR))
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        monkeypatch.setenv("OFFLINE_ROOT", offline_store.root)
        return home

    return make


@pytest.fixture
def workspace_file(tmp_path) -> Path:
    """A Dagster workspace file loading the test code location, as the project's workspace.yaml loads the demo."""
    path = tmp_path / "workspace.yaml"
    path.write_text(
        "load_from:\n  - python_module:\n      module_name: tests.mixed_start_views\n      attribute: defs\n"
        f"      working_directory: {ROOT}\n"
    )
    return path


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setattr(cli_main, "NOUNS", ("materialize",))
    return cli_main.main


def test_an_unknown_view_is_refused_naming_the_known_ones(instance):
    with pytest.raises(FeatureReferenceError, match=r"unknown feature view 'since_never'; known views: \[.*'since"):
        launch_materialization(
            ["since_never"], date(2025, 1, 10), date(2025, 1, 11), repository=repository, instance=instance
        )


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (date(2025, 1, 8), date(2025, 1, 11), r"'since_the_tenth': 2025-01-08 to 2025-01-11 is outside"),
        (date(2025, 1, 10), datetime.now(UTC).date(), r"choose days from 2025-01-10 to \d{4}-\d\d-\d\d"),
        (date(2025, 1, 12), date(2025, 1, 11), "end 2025-01-11 is before start 2025-01-12"),
    ],
)
def test_a_range_outside_the_view_s_partitions_is_refused_naming_the_valid_range(instance, start, end, message):
    with pytest.raises(DefinitionError, match=message):
        launch_materialization(["since_the_tenth"], start, end, repository=repository, instance=instance)


def test_the_project_s_workspace_file_is_the_default_and_a_folder_without_one_is_refused(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    assert workspace_target().paths == [str(ROOT / "workspace.yaml")]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DefinitionError, match="no Dagster workspace in .*: run from the project folder"):
        workspace_target()


def test_views_become_queued_runs_that_the_daemon_starts_and_that_materialize_their_partitions(
    dagster_home, workspace_file, offline_store
):
    dagster_home(queued=True)
    write_driver_events(offline_store)
    with DagsterInstance.get() as instance, materialization_workspace(instance, workspace_file) as workspace:
        runs = launch_materialization(
            ["since_the_fifth", "since_the_tenth"],
            date(2025, 1, 10),
            date(2025, 1, 12),
            repository=repository,
            instance=instance,
            workspace=workspace,
        )
        assert [(run.view, run.partitions) for run in runs] == [
            ("since_the_fifth", tuple(days(10, 12))),
            ("since_the_tenth", tuple(days(10, 12))),
        ]
        assert set(run_states(instance, [run.run_id for run in runs]).values()) == {"QUEUED"}
        for run in runs:
            tags = instance.get_run_by_id(run.run_id).tags
            assert tags[ASSET_PARTITION_RANGE_START_TAG] == "2025-01-10"
            assert tags[ASSET_PARTITION_RANGE_END_TAG] == "2025-01-12"
            assert tags[LAUNCHED_BY_TAG] == "materialize"

        with QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon:
            list(daemon.run_iteration(workspace))
        final = wait_for_runs(instance, runs, timeout=RUN_TIMEOUT_S)

        assert set(final.states.values()) == {"SUCCESS"}
        assert final.materialized == {run.run_id: 3 for run in runs}
        for name in ("since_the_fifth", "since_the_tenth"):
            view = repository.view(name)
            assert sorted(instance.get_materialized_partitions(view_asset_key(view))) == days(10, 12)
            assert offline_store.list_partitions(view) == [date(2025, 1, d) for d in (10, 11, 12)]
            checks = instance.event_log_storage.get_asset_check_execution_history(schema_check_key(view), limit=10)
            assert sorted(record.partition for record in checks) == days(10, 12)
        assert repository.view("since_january_first").name not in {run.view for run in runs}
        assert not instance.get_materialized_partitions(view_asset_key(repository.view("since_january_first")))


def test_the_cli_waits_with_a_progress_bar_and_exits_zero_when_every_run_succeeded(
    dagster_home, workspace_file, offline_store, cli, capsys
):
    dagster_home(queued=False)
    write_driver_events(offline_store)
    arguments = ["materialize", "since_the_tenth", "--start", "2025-01-11", "--end", "2025-01-12"]
    code = cli([*arguments, "--repository", REPOSITORY, "--workspace", str(workspace_file), "--json"])
    captured = capsys.readouterr()
    assert code == OK, captured.err
    [run] = json.loads(captured.out)
    assert run["view"] == "since_the_tenth"
    assert run["partitions"] == days(11, 12)
    assert run["status"] == "SUCCESS"
    assert "2/2" in captured.err
    assert offline_store.list_partitions(repository.view("since_the_tenth")) == [date(2025, 1, 11), date(2025, 1, 12)]


def test_the_cli_exits_one_naming_the_runs_that_failed(dagster_home, workspace_file, cli, capsys):
    dagster_home(queued=False)
    arguments = ["materialize", "since_the_tenth", "--start", "2025-01-11", "--end", "2025-01-11"]
    code = cli([*arguments, "--repository", REPOSITORY, "--workspace", str(workspace_file), "--json"])
    captured = capsys.readouterr()
    [run] = json.loads(captured.out)
    assert code == FAILED
    assert run["status"] == "FAILURE"
    assert f"1 of 1 runs did not succeed: {run['run_id']}" in captured.err


def test_the_cli_without_dagster_home_says_to_set_it(cli, capsys):
    code = cli(["materialize", "since_the_tenth", "--start", "2025-01-11", "--end", "2025-01-12"])
    assert code == USAGE
    assert "DAGSTER_HOME is not set: set it" in capsys.readouterr().err


def test_the_cli_refuses_to_wait_on_a_run_queue_no_daemon_serves(dagster_home, cli, capsys):
    dagster_home(queued=True)
    arguments = ["materialize", "since_the_tenth", "--start", "2025-01-11", "--end", "2025-01-12"]
    assert cli([*arguments, "--repository", REPOSITORY]) == UNAVAILABLE
    assert "no Dagster daemon is running to start them" in capsys.readouterr().err
