"""The demo's main job: generate raw ride-hailing data, materialize every feature view, report what was built."""

import argparse
import os
from datetime import timedelta

import dagster as dg
import polars as pl

from feature_assets.demo_data import DEMO_START, DemoSize, write_demo_sources
from feature_assets.project import build_definitions
from feature_assets.view_assets import schema_check_key
from feature_assets.views import repository
from resources.offline_store import OfflineStore


def demo_instance() -> dg.DagsterInstance:
    """Return the persistent instance under DAGSTER_HOME (so `dagster dev` shows the runs), else an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def materialize_views(defs: dg.Definitions, instance: dg.DagsterInstance, days: int) -> dg.ExecuteInProcessResult:
    """Backfill every feature view over the demo days in one run."""
    last = DEMO_START + timedelta(days=days - 1)
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": DEMO_START.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )


def report_views(offline_store: OfflineStore, instance: dg.DagsterInstance) -> list[str]:
    """Return one line per view: partitions written, rows, and schema-check results."""
    lines = []
    for view in repository.views.values():
        partitions = offline_store.list_partitions(view)
        rows = offline_store.scan_partitions(view).select(pl.len()).collect().item()
        history = instance.event_log_storage.get_asset_check_execution_history(schema_check_key(view), limit=1000)
        passed = sum(1 for record in history if record.status.value == "SUCCEEDED")
        lines.append(
            f"  {view.name:<20} {len(partitions):>3} partitions  {rows:>9,} rows  "
            f"schema check passed {passed}/{len(history)}  -> {offline_store.view_root(view)}"
        )
    return lines


def main() -> None:
    """Run the demo end to end on the embedded defaults (or OFFLINE_ROOT/REDIS_URL when set)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=DemoSize.trips)
    parser.add_argument("--days", type=int, default=DemoSize.days)
    arguments = parser.parse_args()

    offline_store = OfflineStore.from_env()
    size = DemoSize(trips=arguments.rows, days=arguments.days)
    print(f"1. generating {size.trips:,} trips over {size.days} days under {offline_store.resolve('raw')}")
    counts = write_demo_sources(offline_store, size)
    print("   " + ", ".join(f"{name}: {rows:,} rows" for name, rows in counts.items()))

    defs = build_definitions(repository, offline_store)
    instance = demo_instance()
    print(f"2. materializing {len(repository.views)} feature views, {size.days} daily partitions each (one run)")
    result = materialize_views(defs, instance, size.days)
    print(f"   run {result.run_id}: {'success' if result.success else 'FAILED'}")
    for line in report_views(offline_store, instance):
        print(line)
    print("Open the UI with ./dev ui (http://127.0.0.1:3000) to see the graph, partitions and checks.")
    if not result.success:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
