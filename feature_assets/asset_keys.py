"""The asset and check keys of sources, views and online tables: the names the asset graph uses."""

from dagster import AssetCheckKey, AssetKey

from feature_assets.feature_view import FeatureView
from feature_assets.sources import ParquetSource

SCHEMA_CHECK = "schema"


def source_asset_key(source: ParquetSource) -> AssetKey:
    """Return the asset key of a raw source."""
    return AssetKey(["source", source.name])


def view_asset_key(view: FeatureView) -> AssetKey:
    """Return the asset key of a feature view's offline table."""
    return AssetKey(view.name)


def online_asset_key(view: FeatureView) -> AssetKey:
    """Return the asset key of a view's online table."""
    return AssetKey(["online", view.name])


def schema_check_key(view: FeatureView) -> AssetCheckKey:
    """Return the key of the view's blocking schema check."""
    return AssetCheckKey(view_asset_key(view), SCHEMA_CHECK)
