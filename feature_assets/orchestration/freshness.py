"""Freshness: each view's latest complete day must be materialized by its deadline (Dagster's freshness checks).

Dagster 1.13 marks these check builders as superseded by `FreshnessPolicy`; we keep them on purpose, because their
results are asset check evaluations, which the quality alert sensor and the quality report read like every other
check, while a `FreshnessPolicy` reports freshness state changes instead.
"""

import warnings
from collections.abc import Mapping, Sequence

from dagster import (
    AssetChecksDefinition,
    AssetsDefinition,
    DefaultSensorStatus,
    SensorDefinition,
    SupersessionWarning,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
)

from feature_assets.language.feature_view import FeatureView


def build_freshness_checks(
    view_assets: Mapping[str, AssetsDefinition], views: Sequence[FeatureView]
) -> list[AssetChecksDefinition]:
    """Return WARN freshness checks: yesterday's partition must exist by the view's `freshness_deadline_cron`."""
    by_deadline: dict[str, list[AssetsDefinition]] = {}
    for view in views:
        by_deadline.setdefault(view.quality.freshness_deadline_cron, []).append(view_assets[view.name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return [
            check
            for deadline, assets in sorted(by_deadline.items())
            for check in build_time_partition_freshness_checks(assets=assets, deadline_cron=deadline, timezone="UTC")
        ]


def build_freshness_sensor(checks: Sequence[AssetChecksDefinition]) -> SensorDefinition:
    """Return the sensor that evaluates the freshness checks as their deadlines pass."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return build_sensor_for_freshness_checks(
            freshness_checks=checks, name="freshness_checks", default_status=DefaultSensorStatus.RUNNING
        )
