"""The asset and check keys of sources, views, online tables and training sets: the names the asset graph uses.

They are plain values, so every layer may refer to them; nothing here builds an asset.
"""

from dagster import AssetCheckKey, AssetKey

from feature_assets.language.feature_view import FeatureView
from feature_assets.language.sources import Source
from feature_assets.language.training_set import TrainingSet

SCHEMA_CHECK = "schema"


def source_asset_key(source: Source) -> AssetKey:
    """Return the asset key of a raw source."""
    return AssetKey(["source", source.name])


def view_asset_key(view: FeatureView) -> AssetKey:
    """Return the asset key of a feature view's offline table."""
    return AssetKey(view.name)


def online_asset_key(view: FeatureView) -> AssetKey:
    """Return the asset key of a view's online table."""
    return AssetKey(["online", view.name])


def training_set_asset_key(training_set: TrainingSet) -> AssetKey:
    """Return the asset key of a training set."""
    return AssetKey(["training", training_set.name])


def schema_check_key(view: FeatureView) -> AssetCheckKey:
    """Return the key of the view's blocking schema check."""
    return AssetCheckKey(view_asset_key(view), SCHEMA_CHECK)
