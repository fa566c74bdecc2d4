"""Check outcomes of one partition turned into Dagster evaluations that point at the materialization they judge."""

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from feature_assets.quality.check_outcome import CheckOutcome


def materialization_just_recorded(
    context: AssetExecutionContext, key: AssetKey, partition_key: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """Return the storage id and run of the partition's newest materialization, which checks point at."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition_key]), limit=1
    ).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=records[0].run_id, storage_id=records[0].storage_id, timestamp=records[0].timestamp
    )


def check_evaluation(
    key: AssetKey,
    name: str,
    outcome: CheckOutcome,
    partition_key: str,
    target: AssetCheckEvaluationTargetMaterializationData | None,
    *,
    blocking: bool = False,
) -> AssetCheckEvaluation:
    """Return the evaluation of check `name` on one partition: ERROR when blocking, else WARN."""
    return AssetCheckEvaluation(
        asset_key=key,
        check_name=name,
        passed=outcome.passed,
        metadata=outcome.metadata,
        partition=partition_key,
        blocking=blocking,
        severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
        target_materialization_data=target,
        description=outcome.description,
    )
