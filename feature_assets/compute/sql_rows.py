"""A view's SQL over the day's source rows: the same rows a Python transformation receives, run by Polars' SQL."""

import polars as pl

from feature_assets.language.errors import TransformationOutputError, first_line
from feature_assets.language.feature_view import FeatureView

SOURCE_TABLE = "source"


def sql_rows(view: FeatureView, events: pl.LazyFrame) -> pl.LazyFrame:
    """Return the rows of the view's `sql`, run over `events` registered as `source` (and as the source's name)."""
    if view.sql is None:
        raise TransformationOutputError(f"FeatureView {view.name!r} has no sql")
    context = pl.SQLContext({SOURCE_TABLE: events, view.source.name: events})
    try:
        rows = context.execute(view.sql, eager=False)
        rows.collect_schema()
    except pl.exceptions.PolarsError as error:
        raise TransformationOutputError(
            f"FeatureView {view.name!r}: its sql does not run over the source rows ({first_line(error)}); "
            f"the table is {SOURCE_TABLE!r} with columns {list(events.collect_schema())}; the query: {view.sql}"
        ) from error
    return rows
