"""The asset factory: each feature view becomes a daily-partitioned asset with a blocking Pandera schema check."""

import time
from collections.abc import Iterator, Sequence
from datetime import date

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    MetadataValue,
    Nothing,
    Output,
    TableColumn,
    TableColumnConstraints,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
    asset,
)

from feature_assets.compute.partition_compute import compute_partition
from feature_assets.language.asset_keys import SCHEMA_CHECK, source_asset_key, view_asset_key
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.sources import StreamSource
from feature_assets.orchestration.check_evaluations import check_evaluation, materialization_just_recorded
from feature_assets.orchestration.partitions import daily_partitions
from feature_assets.quality.gate import QUARANTINED
from feature_assets.quality.schema_validation import schema_outcome, validate_partition
from feature_assets.quality.statistics import (
    category_shares,
    feature_statistics,
    numeric_summaries,
    statistics_metadata,
)
from feature_assets.quality.warning_checks import (
    DRIFT_CHECK,
    NULL_RATE_CHECK,
    ROW_COUNT_CHECK,
    WARNING_CHECKS,
    drift_outcome,
    load_baseline,
    null_rate_outcome,
    row_count_outcome,
)
from resources.offline_store import OfflineStore

FEATURES_GROUP = "features"


def build_source_specs(views: Sequence[FeatureView]) -> list[AssetSpec]:
    """Return one external asset per distinct source, so sources sit upstream of views in the graph."""
    sources = {view.source.name: view.source for view in views}
    return [
        AssetSpec(
            key=source_asset_key(source),
            description=source.description or f"Raw Parquet at {source.path}",
            group_name="sources",
            kinds={"redis", "parquet"} if isinstance(source, StreamSource) else {"parquet"},
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
    elif view.transformation is None and view.sql is None:
        lineage.update({name: deps(name) for name in view.feature_names})
    return TableColumnLineage(deps_by_column=lineage)


def build_view_asset(view: FeatureView) -> AssetsDefinition:
    """Return the daily-partitioned asset that computes, writes and checks one feature view."""
    key = view_asset_key(view)
    partitions = daily_partitions(view.start_date)
    static_metadata = {
        "entities": ", ".join(e.name for e in view.entities) or "(none)",
        "join_keys": ", ".join(view.join_keys) or "(none)",
        "ttl": str(view.ttl) if view.ttl else "none",
        "online": view.online,
        "version": view.version,
        "dagster/column_schema": view_table_schema(view),
    }
    column_lineage = view_column_lineage(view)
    check_specs = [
        AssetCheckSpec(
            SCHEMA_CHECK,
            asset=key,
            blocking=True,
            partitions_def=partitions,
            description="Pandera schema: dtypes, nullability, ranges, allowed values, unique keys per time",
        ),
        *(
            AssetCheckSpec(name, asset=key, partitions_def=partitions, description=description)
            for name, description in WARNING_CHECKS.items()
        ),
    ]

    @asset(
        key=key,
        partitions_def=partitions,
        backfill_policy=(
            BackfillPolicy.multi_run(view.partitions_per_run)
            if view.partitions_per_run
            else BackfillPolicy.single_run()
        ),
        code_version=view.code_version,
        op_tags=view.execution_tags or None,
        kinds={"polars", "parquet"},
        owners=[view.owner] if view.owner else None,
        tags=dict(view.tags),
        description=view.description or None,
        group_name=FEATURES_GROUP,
        deps=[source_asset_key(view.source)],
        metadata=static_metadata,
        output_required=False,
        dagster_type=Nothing,
        check_specs=check_specs,
    )
    def feature_view_asset(context: AssetExecutionContext, offline_store: OfflineStore) -> Iterator[object]:
        single_partition = len(context.partition_keys) == 1
        if not single_partition:
            context.log.info(
                f"{view.name}: {len(context.partition_keys)} partitions in one run; each gets its own "
                "materialization and checks, and assets downstream in this run are skipped (the publish_online "
                "sensor publishes each checked partition)"
            )
        for partition_key in context.partition_keys:
            started = time.perf_counter()
            day = date.fromisoformat(partition_key)
            computed = compute_partition(view, offline_store, day)
            frame = computed.rows
            report = validate_partition(view, frame)
            if report.passed:
                path = offline_store.write_partition(view, day, frame)
            else:
                path = offline_store.quarantine_partition(view, day, frame)
                context.log.error(
                    f"{view.name} {partition_key}: {report.failing_rows} of {report.rows} rows fail the schema; "
                    f"the rows are quarantined at {path} and the partition readers see is unchanged. Fix the "
                    f"source and materialize {partition_key} again to replace it."
                )
            if frame.is_empty():
                context.log.warning(
                    f"{view.name} {partition_key}: no rows; source {view.source.name!r} ({view.source.path}) "
                    "has no events for this day"
                )
            statistics = feature_statistics(view, frame)
            shares = category_shares(view, frame)
            metadata = {
                "dagster/row_count": frame.height,
                "path": MetadataValue.path(path),
                QUARANTINED: not report.passed,
                "duplicate_rows_collapsed": computed.duplicates_collapsed,
                "dagster/column_lineage": column_lineage,
                "seconds": round(time.perf_counter() - started, 3),
                **statistics_metadata(statistics, shares, numeric_summaries(view, frame)),
            }
            baseline = load_baseline(context.instance, view, partition_key)
            if single_partition:
                yield Output(None, metadata=metadata)
            else:
                yield AssetMaterialization(asset_key=key, partition=partition_key, metadata=metadata)
            target = materialization_just_recorded(context, key, partition_key)
            outcomes = {
                SCHEMA_CHECK: schema_outcome(report, quarantine_path=None if report.passed else path),
                NULL_RATE_CHECK: null_rate_outcome(view, statistics),
                ROW_COUNT_CHECK: row_count_outcome(view, frame.height, baseline),
                DRIFT_CHECK: drift_outcome(view, frame, shares, baseline),
            }
            for name, outcome in outcomes.items():
                yield check_evaluation(key, name, outcome, partition_key, target, blocking=name == SCHEMA_CHECK)
        for spec in check_specs:
            yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(spec.key))

    return feature_view_asset
