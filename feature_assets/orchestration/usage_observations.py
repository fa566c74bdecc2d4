"""The read usage sensor: observes each online view asset with its read counts, so the UI plots how it is used.

The server and the Python resource count online reads and flush them to Redis (`resources.read_usage`). Every few
minutes this sensor reads those counters and reports one AssetObservation per online view whose reads changed since
the last tick, with numeric metadata: reads of the view, reads since the last observation, and reads of each feature.
The cursor keeps the last reads per view, so an unchanged view is not observed again.
"""

import json
from collections.abc import Sequence

import redis
from dagster import (
    AssetObservation,
    DefaultSensorStatus,
    MetadataValue,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from feature_assets.language.asset_keys import online_asset_key
from feature_assets.language.errors import OnlineStoreError
from feature_assets.language.feature_view import FeatureView
from resources.online_store import RedisOnlineStore
from resources.read_usage import UsageCounts, usage_counts

USAGE_SENSOR = "read_usage"
READS = "reads"
NEW_READS = "reads since last observation"


def feature_reads_label(feature: str) -> str:
    """Return the metadata label of one feature's read count."""
    return f"reads of {feature}"


def usage_observation(view: FeatureView, counts: UsageCounts, previous: int) -> AssetObservation:
    """Return the observation of an online view's reads, given its reads at the previous observation."""
    reads = counts.views.get(view.name, 0)
    metadata = {
        READS: MetadataValue.int(reads),
        NEW_READS: MetadataValue.int(reads - previous if reads >= previous else reads),
        **{
            feature_reads_label(feature): MetadataValue.int(counts.features.get(f"{view.name}:{feature}", 0))
            for feature in view.feature_names
        },
    }
    return AssetObservation(asset_key=online_asset_key(view), metadata=metadata)


def build_usage_sensor(views: Sequence[FeatureView], minimum_interval_seconds: int = 300) -> SensorDefinition:
    """Return the sensor observing the online views' read counts whenever they change."""
    online_views = [view for view in views if view.online]

    @sensor(
        name=USAGE_SENSOR,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Observes each online view with the reads counted by the feature server and the Python resource "
            "(per feature and in total), when they changed; see the view's Metadata > Plots."
        ),
    )
    def read_usage(context: SensorEvaluationContext, online_store: RedisOnlineStore) -> SensorResult | SkipReason:
        last: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        try:
            counts = usage_counts(online_store.client, online_store.key_prefix)
        except (redis.RedisError, OSError, OnlineStoreError) as error:
            return SkipReason(f"could not read the usage counters from Redis ({error}); retrying next tick")
        observations = []
        for view in online_views:
            reads = counts.views.get(view.name, 0)
            if reads != last.get(view.name, 0):
                observations.append(usage_observation(view, counts, last.get(view.name, 0)))
                last[view.name] = reads
        cursor = json.dumps(last, sort_keys=True)
        if not observations:
            return SensorResult(skip_reason=SkipReason("no online view was read since the last tick"), cursor=cursor)
        return SensorResult(asset_events=observations, cursor=cursor)

    return read_usage
