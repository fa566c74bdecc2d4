"""Online assets: for each online view, the latest row per entity of checked partitions, written to Redis.

A run publishes a range of partitions (`BackfillPolicy.multi_run`), one materialization per partition recording
which view materialization it was published from (`published_from`), which the publishing sensor reads to decide
what is still unpublished. Publishing steps share one Dagster concurrency pool, so backfills cannot flood Redis.
"""

import time
from collections.abc import Iterator
from datetime import date

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    BackfillPolicy,
    Nothing,
    Output,
    asset,
)

from feature_assets.compute.latest import latest_per_entity
from feature_assets.language.asset_keys import online_asset_key, view_asset_key
from feature_assets.language.errors import OnlineStoreError
from feature_assets.language.feature_view import FeatureView
from feature_assets.orchestration.check_evaluations import check_evaluation, materialization_just_recorded
from feature_assets.orchestration.partitions import daily_partitions
from feature_assets.quality.consistency import CONSISTENCY_CHECK, CONSISTENCY_DESCRIPTION, compare_online_offline
from feature_assets.quality.gate import passed_materialization
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

ONLINE_GROUP = "online"
PUBLISH_POOL = "feature_store_publish"
PUBLISHED_FROM = "published_from"
"""Online materialization metadata: the storage id of the view materialization whose rows were published."""
# A month of daily partitions per run: a 90-day backfill publishes in 3 runs; each partition is still its own
# materialization, and one run holds its pool slot for a few seconds per million rows.
PUBLISH_PARTITIONS_PER_RUN = 31


def build_online_asset(view: FeatureView) -> AssetsDefinition:
    """Return the partitioned asset that publishes checked partitions of `view` to the online store."""
    key = online_asset_key(view)
    partitions = daily_partitions(view.start_date)
    consistency = AssetCheckSpec(
        CONSISTENCY_CHECK, asset=key, partitions_def=partitions, blocking=False, description=CONSISTENCY_DESCRIPTION
    )

    @asset(
        key=key,
        partitions_def=partitions,
        deps=[view_asset_key(view)],
        group_name=ONLINE_GROUP,
        kinds={"redis"},
        owners=[view.owner] if view.owner else None,
        code_version=view.code_version,
        description=f"Latest values of {view.name} per entity in Redis (newer event time wins, ttl {view.ttl}).",
        backfill_policy=BackfillPolicy.multi_run(PUBLISH_PARTITIONS_PER_RUN),
        pool=PUBLISH_POOL,
        output_required=False,
        dagster_type=Nothing,
        check_specs=[consistency],
    )
    def online_view_asset(
        context: AssetExecutionContext, offline_store: OfflineStore, online_store: RedisOnlineStore
    ) -> Iterator[object]:
        single_partition = len(context.partition_keys) == 1
        refused = []
        for partition_key in context.partition_keys:
            source = passed_materialization(context.instance, view, partition_key)
            if source is None:
                refused.append(partition_key)
                continue
            started = time.perf_counter()
            frame = offline_store.read_partition(view, date.fromisoformat(partition_key))
            latest = latest_per_entity(view, frame)
            written = online_store.write_batch(view, latest)
            seconds = time.perf_counter() - started
            metadata = {
                PUBLISHED_FROM: source,
                "entities": latest.height,
                "values_replaced": written,
                "partition_rows": frame.height,
                "seconds": round(seconds, 3),
                "rows_per_second": round(latest.height / seconds) if seconds else 0,
            }
            if single_partition:
                yield Output(None, metadata=metadata)
            else:
                yield AssetMaterialization(asset_key=key, partition=partition_key, metadata=metadata)
            target = materialization_just_recorded(context, key, partition_key)
            outcome = compare_online_offline(view, latest, online_store, partition_key)
            yield check_evaluation(key, CONSISTENCY_CHECK, outcome, partition_key, target)
        if refused:
            raise OnlineStoreError(
                f"{view.name} partition(s) {', '.join(refused)} have not passed their blocking schema check; "
                f"fix the data and re-materialize {view.name} for them before publishing"
            )
        yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(consistency.key))

    return online_view_asset
