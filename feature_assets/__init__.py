"""A feature store built as a Dagster asset project: the names a user imports.

The definitions language (`Entity`, `Field`, `FeatureView`, ...) and `TrainingSet` are imported eagerly; they need
only Polars. `get_historical_features` and `build_definitions` reach the stores in `resources`, which themselves
import the language, so they are resolved on first use (PEP 562) and `import resources.online_store` works as a
first import.

Layers, each a folder that imports only the ones below it:

    language        0  definitions: entities, fields, sources, views, services, training sets, asset keys
    compute         1  a view partition's rows from its source (Polars)
    quality         2  schema validation, statistics, drift, consistency, alerts   (retrieval beside it)
    retrieval       2  point-in-time joins (DuckDB)
    orchestration   3  Dagster assets, checks, sensors, schedules, jobs and `build_definitions`
    serving, demo   4  command lines and the demo project
"""

from typing import TYPE_CHECKING

from feature_assets.language.entity import Entity
from feature_assets.language.feature_service import FeatureService
from feature_assets.language.feature_view import Aggregation, FeatureView
from feature_assets.language.field import Field
from feature_assets.language.on_demand import OnDemandFeatureView, RequestSource
from feature_assets.language.quality_policy import QualityPolicy
from feature_assets.language.repository import FeatureRepository
from feature_assets.language.sources import ParquetSource, PushSource, StreamSource
from feature_assets.language.training_set import TrainingSet

if TYPE_CHECKING:
    from feature_assets.orchestration.project import build_definitions
    from feature_assets.retrieval.point_in_time import get_historical_features

__all__ = [
    "Aggregation",
    "Entity",
    "FeatureRepository",
    "FeatureService",
    "FeatureView",
    "Field",
    "OnDemandFeatureView",
    "ParquetSource",
    "PushSource",
    "QualityPolicy",
    "RequestSource",
    "StreamSource",
    "TrainingSet",
    "build_definitions",
    "get_historical_features",
]

_LAZY = {
    "build_definitions": "feature_assets.orchestration.project",
    "get_historical_features": "feature_assets.retrieval.point_in_time",
}


def __getattr__(name: str) -> object:
    """Import `build_definitions` and `get_historical_features` on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module 'feature_assets' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
