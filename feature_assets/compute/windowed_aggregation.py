"""Windowed aggregations evaluated per entity at each step of a day: the value at step s covers `(s - w, s]`."""

from datetime import UTC, date, datetime, timedelta

import polars as pl

from feature_assets.language.durations import format_duration
from feature_assets.language.feature_view import Aggregation, FeatureView

_BUCKET = "_bucket"
_IS_STEP = "_is_step"


def aggregate_windows(events: pl.LazyFrame, view: FeatureView, day: date) -> pl.LazyFrame:
    """Return one row per entity and step of `day` whose longest window holds events, with every aggregation.

    `events` are normalized source rows (join keys, `event_timestamp`, `created_timestamp`, raw columns).
    Null values are ignored: `count`/`count_distinct` of an empty window is 0, the other functions give null.
    `last` takes the value of the latest event (ties: latest created time, then the greatest value).
    """
    keys = list(view.join_keys)
    step = view.step
    columns = sorted({a.column for a in view.aggregations})
    bucketed = events.select(
        *keys,
        "event_timestamp",
        "created_timestamp",
        *columns,
        ((pl.col("event_timestamp") - pl.duration(microseconds=1)).dt.truncate(format_duration(step)) + step).alias(
            _BUCKET
        ),
    )
    partials = _bucket_partials(bucketed, keys, view.aggregations)
    steps = _day_steps(day, step)
    grid = _evaluation_grid(partials.select(*keys, _BUCKET), keys, steps, view.lookback)

    rolling_aggregations = [a for a in view.aggregations if a.function in ("sum", "count", "mean", "min", "max")]
    result = grid
    if rolling_aggregations:
        rolled = _rolling(partials, grid, keys, rolling_aggregations)
        result = result.join(rolled, on=[*keys, "event_timestamp"], how="left", nulls_equal=True)
    for aggregation in view.aggregations:
        if aggregation.function == "last":
            result = _join_last(result, partials, keys, aggregation)
        elif aggregation.function == "count_distinct":
            result = _join_count_distinct(result, bucketed, keys, aggregation)
    return result.select(
        *keys,
        "event_timestamp",
        pl.col("event_timestamp").alias("created_timestamp"),
        *[pl.col(a.name).cast(a.dtype) for a in view.aggregations],
    )


def _partial_names(column: str) -> dict[str, str]:
    return {kind: f"_{kind}__{column}" for kind in ("sum", "count", "min", "max", "last")}


def _bucket_partials(bucketed: pl.LazyFrame, keys: list[str], aggregations: tuple[Aggregation, ...]) -> pl.LazyFrame:
    """Aggregate events to one row per entity and step bucket (bucket s holds events in `(s - step, s]`)."""
    expressions: list[pl.Expr] = []
    for column in sorted({a.column for a in aggregations}):
        names = _partial_names(column)
        functions = {a.function for a in aggregations if a.column == column}
        count = pl.col(column).count()
        expressions.append(count.alias(names["count"]))
        if functions & {"sum", "mean"}:
            order_free_sum = pl.col(column).sort().cum_sum().last()
            expressions.append(pl.when(count > 0).then(order_free_sum).alias(names["sum"]))
        if "min" in functions:
            expressions.append(pl.col(column).min().alias(names["min"]))
        if "max" in functions:
            expressions.append(pl.col(column).max().alias(names["max"]))
        if "last" in functions:
            latest_non_null = [pl.col(column).is_not_null(), "event_timestamp", "created_timestamp", column]
            expressions.append(pl.col(column).sort_by(latest_non_null).last().alias(names["last"]))
    return bucketed.group_by(*keys, _BUCKET).agg(expressions)


def _day_steps(day: date, step: timedelta) -> pl.LazyFrame:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    count = int(timedelta(days=1) / step)
    return pl.LazyFrame(
        {"event_timestamp": [start + i * step for i in range(count)]},
        schema={"event_timestamp": pl.Datetime("us", "UTC")},
    )


def _evaluation_grid(buckets: pl.LazyFrame, keys: list[str], steps: pl.LazyFrame, lookback: timedelta) -> pl.LazyFrame:
    """Return the (entity, step) pairs whose longest window `(s - lookback, s]` holds at least one bucket."""
    entities = buckets.select(keys).unique()
    candidates = entities.join(steps, how="cross").sort("event_timestamp")
    latest = buckets.sort(_BUCKET)
    return (
        candidates.join_asof(
            latest,
            left_on="event_timestamp",
            right_on=_BUCKET,
            by=keys,
            strategy="backward",
            tolerance=lookback - timedelta(microseconds=1),
            check_sortedness=False,
        )
        .filter(pl.col(_BUCKET).is_not_null())
        .select(*keys, "event_timestamp")
    )


def _rolling(
    partials: pl.LazyFrame, grid: pl.LazyFrame, keys: list[str], aggregations: list[Aggregation]
) -> pl.LazyFrame:
    """Roll bucket partials over each window and keep the values at the grid's steps."""
    combined = pl.concat(
        [
            partials.rename({_BUCKET: "event_timestamp"}).with_columns(pl.lit(False).alias(_IS_STEP)),
            grid.with_columns(pl.lit(True).alias(_IS_STEP)),
        ],
        how="diagonal",
    ).sort(*keys, "event_timestamp", _IS_STEP)
    expressions = []
    for aggregation in aggregations:
        names = _partial_names(aggregation.column)
        window = format_duration(aggregation.window)

        def rolled(partial: str, kind: str, window: str = window) -> pl.Expr:
            roll = getattr(pl.col(partial), f"rolling_{kind}_by")
            return roll("event_timestamp", window_size=window, closed="right").over(keys)

        count = rolled(names["count"], "sum").fill_null(0)
        if aggregation.function == "count":
            value = count
        elif aggregation.function == "sum":
            value = pl.when(count > 0).then(rolled(names["sum"], "sum"))
        elif aggregation.function == "mean":
            value = pl.when(count > 0).then(rolled(names["sum"], "sum") / count)
        else:
            value = pl.when(count > 0).then(rolled(names[aggregation.function], aggregation.function))
        expressions.append(value.alias(aggregation.name))
    return (
        combined.with_columns(expressions)
        .filter(pl.col(_IS_STEP))
        .select(*keys, "event_timestamp", *[a.name for a in aggregations])
    )


def _join_last(result: pl.LazyFrame, partials: pl.LazyFrame, keys: list[str], aggregation: Aggregation) -> pl.LazyFrame:
    """Attach the value of the latest bucket inside `(s - window, s]` that has a non-null value."""
    last = _partial_names(aggregation.column)["last"]
    latest = (
        partials.filter(pl.col(last).is_not_null())
        .select(*keys, _BUCKET, pl.col(last).alias(aggregation.name))
        .sort(_BUCKET)
    )
    return (
        result.sort("event_timestamp")
        .join_asof(
            latest,
            left_on="event_timestamp",
            right_on=_BUCKET,
            by=keys,
            strategy="backward",
            tolerance=aggregation.window - timedelta(microseconds=1),
            check_sortedness=False,
        )
        .drop(_BUCKET)
    )


def _join_count_distinct(
    result: pl.LazyFrame, bucketed: pl.LazyFrame, keys: list[str], aggregation: Aggregation
) -> pl.LazyFrame:
    """Attach the number of distinct non-null values in `(s - window, s]`, by counting covering intervals.

    A value seen in bucket b counts at every step in `[b, b + window)`; overlapping spans of one value form a
    run `[first b, last b + window)`, and the count at s is the number of runs covering s: a running sum of +1
    at run starts and -1 at run ends. Each entity's deltas sum to zero, so one running sum over the frame
    sorted by entity and time equals the per-entity sums.
    """
    column, window = aggregation.column, aggregation.window
    series = [*keys, "_value"]
    seen = (
        bucketed.filter(pl.col(column).is_not_null())
        .select(*keys, pl.col(column).alias("_value"), _BUCKET)
        .sort(*series, _BUCKET)
    )
    same_series = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in series)
    duplicate = same_series & (pl.col(_BUCKET) == pl.col(_BUCKET).shift(1))
    distinct = seen.filter(~duplicate.fill_null(False))
    starts_run = (~same_series | (pl.col(_BUCKET) - pl.col(_BUCKET).shift(1) >= window)).fill_null(True)
    marked = distinct.with_columns(starts_run.alias("_starts"))
    ends_run = pl.col("_starts").shift(-1).fill_null(True)
    deltas = pl.concat(
        [
            marked.filter(pl.col("_starts")).select(*keys, pl.col(_BUCKET).alias("_at"), pl.lit(1).alias("_delta")),
            marked.filter(ends_run).select(*keys, (pl.col(_BUCKET) + window).alias("_at"), pl.lit(-1).alias("_delta")),
            result.select(*keys, pl.col("event_timestamp").alias("_at"), pl.lit(0).alias("_delta")),
        ]
    )
    counts = (
        deltas.with_columns((pl.col("_delta") == 0).alias(_IS_STEP))
        .sort(*keys, "_at", _IS_STEP)
        .with_columns(pl.col("_delta").cum_sum().alias(aggregation.name))
        .filter(pl.col(_IS_STEP))
        .select(*keys, pl.col("_at").alias("event_timestamp"), aggregation.name)
    )
    return result.join(counts, on=[*keys, "event_timestamp"], how="left", nulls_equal=True)
