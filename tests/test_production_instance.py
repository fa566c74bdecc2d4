"""The production instance (deploy/dagster.yaml) under the real daemon: a 30-partition backfill on PostgreSQL.

The instance is deploy/dagster.yaml with the run queue limited to 2, pointing at a private PostgreSQL cluster. The
code location is a definitions module the test writes: one view, 30 daily partitions, 6 partitions per run, over
generated Parquet. `dagster-daemon run` (its own process group) launches the backfill's 5 runs through the queue.
Every partition must land exactly once and no more than 2 runs may ever be in progress at once.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
import yaml
from dagster import AssetRecordsFilter, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster_postgres import PostgresRunStorage

from feature_assets.language.asset_keys import view_asset_key
from resources.offline_store import OfflineStore
from tests.fixtures.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
DAEMON = Path(sys.executable).parent / "dagster-daemon"
PARTITIONS = [(date(2025, 1, 1) + timedelta(days=d)).isoformat() for d in range(30)]
PARTITIONS_PER_RUN = 6
MAX_CONCURRENT_RUNS = 2
BACKFILL_TIMEOUT_S = 300
# Steps run inside the run's process instead of one more Python process per step: one interpreter start per run.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
FINISHED = {BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED, BulkActionStatus.FAILED}
FINISHED_EVENTS = {DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED}

DEFINITIONS = f'''"""A code location with one daily view, backfilled {PARTITIONS_PER_RUN} partitions per run."""

import polars as pl

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource
from feature_assets.orchestration.project import build_definitions

driver = Entity("driver", ["driver_id"])
driver_rating = FeatureView(
    "driver_rating",
    entities=[driver],
    source=ParquetSource("driver_rating_events", "raw/driver_rating/*.parquet", timestamp_field="ts"),
    schema=[Field("rating", pl.Float64, nullable=False, min_value=1.0, max_value=5.0)],
    online=False,
    start_date="{PARTITIONS[0]}",
    partitions_per_run={PARTITIONS_PER_RUN},
)
repository = FeatureRepository([driver_rating])
defs = build_definitions(repository)
'''


def write_rating_events(store: OfflineStore) -> None:
    """Write 3 drivers' ratings, one event each per day, over the 30 days."""
    start = datetime(2025, 1, 1, 9, tzinfo=UTC)
    rows = [(driver, start + timedelta(days=day, hours=driver)) for day in range(30) for driver in range(3)]
    frame = pl.DataFrame(
        {
            "driver_id": [driver for driver, _ in rows],
            "ts": [ts for _, ts in rows],
            "rating": [1.0 + (index % 40) / 10 for index in range(len(rows))],
        },
        schema={"driver_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "rating": pl.Float64},
    )
    store.write_file("raw/driver_rating/all.parquet", frame)


def instance_config(postgres: PostgresServer) -> dict:
    """Return deploy/dagster.yaml with the run queue limited to 2 and dequeued every second."""
    config = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    config["concurrency"]["runs"]["max_concurrent_runs"] = MAX_CONCURRENT_RUNS
    config["run_coordinator"] = {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {"dequeue_interval_seconds": 1},
    }
    return config


@pytest.fixture
def production_home(tmp_path, monkeypatch, postgres_server, offline_store) -> Path:
    """A DAGSTER_HOME holding the production instance config, with the Postgres and store variables set."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config(postgres_server)))
    (tmp_path / "backfill_views.py").write_text(DEFINITIONS)
    (tmp_path / "workspace.yaml").write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_file": {
                            "relative_path": str(tmp_path / "backfill_views.py"),
                            "attribute": "defs",
                            "location_name": "production_backfill",
                            "working_directory": str(ROOT),
                        }
                    }
                ]
            }
        )
    )
    for name, value in {**postgres_server.environment, "OFFLINE_ROOT": offline_store.root}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def daemon(production_home) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on the test workspace in its own process group; the whole group is stopped after."""
    log = (production_home / "daemon.log").open("w")
    process = subprocess.Popen(
        [str(DAEMON), "run", "-w", str(production_home.parent / "workspace.yaml")],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            log.close()


def load_definitions(path: Path) -> ModuleType:
    """Import the test-written definitions module from its file."""
    spec = importlib.util.spec_from_file_location("backfill_views", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_progress_intervals(instance: DagsterInstance) -> list[tuple[float, float]]:
    """Return, per launched run, when the queue launched it (STARTING) until it finished (or now, if running)."""
    intervals = []
    for record in instance.get_run_records():
        events = instance.all_logs(record.dagster_run.run_id, of_type={DagsterEventType.RUN_STARTING, *FINISHED_EVENTS})
        launched = [event.timestamp for event in events if event.dagster_event_type == DagsterEventType.RUN_STARTING]
        finished = [event.timestamp for event in events if event.dagster_event_type in FINISHED_EVENTS]
        if launched:
            intervals.append((min(launched), max(finished, default=time.time())))
    return intervals


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Return the largest number of [start, end] intervals in progress at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    in_progress = peak = 0
    for _, change in events:
        in_progress += change
        peak = max(peak, in_progress)
    return peak


def wait_for_backfill(instance: DagsterInstance, backfill_id: str, daemon: subprocess.Popen) -> PartitionBackfill:
    """Poll the backfill until it finishes, failing if the daemon exits or the timeout passes."""
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    while True:
        backfill = instance.get_backfill(backfill_id)
        if backfill.status in FINISHED:
            return backfill
        assert daemon.poll() is None, f"dagster-daemon exited with {daemon.returncode}; see daemon.log"
        assert time.monotonic() < deadline, f"backfill still {backfill.status} after {BACKFILL_TIMEOUT_S}s"
        time.sleep(1)


@pytest.mark.e2e
def test_a_30_partition_backfill_under_the_daemon_lands_every_partition_once_with_at_most_2_runs_at_once(
    production_home, offline_store, daemon
):
    write_rating_events(offline_store)
    definitions = load_definitions(production_home.parent / "backfill_views.py")
    view = definitions.repository.view("driver_rating")
    started = time.monotonic()
    with DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        backfill_id = str(uuid.uuid4())[:8]
        instance.add_backfill(
            PartitionBackfill.from_asset_partitions(
                backfill_id=backfill_id,
                asset_graph=definitions.defs.resolve_asset_graph(),
                partition_names=PARTITIONS,
                asset_selection=[view_asset_key(view)],
                backfill_timestamp=time.time(),
                tags={},
                dynamic_partitions_store=instance,
                all_partitions=False,
                title="production instance test",
                description=None,
                run_config=IN_PROCESS,
            )
        )
        while not instance.get_daemon_heartbeats():
            assert daemon.poll() is None, f"dagster-daemon exited with {daemon.returncode}; see daemon.log"
            time.sleep(0.5)
        daemon_ready = time.monotonic() - started
        backfill = wait_for_backfill(instance, backfill_id, daemon)
        backfill_duration = time.monotonic() - started

        runs = instance.get_run_records(RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        materialized = Counter(
            record.partition_key
            for record in instance.fetch_materializations(
                AssetRecordsFilter(asset_key=view_asset_key(view)), limit=1000
            ).records
        )
        peak = max_overlap(in_progress_intervals(instance))
        print(
            f"\ndaemon heartbeat {daemon_ready:.1f}s after the test began, backfill done after "
            f"{backfill_duration:.1f}s, {len(runs)} runs, at most {peak} in progress at once"
        )

    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS
    assert len(runs) == len(PARTITIONS) // PARTITIONS_PER_RUN
    assert {record.dagster_run.status for record in runs} == {DagsterRunStatus.SUCCESS}
    assert materialized == dict.fromkeys(PARTITIONS, 1)
    assert 1 <= peak <= MAX_CONCURRENT_RUNS
    assert offline_store.list_partitions(view) == [date.fromisoformat(key) for key in PARTITIONS]
