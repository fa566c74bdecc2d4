"""Feature definitions and the machinery that turns them into Dagster assets."""

from feature_assets.entity import Entity
from feature_assets.feature_service import FeatureService
from feature_assets.feature_view import Aggregation, FeatureView
from feature_assets.field import Field
from feature_assets.point_in_time import get_historical_features
from feature_assets.quality_policy import QualityPolicy
from feature_assets.repository import FeatureRepository
from feature_assets.sources import ParquetSource
from feature_assets.training_set import TrainingSet

__all__ = [
    "Aggregation",
    "Entity",
    "FeatureRepository",
    "FeatureService",
    "FeatureView",
    "Field",
    "ParquetSource",
    "QualityPolicy",
    "TrainingSet",
    "get_historical_features",
]
