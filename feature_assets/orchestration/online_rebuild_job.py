"""The `rebuild_online_store` job: disaster recovery of Redis from the offline store, launched from the UI."""

from collections.abc import Sequence

import dagster as dg

from feature_assets.compute.online_rebuild import rebuild_online_view, rebuildable_views
from feature_assets.compute.stream_rebuild import StreamRebuildError
from feature_assets.language.feature_view import FeatureView
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

REBUILD_JOB = "rebuild_online_store"


class RebuildConfig(dg.Config):
    """Which views to rebuild (default: every online view)."""

    views: list[str] = []


def build_rebuild_job(views: Sequence[FeatureView]) -> dg.JobDefinition:
    """Return the job that rewrites every online view's latest live rows (streaming views: their tiles)."""
    rebuildable = {view.name: view for view in rebuildable_views(list(views))}

    @dg.op(
        name="rebuild_online_views",
        description="Latest row per entity within ttl from passed partitions; streaming tiles from the event log",
    )
    def rebuild(
        context: dg.OpExecutionContext,
        config: RebuildConfig,
        offline_store: OfflineStore,
        online_store: RedisOnlineStore,
    ) -> None:
        unknown = sorted(set(config.views) - set(rebuildable))
        if unknown:
            raise dg.Failure(f"not online views: {unknown}; rebuildable views are {sorted(rebuildable)}")
        for name in config.views or sorted(rebuildable):
            try:
                rebuilt = rebuild_online_view(rebuildable[name], offline_store, online_store)
            except StreamRebuildError as error:
                raise dg.Failure(str(error)) from error
            context.log.info(
                f"{name}: {rebuilt.partitions} partitions, {rebuilt.rows} rows read, {rebuilt.written} values written"
            )

    @dg.job(
        name=REBUILD_JOB,
        description="Disaster recovery: rebuilds Redis from the offline store (newer-wins, so safe while serving)",
    )
    def rebuild_online_store() -> None:
        rebuild()

    return rebuild_online_store
