"""Retrieval: point-in-time correct training data from the offline store."""

from feature_assets.retrieval.point_in_time import get_historical_features

__all__ = ["get_historical_features"]
