"""What stream workers serve at any instant T, computed from the event log: the training side of zero skew.

At T, with F = floor(T / step) and B = ceil(T / step), an aggregation of window w covers events whose bucket
b = ceil(event time / step) is in `(F - w / step, B]`, that had arrived by T (arrival <= T) and were not late
(arrival - event time <= the view's allowed lateness). No event in the longest window gives a row of nulls; a view
ttl nulls the row when its newest event in that window is older than T - ttl. `resources.stream_scripts` applies
and reads the same rule in Redis.
"""

from datetime import timedelta

import polars as pl

from feature_assets.language.feature_view import Aggregation, FeatureView

_ONE_MICROSECOND = timedelta(microseconds=1)


def served_values(
    view: FeatureView,
    events: pl.LazyFrame,
    requests: pl.DataFrame,
    row: str,
    time: str,
    arrived_by_us: int | None = None,
) -> pl.DataFrame:
    """Return one row per request (`row` id, join keys, `time` in µs) with the view's features as served at that time.

    `events` is the view's event log (see `compute.stream_events`). Rows come back in request order. With
    `arrived_by_us`, events count when they arrived by then instead of by each request's time (what the tiles hold
    now, read for an earlier instant).
    """
    step = view.step // _ONE_MICROSECOND
    lookback = view.lookback // step // _ONE_MICROSECOND
    lateness = (view.allowed_lateness or timedelta(0)) // _ONE_MICROSECOND
    keys = list(view.join_keys)
    logged = events.select(
        *keys,
        pl.col("event_timestamp").dt.epoch("us").alias("_event"),
        pl.col("created_timestamp").dt.epoch("us").alias("_arrival"),
        *view.stream_columns,
    ).with_columns(((pl.col("_event") + step - 1) // step).alias("_bucket"))
    logged = logged.filter(pl.col("_arrival") - pl.col("_event") <= lateness)
    asked = requests.lazy().select(
        row,
        *keys,
        pl.col(time).alias("_t"),
        (pl.col(time) // step).alias("_F"),
        ((pl.col(time) + step - 1) // step).alias("_B"),
    )
    arrived = pl.col("_arrival") <= (pl.col("_t") if arrived_by_us is None else pl.lit(arrived_by_us))
    matched = asked.join(logged, on=keys, how="inner").filter(
        arrived & (pl.col("_bucket") > pl.col("_F") - lookback) & (pl.col("_bucket") <= pl.col("_B"))
    )
    values = matched.group_by(row).agg(
        pl.col("_event").max().alias("_newest"),
        pl.col("_t").first(),
        *[_aggregate(aggregation, step) for aggregation in view.aggregations],
    )
    if view.ttl is not None:
        expired = pl.col("_newest") < pl.col("_t") - view.ttl // _ONE_MICROSECOND
        values = values.with_columns(
            pl.when(expired).then(None).otherwise(pl.col(a.name)).alias(a.name) for a in view.aggregations
        )
    names = [a.name for a in view.aggregations]
    return (
        requests.lazy()
        .select(row)
        .join(values.select(row, *names), on=row, how="left", maintain_order="left")
        .select(row, *[pl.col(a.name).cast(a.dtype) for a in view.aggregations])
        .collect()
    )


def _aggregate(aggregation: Aggregation, step: int) -> pl.Expr:
    """Return the aggregation over the matched events of one request that fall in its own window."""
    in_window = pl.col("_bucket") > pl.col("_F") - aggregation.window // _ONE_MICROSECOND // step
    value = pl.col(aggregation.column).filter(in_window & pl.col(aggregation.column).is_not_null())
    count = value.len()
    function = aggregation.function
    if function == "count":
        result = count
    elif function == "sum":
        result = pl.when(count > 0).then(value.sum())
    elif function == "mean":
        result = pl.when(count > 0).then(value.sum() / count)
    elif function == "min":
        result = value.min()
    elif function == "max":
        result = value.max()
    else:
        order = [pl.col("_event"), pl.col("_arrival"), pl.col(aggregation.column)]
        result = value.sort_by([o.filter(in_window & pl.col(aggregation.column).is_not_null()) for o in order]).last()
    return result.alias(aggregation.name)
