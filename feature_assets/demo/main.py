"""The demo's main job: generate raw ride-hailing data, materialize every feature view, report what was built."""

import argparse
import os
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from feature_assets.demo.calendar import DEMO_DAYS, HISTORY_DAYS, demo_days
from feature_assets.demo.data import DemoSize, write_demo_sources
from feature_assets.demo.streaming import stream_burst
from feature_assets.demo.views import repository
from feature_assets.demo.views.training_sets import trip_completion
from feature_assets.language.asset_keys import schema_check_key, training_set_asset_key
from feature_assets.language.feature_service import FeatureService
from feature_assets.orchestration.jobs import materialize_views_over
from feature_assets.orchestration.project import build_definitions
from resources.offline_store import OfflineStore
from resources.online_response import OnlineResponse
from resources.online_store import RedisOnlineStore
from resources.project_redis import embedded_url

QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def demo_instance() -> dg.DagsterInstance:
    """Return the persistent instance under DAGSTER_HOME (so `dagster dev` shows the runs), else an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def publish_online(defs: dg.Definitions, instance: dg.DagsterInstance) -> tuple[int, int, int]:
    """Tick the publishing sensor once and run what it requests; return (runs requested, succeeded, partitions)."""
    sensor = defs.resolve_sensor_def("publish_online")
    result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    job = defs.resolve_implicit_global_asset_job_def()
    succeeded = partitions = 0
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
        partitions += len(run.get_asset_materialization_events())
    return len(result.run_requests), succeeded, partitions


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


def online_values_with_age(
    service: FeatureService, response: OnlineResponse, keys: Sequence[str], now: datetime
) -> pl.DataFrame:
    """Return an online read as one row per entity and feature, with the value's age (now - its event time)."""
    columns = response.to_dict()
    rows = []
    for index in range(len(columns[keys[0]])):
        entity = ", ".join(f"{key}={columns[key][index]}" for key in keys)
        for reference in service.features:
            event_times = columns.get(f"{reference.view}__event_timestamp")
            if event_times is None:
                age = "at read"
            else:
                age = "-" if event_times[index] is None else _age(now - event_times[index])
            rows.append(
                {
                    "entity": entity,
                    "feature": str(reference),
                    "value": _value(columns[reference.feature][index]),
                    "status": response.statuses[reference.feature][index],
                    "age": age,
                }
            )
    return pl.DataFrame(rows)


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _age(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes // 60}h {minutes % 60:02d}m"


def main(argv: list[str] | None = None) -> None:
    """Run the demo end to end on the embedded defaults (or OFFLINE_ROOT/REDIS_URL when set)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=DemoSize.trips)
    parser.add_argument(
        "--days",
        type=int,
        default=DemoSize.days,
        help=f"days to materialize, ending yesterday (views cover {DEMO_DAYS})",
    )
    arguments = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)

    offline_store = OfflineStore.from_env()
    size = DemoSize(trips=arguments.rows, days=arguments.days)
    first, last = demo_days(size.days)
    print(
        f"1. generating {size.trips:,} trips over {size.days} days, plus {HISTORY_DAYS} days of trips before them "
        f"for the windows, under {offline_store.resolve('raw')}"
    )
    counts = write_demo_sources(offline_store, size, first)
    print("   " + ", ".join(f"{name}: {rows:,} rows" for name, rows in counts.items()))

    online_store = RedisOnlineStore.from_env()
    defs = build_definitions(repository, offline_store, online_store, training_sets=[trip_completion])
    instance = demo_instance()
    views = list(repository.views.values())
    print(f"2. materializing {len(views)} feature views, {first} to {last}, one run per start date")
    results = materialize_views_over(defs, views, instance, first, last, run_config=QUIET_RUN)
    for result in results:
        print(f"   run {result.run_id} ({result.job_def.name}): {'success' if result.success else 'FAILED'}")
    for line in report_views(offline_store, instance):
        print(line)

    requested, succeeded, partitions = publish_online(defs, instance)
    redis_url = os.environ.get("REDIS_URL") or embedded_url()
    print(
        f"3. publishing sensor requested {requested} runs; {succeeded} succeeded, "
        f"publishing {partitions} partitions to {redis_url}"
    )
    service = repository.services["trip_ranking"]
    entity_rows = [
        {"driver_id": d, "customer_id": c, "fare": fare, "distance_km": km}
        for d, c, fare, km in ((1, 1, 18.5, 6.2), (2, 7, 9.0, 2.5), (3, 42, 31.0, 14.8))
    ]
    response = online_store.get_online_features(service, entity_rows, include_timestamps=True)
    with pl.Config(tbl_rows=-1, tbl_width_chars=160, tbl_hide_dataframe_shape=True):
        print(f"   online read of feature service {service.name!r} for {len(entity_rows)} entities:")
        print(online_values_with_age(service, response, ["driver_id", "customer_id"], datetime.now(UTC)))

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
    with pl.Config(tbl_cols=-1, tbl_width_chars=240, float_precision=3):
        print(training_frame.drop("trip_id", "distance_km", "fare").tail(3))
    with pl.Config(tbl_rows=-1, tbl_width_chars=160, tbl_hide_dataframe_shape=True, float_precision=2):
        for line in stream_burst(online_store, offline_store):
            print(line)
    print("Run a stream worker with ./dev stream; push events with feature_assets.streaming.push.push.")
    print("Serve features over HTTP with ./dev serve; list, describe and read them with ./dev fs --help.")
    print("Open the UI with ./dev ui (http://127.0.0.1:3000) to see the graph, partitions and checks.")
    materialized = bool(results) and all(result.success for result in results)
    if not materialized or succeeded != requested or not training.success:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
