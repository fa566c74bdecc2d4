"""Whether a view partition's latest materialization passed its blocking schema check, read from the instance."""

from enum import Enum

from dagster import AssetRecordsFilter, DagsterInstance
from dagster._core.event_api import PartitionKeyFilter

from feature_assets.language.asset_keys import schema_check_key, view_asset_key
from feature_assets.language.feature_view import FeatureView

QUARANTINED = "quarantined"
"""Materialization metadata key: True when the partition failed its blocking check and was written to quarantine."""


class GateStatus(Enum):
    """The schema check's verdict on one materialization of a partition."""

    PASSED = "passed"
    FAILED = "failed"
    PENDING = "pending"


def schema_check_status(
    instance: DagsterInstance, view: FeatureView, partition_key: str, materialization_storage_id: int
) -> GateStatus:
    """Return the schema check's verdict on the materialization with `materialization_storage_id`."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        schema_check_key(view), limit=1, partition_filter=PartitionKeyFilter(key=partition_key)
    )
    if not records or records[0].event is None or records[0].event.dagster_event is None:
        return GateStatus.PENDING
    evaluation = records[0].event.dagster_event.event_specific_data
    target = getattr(evaluation, "target_materialization_data", None)
    if target is None or target.storage_id < materialization_storage_id:
        return GateStatus.PENDING
    return GateStatus.PASSED if evaluation.passed else GateStatus.FAILED


def passed_materialization(instance: DagsterInstance, view: FeatureView, partition_key: str) -> int | None:
    """Return the storage id of the partition's latest materialization if it passed its blocking check, else None."""
    latest = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=view_asset_key(view), asset_partitions=[partition_key]), limit=1
    ).records
    if not latest:
        return None
    passed = schema_check_status(instance, view, partition_key, latest[0].storage_id) is GateStatus.PASSED
    return latest[0].storage_id if passed else None
