"""Per-partition feature statistics, recorded as numeric materialization metadata the Dagster UI plots."""

from collections.abc import Mapping

import polars as pl

from feature_assets.feature_view import FeatureView

NUMERIC_STATISTICS = ("min", "max", "mean", "std", "p05", "p50", "p95")


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
                values.quantile(0.05).alias(f"{field.name}|p05"),
                values.quantile(0.5).alias(f"{field.name}|p50"),
                values.quantile(0.95).alias(f"{field.name}|p95"),
            ]
        elif field.dtype in (pl.String, pl.Boolean):
            expressions.append(column.drop_nulls().n_unique().alias(f"{field.name}|distinct"))
    row = frame.select(expressions).row(0, named=True) if expressions else {}
    statistics: dict[str, dict[str, float | None]] = {}
    for name, value in row.items():
        feature, statistic = name.split("|")
        statistics.setdefault(feature, {})[statistic] = None if value is None else float(value)
    for feature, values in statistics.items():
        total = (values.get("count") or 0) + (values.get("nulls") or 0)
        values["null_pct"] = round(100.0 * (values.pop("nulls") or 0) / total, 4) if total else 0.0
        statistics[feature] = values
    return statistics


def statistics_metadata(statistics: Mapping[str, Mapping[str, float | None]]) -> dict[str, float]:
    """Flatten statistics to metadata entries named `<feature>/<statistic>`, dropping undefined values."""
    return {
        f"{feature}/{name}": value
        for feature, values in statistics.items()
        for name, value in values.items()
        if value is not None
    }
