"""The online/offline consistency check on each published partition of an online table."""

from datetime import date

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    asset_check,
)

from feature_assets.compute.latest import latest_per_entity
from feature_assets.language.asset_keys import online_asset_key
from feature_assets.language.feature_view import FeatureView
from feature_assets.orchestration.partitions import daily_partitions
from feature_assets.quality.consistency import compare_online_offline
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

CONSISTENCY_CHECK = "consistency"


def build_consistency_check(view: FeatureView) -> AssetChecksDefinition:
    """Return the non-blocking check comparing a sample of each published partition with the online values."""

    @asset_check(
        asset=online_asset_key(view),
        name=CONSISTENCY_CHECK,
        partitions_def=daily_partitions(view.start_date),
        blocking=False,
        description=(
            "Samples entities of the published partition and compares Redis with the offline store; an online value "
            "may be newer (a later partition or a push) but never older or different at the same event time."
        ),
    )
    def consistency(
        context: AssetCheckExecutionContext, offline_store: OfflineStore, online_store: RedisOnlineStore
    ) -> AssetCheckResult:
        partition_key = context.partition_key
        offline = latest_per_entity(view, offline_store.read_partition(view, date.fromisoformat(partition_key)))
        return compare_online_offline(view, offline, online_store, partition_key)

    return consistency
