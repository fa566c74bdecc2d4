"""A plain-text quality report per feature view, read from the Dagster instance, for people who do not open the UI."""

import argparse
import os
import sys
import warnings
from collections.abc import Mapping, Sequence, Set
from datetime import UTC, datetime

import dagster as dg
from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter, DagsterInstance
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from feature_assets.language.asset_keys import SCHEMA_CHECK, online_asset_key, view_asset_key
from feature_assets.language.errors import DefinitionError, FeatureReferenceError
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.repository import FeatureRepository, load_repository
from feature_assets.orchestration.project import build_definitions
from feature_assets.quality.alerts import shorten

DEFAULT_REPOSITORY = "feature_assets.demo.views:repository"
STATISTICS = (("null %", "null_pct"), ("min", "min"), ("max", "max"), ("mean", "mean"), ("distinct", "distinct"))
SUMMARY_LENGTH = 90


def quality_report(instance: DagsterInstance, repository: FeatureRepository, view: str | None = None) -> str:
    """Return the report of every view (or only `view`): latest partition, check results and feature statistics."""
    views = [repository.view(view)] if view else list(repository.views.values())
    asset_graph = build_definitions(repository).resolve_asset_graph()
    sections = []
    for feature_view in views:
        keys = [view_asset_key(feature_view)] + ([online_asset_key(feature_view)] if feature_view.online else [])
        check_keys = sorted(
            asset_graph.get_check_keys_for_assets(set(keys)),
            key=lambda k: (keys.index(k.asset_key), k.name != SCHEMA_CHECK, k.name),
        )
        partitioned = {k for k in check_keys if asset_graph.get(k).partitions_def is not None}
        sections.append(_view_section(instance, feature_view, check_keys, partitioned))
    return "\n\n".join(sections) + "\n"


def _view_section(
    instance: DagsterInstance,
    view: FeatureView,
    check_keys: Sequence[AssetCheckKey],
    partitioned: Set[AssetCheckKey],
) -> str:
    """Return one view's part of the report; `partitioned` checks are read for the partition shown."""
    key = view_asset_key(view)
    partition = _latest_partition(instance, key)
    lines = [view.name, "=" * len(view.name)]
    if partition is None:
        lines.append("offline: not materialized yet")
        metadata: Mapping[str, dg.MetadataValue] = {}
    else:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records
        materialization = records[0].asset_materialization if records else None
        metadata = materialization.metadata if materialization else {}
        rows = metadata.get("dagster/row_count")
        lines.append(
            f"offline: latest partition {partition}, "
            f"{'unknown' if rows is None else f'{rows.value:,}'} rows"
            + (f", materialized {_iso(records[0].timestamp)}" if records else "")
        )
    online_partition = _latest_partition(instance, online_asset_key(view)) if view.online else None
    if view.online:
        lines.append(f"online:  latest published partition {online_partition or '(none)'}")
    check_rows = []
    for check_key in check_keys:
        on_online_asset = check_key.asset_key != key
        check_partition = online_partition if on_online_asset else partition
        record = _latest_execution(instance, check_key, check_partition if check_key in partitioned else None)
        name = f"{check_key.name} (online)" if on_online_asset else check_key.name
        check_rows.append([name, *_describe_execution(instance, record)])
    lines += ["", "checks", *_table(["check", "partition", "status", "summary"], check_rows)]
    statistic_rows = [
        [feature, *(_number(metadata.get(f"{feature}/{statistic}")) for _, statistic in STATISTICS)]
        for feature in view.feature_names
    ]
    lines += ["", f"features ({partition or 'no partition'})"]
    lines += _table(["feature", *(label for label, _ in STATISTICS)], statistic_rows)
    return "\n".join(lines)


def _latest_partition(instance: DagsterInstance, key: AssetKey) -> str | None:
    """Return the greatest materialized partition key of `key` (daily keys sort by date)."""
    return max(instance.get_materialized_partitions(key), default=None)


def _latest_execution(
    instance: DagsterInstance, check_key: AssetCheckKey, partition: str | None
) -> AssetCheckExecutionRecord | None:
    """Return the check's latest execution on `partition` (any partition when None)."""
    partition_filter = PartitionKeyFilter(key=partition) if partition is not None else None
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [check_key], partition_filter=partition_filter
    )
    return latest.get(check_key)


def _describe_execution(instance: DagsterInstance, record: AssetCheckExecutionRecord | None) -> list[str]:
    """Return the partition, status and summary columns of one check execution."""
    if record is None:
        return ["-", "not run", ""]
    evaluation = record.evaluation
    if record.status is AssetCheckExecutionRecordStatus.PLANNED or evaluation is None:
        run = instance.get_run_by_id(record.run_id)
        if run is not None and run.is_finished:
            return [record.partition or "-", "skipped", f"run {record.run_id} ended without evaluating it"]
        return [record.partition or "-", "running", f"run {record.run_id} has not evaluated it yet"]
    if evaluation.passed:
        status = "passed"
    else:
        status = "FAILED" if evaluation.severity is dg.AssetCheckSeverity.ERROR else "WARN"
    return [record.partition or "-", status, shorten(evaluation.description or "", SUMMARY_LENGTH)]


def _number(value: dg.MetadataValue | None) -> str:
    """Return a metadata number for the table: integers without decimals, others with up to four."""
    if value is None or not isinstance(value.value, int | float):
        return ""
    number = float(value.value)
    if number.is_integer():
        return str(int(number))
    return f"{number:.4f}".rstrip("0").rstrip(".")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Return the rows as left-aligned text columns under a header and a rule."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return [line.rstrip() for line in lines]


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `quality [--view NAME]`: the plain-text quality report read from the Dagster instance."""
    command = commands.add_parser(
        "quality", parents=[common], help="quality report per view (checks, statistics) from the Dagster instance"
    )
    command.add_argument("--view", metavar="NAME", help="report only this feature view")
    command.set_defaults(run=_run)


def _run(arguments: argparse.Namespace) -> int:
    """Print the report of the chosen repository (exit 2 when DAGSTER_HOME is unset)."""
    return main(["--repository", arguments.repository, *(["--view", arguments.view] if arguments.view else [])])


def main(argv: Sequence[str] | None = None) -> int:
    """Print the quality report of the feature views from the Dagster instance under DAGSTER_HOME."""
    parser = argparse.ArgumentParser(prog="python -m feature_assets.serving.cli.quality", description=main.__doc__)
    parser.add_argument("--view", metavar="NAME", help="report only this feature view")
    parser.add_argument(
        "--repository",
        metavar="MODULE:ATTR",
        default=DEFAULT_REPOSITORY,
        help=f"the FeatureRepository to report on (default {DEFAULT_REPOSITORY})",
    )
    arguments = parser.parse_args(argv)
    if not os.environ.get("DAGSTER_HOME"):
        print(
            "DAGSTER_HOME is not set: set it to the Dagster instance folder the runs were recorded in "
            "(./dev uses ./.dagster_home), e.g. DAGSTER_HOME=$PWD/.dagster_home",
            file=sys.stderr,
        )
        return 2
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    try:
        repository = load_repository(arguments.repository)
        with DagsterInstance.get() as instance:
            print(quality_report(instance, repository, arguments.view), end="")
    except (DefinitionError, FeatureReferenceError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
