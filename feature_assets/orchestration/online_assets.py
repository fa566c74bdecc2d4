"""Online assets: for each online view, the partition's latest row per entity written to Redis."""

import time
from datetime import date

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from feature_assets.compute.latest import latest_per_entity
from feature_assets.language.asset_keys import online_asset_key, view_asset_key
from feature_assets.language.errors import OnlineStoreError
from feature_assets.language.feature_view import FeatureView
from feature_assets.orchestration.partitions import daily_partitions
from feature_assets.quality.gate import partition_passed_schema_check
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

ONLINE_GROUP = "online"


def build_online_asset(view: FeatureView) -> AssetsDefinition:
    """Return the partitioned asset that publishes one checked partition of `view` to the online store."""

    @asset(
        key=online_asset_key(view),
        partitions_def=daily_partitions(view.start_date),
        deps=[view_asset_key(view)],
        group_name=ONLINE_GROUP,
        kinds={"redis"},
        owners=[view.owner] if view.owner else None,
        code_version=view.code_version,
        description=f"Latest values of {view.name} per entity in Redis (newer event time wins, ttl {view.ttl}).",
    )
    def online_view_asset(
        context: AssetExecutionContext, offline_store: OfflineStore, online_store: RedisOnlineStore
    ) -> MaterializeResult:
        partition_key = context.partition_key
        if not partition_passed_schema_check(context.instance, view, partition_key):
            raise OnlineStoreError(
                f"{view.name} partition {partition_key} has not passed its blocking schema check; "
                f"fix the data and re-materialize {view.name} for {partition_key} before publishing it"
            )
        started = time.perf_counter()
        frame = offline_store.read_partition(view, date.fromisoformat(partition_key))
        latest = latest_per_entity(view, frame)
        written = online_store.write_batch(view, latest)
        seconds = time.perf_counter() - started
        return MaterializeResult(
            metadata={
                "entities": latest.height,
                "values_replaced": written,
                "partition_rows": frame.height,
                "seconds": round(seconds, 3),
                "rows_per_second": round(latest.height / seconds) if seconds else 0,
            }
        )

    return online_view_asset
