"""Assembly of a feature repository into Dagster definitions: sources, views, online tables, checks, automation."""

from collections.abc import Sequence

from dagster import AssetSelection, DefaultScheduleStatus, Definitions, ScheduleDefinition, define_asset_job

from feature_assets.language.repository import FeatureRepository
from feature_assets.language.training_set import TrainingSet
from feature_assets.orchestration.alert_sensor import build_alert_sensor
from feature_assets.orchestration.executors import executor_from_env
from feature_assets.orchestration.freshness import build_freshness_checks, build_freshness_sensor
from feature_assets.orchestration.jobs import build_materialize_jobs
from feature_assets.orchestration.online_assets import build_online_asset
from feature_assets.orchestration.online_rebuild_job import build_rebuild_job
from feature_assets.orchestration.publishing import build_publishing_sensor
from feature_assets.orchestration.schedules import build_daily_schedules
from feature_assets.orchestration.stream_assets import build_stream_checks, build_stream_online_spec
from feature_assets.orchestration.training_assets import build_training_set_asset
from feature_assets.orchestration.usage_observations import build_usage_sensor
from feature_assets.orchestration.view_assets import build_source_specs, build_view_asset
from resources.alert_webhook import AlertWebhook
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore


def build_definitions(
    repository: FeatureRepository,
    offline_store: OfflineStore | None = None,
    online_store: RedisOnlineStore | None = None,
    alert_webhook: AlertWebhook | None = None,
    training_sets: Sequence[TrainingSet] = (),
) -> Definitions:
    """Return the Dagster definitions of every view in `repository`, with the stores as resources."""
    views = list(repository.views.values())
    online_views = [view for view in views if view.online and not view.streaming]
    streaming_views = [view for view in views if view.online and view.streaming]
    view_assets = {view.name: build_view_asset(view) for view in views}
    freshness_checks = build_freshness_checks(view_assets, views)
    stream_checks = [build_stream_checks(streaming_views)] if streaming_views else []
    stream_jobs = [
        define_asset_job(
            "check_streams",
            selection=AssetSelection.checks(*stream_checks),
            description="Checks the stream workers' lag and dead-letter streams",
        )
        for _ in stream_checks
    ]
    return Definitions(
        assets=[
            *build_source_specs(views),
            *view_assets.values(),
            *(build_online_asset(view) for view in online_views),
            *(build_stream_online_spec(view) for view in streaming_views),
            *(build_training_set_asset(training_set, repository) for training_set in training_sets),
        ],
        asset_checks=[*freshness_checks, *stream_checks],
        jobs=[
            *build_materialize_jobs(views, excluded_checks=[*freshness_checks, *stream_checks]),
            *stream_jobs,
            *([build_rebuild_job(views)] if online_views else []),
        ],
        schedules=[
            *build_daily_schedules(views),
            *(
                ScheduleDefinition(
                    job=job,
                    cron_schedule="*/5 * * * *",
                    default_status=DefaultScheduleStatus.STOPPED,
                    description="Runs the stream checks every five minutes (turn it on in the UI)",
                )
                for job in stream_jobs
            ),
        ],
        sensors=[
            *([build_publishing_sensor(views)] if online_views else []),
            *([build_freshness_sensor(freshness_checks)] if freshness_checks else []),
            build_alert_sensor(),
            *([build_usage_sensor(views)] if online_views or streaming_views else []),
        ],
        executor=executor_from_env(),
        resources={
            "offline_store": offline_store or OfflineStore.from_env(as_env_vars=True),
            "online_store": online_store or RedisOnlineStore.from_env(),
            "alert_webhook": alert_webhook or AlertWebhook.from_env(as_env_vars=True),
        },
    )
