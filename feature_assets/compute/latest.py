"""The newest row of each entity in a view's offline rows: what the online store serves."""

import polars as pl

from feature_assets.language.feature_view import FeatureView


def latest_per_entity(view: FeatureView, frame: pl.DataFrame) -> pl.DataFrame:
    """Return each entity's newest row (greatest event time, then created time)."""
    if not view.join_keys:
        return frame.sort("event_timestamp", "created_timestamp").tail(1)
    keys = list(view.join_keys)
    if frame.select(keys).n_unique() == frame.height:
        return frame
    return frame.sort("event_timestamp", "created_timestamp").unique(subset=keys, keep="last")
