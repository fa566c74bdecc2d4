"""The publishing sensor: requests the online asset for every new view partition whose blocking check passed."""

import json
from collections.abc import Sequence

from dagster import (
    AssetRecordsFilter,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from feature_assets.language.asset_keys import online_asset_key, view_asset_key
from feature_assets.language.feature_view import FeatureView
from feature_assets.quality.gate import GateStatus, schema_check_status

BATCH = 1000


def build_publishing_sensor(views: Sequence[FeatureView], minimum_interval_seconds: int = 30) -> SensorDefinition:
    """Return the sensor that publishes checked partitions of the online views, idempotently (run keys, cursor)."""
    online_views = [view for view in views if view.online]

    @sensor(
        name="publish_online",
        asset_selection=[online_asset_key(view) for view in online_views],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Publishes each newly materialized view partition to Redis once its blocking checks passed.",
    )
    def publish_online(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        requests: list[RunRequest] = []
        for view in online_views:
            requests += _requests_for_view(context, view, cursor)
        new_cursor = json.dumps(cursor, sort_keys=True)
        if not requests:
            return SensorResult(skip_reason=SkipReason("no newly checked partitions"), cursor=new_cursor)
        return SensorResult(run_requests=requests, cursor=new_cursor)

    return publish_online


def _requests_for_view(context: SensorEvaluationContext, view: FeatureView, cursor: dict[str, int]) -> list[RunRequest]:
    """Walk the view's materializations after the cursor; stop at the first whose check has not finished."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=view_asset_key(view), after_storage_id=cursor.get(view.name)),
        limit=BATCH,
        ascending=True,
    ).records
    requests = []
    for record in records:
        partition = record.partition_key
        if partition is None:
            cursor[view.name] = record.storage_id
            continue
        status = schema_check_status(context.instance, view, partition, record.storage_id)
        if status is GateStatus.PENDING:
            run = context.instance.get_run_by_id(record.run_id)
            if run is not None and not run.is_finished:
                break
            status = GateStatus.FAILED
        if status is GateStatus.PASSED:
            requests.append(
                RunRequest(
                    run_key=f"{view.name}:{partition}:{record.storage_id}",
                    asset_selection=[online_asset_key(view)],
                    partition_key=partition,
                    tags={"feature_store/published_from": str(record.storage_id)},
                )
            )
        else:
            context.log.warning(f"{view.name} {partition} failed its schema check; not published")
        cursor[view.name] = record.storage_id
    return requests
