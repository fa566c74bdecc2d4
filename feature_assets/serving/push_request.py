"""`POST /push` in Feast's shape: the views a push source feeds (for grants) and its JSON columns with times parsed."""

from collections.abc import Mapping, Sequence

import polars as pl

from feature_assets.language.errors import FeatureReferenceError
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.repository import FeatureRepository
from feature_assets.serving.request_fields import parse_day, parse_timestamp


def push_source_names(repository: FeatureRepository) -> list[str]:
    """Return the names of the push and stream sources of the repository's views."""
    return sorted({view.source.name for view in repository.views.values() if view.takes_pushes})


def views_fed_by(repository: FeatureRepository, source: str) -> list[FeatureView]:
    """Return every view whose source is the push (or stream) source `source`, or raise naming the known ones."""
    views = [view for view in repository.views.values() if view.takes_pushes and view.source.name == source]
    if not views:
        raise FeatureReferenceError(
            f"unknown push source {source!r}; known push and stream sources: {push_source_names(repository)}"
        )
    return views


def typed_columns(views: Sequence[FeatureView], columns: Mapping[str, list[object]]) -> dict[str, list[object]]:
    """Return the pushed columns with ISO times parsed in time columns (event time, Datetime and Date features)."""
    datetimes, dates = {"event_timestamp"}, set()
    for view in views:
        datetimes.add(view.source.timestamp_field)
        for f in view.schema:
            if isinstance(f.dtype, pl.Datetime):
                datetimes.add(f.name)
            elif f.dtype == pl.Date:
                dates.add(f.name)
    typed = dict(columns)
    for name, values in columns.items():
        parse = parse_timestamp if name in datetimes else parse_day if name in dates else None
        if parse is not None:
            typed[name] = [
                value if value is None else parse(value, f"field 'df': column {name!r} row {index}")
                for index, value in enumerate(values)
            ]
    return typed
