"""Schedules that materialize each feature view's previous UTC day shortly after midnight."""

from collections.abc import Sequence

from dagster import ScheduleDefinition, build_schedule_from_partitioned_job, define_asset_job

from feature_assets.language.asset_keys import view_asset_key
from feature_assets.language.feature_view import FeatureView


def build_daily_schedule(view: FeatureView, minute_of_hour: int = 15) -> ScheduleDefinition:
    """Return a schedule that runs the view's previous day at 00:<minute_of_hour> UTC."""
    job = define_asset_job(
        f"{view.name}_daily",
        selection=[view_asset_key(view)],
        description=f"Materialize one day of {view.name}",
    )
    return build_schedule_from_partitioned_job(job, hour_of_day=0, minute_of_hour=minute_of_hour)


def build_daily_schedules(views: Sequence[FeatureView]) -> list[ScheduleDefinition]:
    """Return one daily schedule per feature view."""
    return [build_daily_schedule(view) for view in views]
