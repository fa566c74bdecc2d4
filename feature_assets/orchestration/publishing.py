"""The publishing sensor: requests the online asset for checked view partitions not yet published, in ranges.

What is unpublished is decided from recorded state, not from run keys alone: a partition needs publishing when its
latest view materialization passed the blocking schema check and no online materialization records it as its
source (`published_from`). So a fresh sensor (a new daemon after the demo, a reset cursor) requests nothing that is
already in Redis. The cursor only saves re-reading old materializations. Contiguous partitions are requested as
one run (up to `PUBLISH_PARTITIONS_PER_RUN`), which the online asset publishes partition by partition.
"""

import json
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from dagster import (
    AssetRecordsFilter,
    DagsterInstance,
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
from feature_assets.orchestration.online_assets import PUBLISH_PARTITIONS_PER_RUN, PUBLISHED_FROM
from feature_assets.orchestration.partitions import partition_range_tags
from feature_assets.quality.gate import GateStatus, schema_check_status

BATCH = 1000


def build_publishing_sensor(views: Sequence[FeatureView], minimum_interval_seconds: int = 30) -> SensorDefinition:
    """Return the sensor that publishes checked, unpublished partitions of the online views in ranges."""
    online_views = [view for view in views if view.online and not view.streaming]

    @sensor(
        name="publish_online",
        asset_selection=[online_asset_key(view) for view in online_views],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Publishes view partitions whose blocking checks passed and that Redis does not hold yet, "
            f"up to {PUBLISH_PARTITIONS_PER_RUN} contiguous partitions per run."
        ),
    )
    def publish_online(context: SensorEvaluationContext) -> SensorResult:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        requests: list[RunRequest] = []
        for view in online_views:
            checked, cursor[view.name] = checked_partitions(context, view, cursor.get(view.name))
            published = published_sources(context.instance, view, checked)
            unpublished = {p: storage_id for p, storage_id in checked.items() if published.get(p, -1) < storage_id}
            requests += [_request(view, chunk, unpublished) for chunk in partition_ranges(unpublished)]
        new_cursor = json.dumps(cursor, sort_keys=True)
        if not requests:
            return SensorResult(skip_reason=SkipReason("no checked partition left to publish"), cursor=new_cursor)
        return SensorResult(run_requests=requests, cursor=new_cursor)

    return publish_online


def checked_partitions(
    context: SensorEvaluationContext, view: FeatureView, after: int | None
) -> tuple[dict[str, int], int | None]:
    """Return partitions whose latest materialization after `after` passed its check, with its storage id.

    Walks the view's materializations in order and stops before the first whose check a running run has not
    evaluated yet; returns the storage id to resume after.
    """
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=view_asset_key(view), after_storage_id=after),
        limit=BATCH,
        ascending=True,
    ).records
    passed: dict[str, int] = {}
    for record in records:
        partition = record.partition_key
        if partition is not None:
            status = schema_check_status(context.instance, view, partition, record.storage_id)
            if status is GateStatus.PENDING:
                run = context.instance.get_run_by_id(record.run_id)
                if run is not None and not run.is_finished:
                    break
                status = GateStatus.FAILED
            if status is GateStatus.PASSED:
                passed[partition] = record.storage_id
            else:
                passed.pop(partition, None)
                context.log.warning(f"{view.name} {partition} failed its schema check; not published")
        after = record.storage_id
    return passed, after


def published_sources(instance: DagsterInstance, view: FeatureView, partitions: Iterable[str]) -> dict[str, int]:
    """Return, per partition, the newest view materialization its online table records having published."""
    wanted = set(partitions)
    found: dict[str, int] = {}
    cursor = None
    while wanted - found.keys():
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=online_asset_key(view), asset_partitions=sorted(wanted)),
            limit=BATCH,
            cursor=cursor,
        )
        for record in result.records:
            materialization = record.asset_materialization
            source = materialization.metadata.get(PUBLISHED_FROM) if materialization else None
            if source is not None and record.partition_key is not None:
                found[record.partition_key] = max(found.get(record.partition_key, -1), int(source.value))
        if not result.has_more:
            break
        cursor = result.cursor
    return found


def partition_ranges(partitions: Iterable[str]) -> list[tuple[str, str]]:
    """Return sorted daily partition keys as contiguous (first, last) ranges of at most a run's size."""
    ranges: list[tuple[str, str]] = []
    first = previous = None
    length = 0
    for key in sorted(partitions):
        day = date.fromisoformat(key)
        if previous is not None and day == previous + timedelta(days=1) and length < PUBLISH_PARTITIONS_PER_RUN:
            length += 1
        else:
            if first is not None:
                ranges.append((first.isoformat(), previous.isoformat()))
            first, length = day, 1
        previous = day
    if first is not None:
        ranges.append((first.isoformat(), previous.isoformat()))
    return ranges


def _request(view: FeatureView, chunk: tuple[str, str], sources: dict[str, int]) -> RunRequest:
    first, last = chunk
    newest = max(storage_id for partition, storage_id in sources.items() if first <= partition <= last)
    single = first == last
    return RunRequest(
        run_key=f"{view.name}:{first}...{last}:{newest}",
        asset_selection=[online_asset_key(view)],
        partition_key=first if single else None,
        tags={} if single else partition_range_tags(first, last),
    )
