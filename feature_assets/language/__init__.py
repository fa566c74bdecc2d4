"""The definitions language: what a user writes to declare entities, features, services and training sets."""

from feature_assets.language.entity import Entity
from feature_assets.language.errors import (
    DefinitionError,
    EntityFrameError,
    FeatureReferenceError,
    FeatureStoreError,
    OnlineStoreError,
    PushError,
    SourceSchemaError,
    TransformationOutputError,
)
from feature_assets.language.feature_service import FeatureReference, FeatureService
from feature_assets.language.feature_view import Aggregation, FeatureView
from feature_assets.language.field import Field
from feature_assets.language.on_demand import OnDemandFeatureView, RequestSource
from feature_assets.language.quality_policy import QualityPolicy
from feature_assets.language.repository import FeatureRepository
from feature_assets.language.sources import ParquetSource, PushSource, StreamSource
from feature_assets.language.training_set import TrainingSet

__all__ = [
    "Aggregation",
    "DefinitionError",
    "Entity",
    "EntityFrameError",
    "FeatureReference",
    "FeatureReferenceError",
    "FeatureRepository",
    "FeatureService",
    "FeatureStoreError",
    "FeatureView",
    "Field",
    "OnDemandFeatureView",
    "OnlineStoreError",
    "ParquetSource",
    "PushError",
    "PushSource",
    "QualityPolicy",
    "RequestSource",
    "SourceSchemaError",
    "StreamSource",
    "TrainingSet",
    "TransformationOutputError",
]
