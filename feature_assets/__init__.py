"""Feature definitions and the machinery that turns them into Dagster assets.

The definitions language is exported here; retrieval (`point_in_time`), training sets (`training_set`) and
the Dagster factories live in their own modules, which depend on the stores in `resources`.
"""

from feature_assets.entity import Entity
from feature_assets.feature_service import FeatureService
from feature_assets.feature_view import Aggregation, FeatureView
from feature_assets.field import Field
from feature_assets.quality_policy import QualityPolicy
from feature_assets.repository import FeatureRepository
from feature_assets.sources import ParquetSource

__all__ = [
    "Aggregation",
    "Entity",
    "FeatureRepository",
    "FeatureService",
    "FeatureView",
    "Field",
    "ParquetSource",
    "QualityPolicy",
]
