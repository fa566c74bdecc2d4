"""The asset factory: each feature view becomes a daily-partitioned asset with a blocking Pandera schema check."""

import time
from collections.abc import Iterator, Sequence
from datetime import date
from functools import cache

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MetadataValue,
    Output,
    TableColumn,
    TableColumnConstraints,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
    asset,
)
from dagster._core.storage.event_log.base import AssetRecordsFilter

from feature_assets.feature_view import FeatureView
from feature_assets.partition_compute import compute_partition
from feature_assets.schema_validation import SAMPLE_SIZE, ValidationReport, validate_partition
from feature_assets.sources import ParquetSource
from feature_assets.statistics import feature_statistics, statistics_metadata
from resources.offline_store import OfflineStore

SCHEMA_CHECK = "schema"
FEATURES_GROUP = "features"


def source_asset_key(source: ParquetSource) -> AssetKey:
    """Return the asset key of a raw source."""
    return AssetKey(["source", source.name])


def view_asset_key(view: FeatureView) -> AssetKey:
    """Return the asset key of a feature view's offline table."""
    return AssetKey(view.name)


def schema_check_key(view: FeatureView) -> AssetCheckKey:
    """Return the key of the view's blocking schema check."""
    return AssetCheckKey(view_asset_key(view), SCHEMA_CHECK)


@cache
def daily_partitions(start_date: date) -> DailyPartitionsDefinition:
    """Return the daily UTC partitions starting on `start_date` (shared by every view with that start)."""
    return DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC")


def build_source_specs(views: Sequence[FeatureView]) -> list[AssetSpec]:
    """Return one external asset per distinct source, so sources sit upstream of views in the graph."""
    sources = {view.source.name: view.source for view in views}
    return [
        AssetSpec(
            key=source_asset_key(source),
            description=source.description or f"Raw Parquet at {source.path}",
            group_name="sources",
            kinds={"parquet"},
            owners=[source.owner] if source.owner else None,
            metadata={"path": source.path, "timestamp_field": source.timestamp_field},
        )
        for source in sources.values()
    ]


def view_table_schema(view: FeatureView) -> TableSchema:
    """Return the view's offline columns with dtypes, descriptions and checks, for the UI."""
    columns = [
        TableColumn(key, str(dtype), description="join key", constraints=TableColumnConstraints(nullable=False))
        for key, dtype in view.key_dtypes.items()
    ]
    columns += [
        TableColumn("event_timestamp", "Datetime(us, UTC)", description="when the feature values hold"),
        TableColumn("created_timestamp", "Datetime(us, UTC)", description="when the values were written"),
    ]
    columns += [
        TableColumn(
            f.name,
            str(f.dtype),
            description=f.description or None,
            constraints=TableColumnConstraints(
                nullable=f.nullable, other=[f.describe_checks()] if f.describe_checks() else []
            ),
        )
        for f in view.schema
    ]
    return TableSchema(columns=columns)


def view_column_lineage(view: FeatureView) -> TableColumnLineage:
    """Return which source columns each offline column derives from."""
    source_key = source_asset_key(view.source)

    def deps(*columns: str) -> list[TableColumnDep]:
        return [TableColumnDep(asset_key=source_key, column_name=c) for c in columns]

    lineage = {key: deps(key) for key in view.join_keys}
    lineage["event_timestamp"] = deps(view.source.timestamp_field)
    lineage["created_timestamp"] = deps(*view.source.columns_read[-1:])
    if view.aggregations:
        lineage.update({a.name: deps(a.column, view.source.timestamp_field) for a in view.aggregations})
    elif view.transformation is None:
        lineage.update({name: deps(name) for name in view.feature_names})
    return TableColumnLineage(deps_by_column=lineage)


def build_view_asset(view: FeatureView) -> AssetsDefinition:
    """Return the daily-partitioned asset that computes, writes and checks one feature view."""
    key = view_asset_key(view)
    partitions = daily_partitions(view.start_date)
    check_key = schema_check_key(view)
    static_metadata = {
        "entities": ", ".join(e.name for e in view.entities) or "(none)",
        "join_keys": ", ".join(view.join_keys) or "(none)",
        "ttl": str(view.ttl) if view.ttl else "none",
        "online": view.online,
        "version": view.version,
        "dagster/column_schema": view_table_schema(view),
    }

    @asset(
        key=key,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        code_version=view.code_version,
        kinds={"polars", "parquet"},
        owners=[view.owner] if view.owner else None,
        tags=dict(view.tags),
        description=view.description or None,
        group_name=FEATURES_GROUP,
        deps=[source_asset_key(view.source)],
        metadata=static_metadata,
        output_required=False,
        check_specs=[
            AssetCheckSpec(
                SCHEMA_CHECK,
                asset=key,
                blocking=True,
                partitions_def=partitions,
                description="Pandera schema: dtypes, nullability, ranges, allowed values, unique keys per time",
            )
        ],
    )
    def feature_view_asset(context: AssetExecutionContext, offline_store: OfflineStore) -> Iterator[object]:
        for partition_key in context.partition_keys:
            started = time.perf_counter()
            day = date.fromisoformat(partition_key)
            frame = compute_partition(view, offline_store, day)
            report = validate_partition(view, frame)
            path = offline_store.write_partition(view, day, frame)
            if frame.is_empty():
                context.log.warning(
                    f"{view.name} {partition_key}: no rows; source {view.source.name!r} ({view.source.path}) "
                    "has no events for this day"
                )
            metadata = {
                "dagster/row_count": frame.height,
                "path": MetadataValue.path(path),
                "dagster/column_lineage": view_column_lineage(view),
                "seconds": round(time.perf_counter() - started, 3),
                **statistics_metadata(feature_statistics(view, frame)),
            }
            yield AssetMaterialization(asset_key=key, partition=partition_key, metadata=metadata)
            yield _check_evaluation(context, check_key, partition_key, report)
        yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key))

    return feature_view_asset


def _check_evaluation(
    context: AssetExecutionContext, check_key: AssetCheckKey, partition_key: str, report: ValidationReport
) -> AssetCheckEvaluation:
    """Return the schema check's result for one partition, tied to the materialization just recorded."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=check_key.asset_key, asset_partitions=[partition_key]), limit=1
    ).records
    target = (
        AssetCheckEvaluationTargetMaterializationData(
            run_id=records[0].run_id, storage_id=records[0].storage_id, timestamp=records[0].timestamp
        )
        if records
        else None
    )
    metadata: dict[str, object] = {"rows": report.rows, "failing_rows": report.failing_rows}
    if not report.passed:
        metadata["failures"] = report.failures
        metadata["failures_by_check"] = MetadataValue.json(report.failures_by_check())
        metadata["failing_rows_sample"] = MetadataValue.md(_markdown_table(report))
    return AssetCheckEvaluation(
        asset_key=check_key.asset_key,
        check_name=check_key.name,
        passed=report.passed,
        metadata=metadata,
        partition=partition_key,
        blocking=True,
        target_materialization_data=target,
        description=None if report.passed else f"{report.failing_rows} of {report.rows} rows fail the schema",
    )


def _markdown_table(report: ValidationReport) -> str:
    lines = ["| row | column | check | value |", "|---|---|---|---|"]
    for row in report.sample.head(SAMPLE_SIZE).iter_rows(named=True):
        lines.append(f"| {row['row']} | {row['column']} | {row['check']} | {row['value']} |")
    return "\n".join(lines)
