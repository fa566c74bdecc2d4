"""Assembly of a feature repository into Dagster definitions: sources, views, checks, schedules."""

from dagster import Definitions

from feature_assets.repository import FeatureRepository
from feature_assets.schedules import build_daily_schedules
from feature_assets.view_assets import build_source_specs, build_view_asset
from resources.offline_store import OfflineStore


def build_definitions(repository: FeatureRepository, offline_store: OfflineStore | None = None) -> Definitions:
    """Return the Dagster definitions of every view in `repository`, with the stores as resources."""
    views = list(repository.views.values())
    return Definitions(
        assets=[*build_source_specs(views), *(build_view_asset(view) for view in views)],
        schedules=build_daily_schedules(views),
        resources={"offline_store": offline_store or OfflineStore.from_env(as_env_vars=True)},
    )
