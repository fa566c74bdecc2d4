"""Per-partition feature statistics, recorded as numeric materialization metadata the Dagster UI plots."""

from collections.abc import Mapping

import polars as pl
from dagster import MetadataValue

from feature_assets.language.feature_view import FeatureView
from feature_assets.quality.drift import CdfSummary, summarize

QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
TOP_CATEGORIES = 20
OTHER_CATEGORIES = "__other__"


def is_categorical(dtype: pl.DataType) -> bool:
    """Return whether a feature of `dtype` is summarized by category shares rather than moments."""
    return dtype in (pl.String, pl.Boolean)


def feature_statistics(view: FeatureView, frame: pl.DataFrame) -> dict[str, dict[str, float | None]]:
    """Return, per feature: count, null %, and min/max/mean/std/quantiles (numeric) or distinct count."""
    expressions: list[pl.Expr] = []
    for field in view.schema:
        column = pl.col(field.name)
        expressions += [column.count().alias(f"{field.name}|count"), column.null_count().alias(f"{field.name}|nulls")]
        if field.dtype.is_numeric():
            values = column.cast(pl.Float64)
            expressions += [
                values.min().alias(f"{field.name}|min"),
                values.max().alias(f"{field.name}|max"),
                values.mean().alias(f"{field.name}|mean"),
                values.std().alias(f"{field.name}|std"),
                *(values.quantile(q).alias(f"{field.name}|{name}") for name, q in QUANTILES.items()),
            ]
        elif is_categorical(field.dtype):
            expressions.append(column.drop_nulls().n_unique().alias(f"{field.name}|distinct"))
    row = frame.select(expressions).row(0, named=True) if expressions else {}
    statistics: dict[str, dict[str, float | None]] = {}
    for name, value in row.items():
        feature, statistic = name.split("|")
        statistics.setdefault(feature, {})[statistic] = None if value is None else float(value)
    for values in statistics.values():
        nulls = values.pop("nulls") or 0.0
        total = (values.get("count") or 0.0) + nulls
        values["null_pct"] = round(100.0 * nulls / total, 4) if total else 0.0
    return statistics


def category_shares(view: FeatureView, frame: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Return each categorical feature's share of non-null rows per category (top categories, the rest pooled)."""
    shares: dict[str, dict[str, float]] = {}
    for field in view.schema:
        if not is_categorical(field.dtype):
            continue
        counts = frame.get_column(field.name).drop_nulls().cast(pl.String).value_counts(sort=True, name="n")
        total = counts["n"].sum()
        if not total:
            shares[field.name] = {}
            continue
        top = counts.head(TOP_CATEGORIES)
        feature_shares = {str(value): n / total for value, n in top.iter_rows()}
        rest = total - top["n"].sum()
        if rest:
            feature_shares[OTHER_CATEGORIES] = rest / total
        shares[field.name] = feature_shares
    return shares


def numeric_summaries(view: FeatureView, frame: pl.DataFrame) -> dict[str, CdfSummary]:
    """Return the CDF summary (deciles, CDF at each, min, max) of each numeric feature with values."""
    summaries = {f.name: summarize(frame.get_column(f.name)) for f in view.schema if f.dtype.is_numeric()}
    return {name: summary for name, summary in summaries.items() if summary is not None}


def statistics_metadata(
    statistics: Mapping[str, Mapping[str, float | None]],
    shares: Mapping[str, Mapping[str, float]],
    summaries: Mapping[str, CdfSummary],
) -> dict[str, float | MetadataValue]:
    """Flatten statistics to metadata entries `<feature>/<statistic>` (undefined values dropped) and shares."""
    metadata: dict[str, float | MetadataValue] = {
        f"{feature}/{name}": value
        for feature, values in statistics.items()
        for name, value in values.items()
        if value is not None
    }
    metadata.update({f"{feature}/shares": MetadataValue.json(dict(values)) for feature, values in shares.items()})
    metadata.update({f"{feature}/cdf": MetadataValue.json(s.to_json()) for feature, s in summaries.items()})
    return metadata
