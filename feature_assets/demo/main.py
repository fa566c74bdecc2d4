"""The demo's main job: generate raw ride-hailing data, materialize every feature view, report what was built."""

import argparse
import os
import warnings
from datetime import date

import dagster as dg
import polars as pl
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from feature_assets.demo.data import DemoSize, demo_days, write_demo_sources
from feature_assets.demo.views import repository
from feature_assets.demo.views.training_sets import trip_completion
from feature_assets.language.asset_keys import schema_check_key, training_set_asset_key
from feature_assets.orchestration.project import MATERIALIZE_VIEWS_JOB, build_definitions
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore, embedded_url

QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def demo_instance() -> dg.DagsterInstance:
    """Return the persistent instance under DAGSTER_HOME (so `dagster dev` shows the runs), else an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def materialize_views(
    defs: dg.Definitions, instance: dg.DagsterInstance, first: date, last: date
) -> dg.ExecuteInProcessResult:
    """Backfill every feature view from `first` to `last` in one run."""
    job = defs.resolve_job_def(MATERIALIZE_VIEWS_JOB)
    return job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        run_config=QUIET_RUN,
        raise_on_error=False,
    )


def publish_online(defs: dg.Definitions, instance: dg.DagsterInstance) -> tuple[int, int]:
    """Tick the publishing sensor once and run what it requests; return (requested, succeeded)."""
    sensor = defs.resolve_sensor_def("publish_online")
    result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    job = defs.resolve_implicit_global_asset_job_def()
    succeeded = 0
    for request in result.run_requests:
        run = job.execute_in_process(
            instance=instance,
            asset_selection=list(request.asset_selection),
            partition_key=request.partition_key,
            tags=request.tags,
            run_config=QUIET_RUN,
            raise_on_error=False,
        )
        succeeded += run.success
    return len(result.run_requests), succeeded


def report_views(offline_store: OfflineStore, instance: dg.DagsterInstance) -> list[str]:
    """Return one line per view: partitions written, rows, and schema-check results."""
    lines = []
    for view in repository.views.values():
        partitions = offline_store.list_partitions(view)
        rows = offline_store.scan_partitions(view).select(pl.len()).collect().item()
        history = instance.event_log_storage.get_asset_check_execution_history(schema_check_key(view), limit=1000)
        passed = sum(1 for record in history if record.status is AssetCheckExecutionRecordStatus.SUCCEEDED)
        lines.append(
            f"  {view.name:<20} {len(partitions):>3} partitions  {rows:>9,} rows  "
            f"schema check passed {passed}/{len(history)}  -> {offline_store.view_root(view)}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run the demo end to end on the embedded defaults (or OFFLINE_ROOT/REDIS_URL when set)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=DemoSize.trips)
    parser.add_argument("--days", type=int, default=DemoSize.days)
    arguments = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)

    offline_store = OfflineStore.from_env()
    size = DemoSize(trips=arguments.rows, days=arguments.days)
    print(f"1. generating {size.trips:,} trips over {size.days} days under {offline_store.resolve('raw')}")
    first, last = demo_days(size.days)
    counts = write_demo_sources(offline_store, size, first)
    print("   " + ", ".join(f"{name}: {rows:,} rows" for name, rows in counts.items()))

    online_store = RedisOnlineStore.from_env()
    defs = build_definitions(repository, offline_store, online_store, training_sets=[trip_completion])
    instance = demo_instance()
    print(f"2. materializing {len(repository.views)} feature views, {first} to {last}, in one run")
    result = materialize_views(defs, instance, first, last)
    print(f"   run {result.run_id}: {'success' if result.success else 'FAILED'}")
    for line in report_views(offline_store, instance):
        print(line)

    requested, published = publish_online(defs, instance)
    redis_url = os.environ.get("REDIS_URL") or embedded_url()
    print(f"3. publishing sensor requested {requested} online partitions; {published} published to {redis_url}")
    service = repository.services["trip_ranking"]
    entity_rows = [{"driver_id": d, "customer_id": c} for d, c in ((1, 1), (2, 7), (3, 42))]
    response = online_store.get_online_features(service, entity_rows)
    with pl.Config(tbl_cols=-1, tbl_width_chars=160):
        print(f"   online read of feature service {service.name!r} for {len(entity_rows)} entities:")
        print(response.to_polars())

    training = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        asset_selection=[training_set_asset_key(trip_completion)],
        run_config=QUIET_RUN,
        raise_on_error=False,
    )
    training_frame = pl.read_parquet(offline_store.resolve(trip_completion.output_path))
    print(
        f"4. training set {trip_completion.name!r}: {'success' if training.success else 'FAILED'}, "
        f"{training_frame.height:,} point-in-time rows -> {offline_store.resolve(trip_completion.output_path)}"
    )
    with pl.Config(tbl_cols=-1, tbl_width_chars=160):
        print(training_frame.drop("trip_id", "distance_km", "fare").tail(3))
    print("Open the UI with ./dev ui (http://127.0.0.1:3000) to see the graph, partitions and checks.")
    if not result.success or published != requested or not training.success:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
