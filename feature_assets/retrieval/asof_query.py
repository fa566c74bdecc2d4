"""The DuckDB ASOF query that joins one view's partitions to the registered entity rows."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from feature_assets.language.feature_view import FeatureView
from feature_assets.retrieval.entity_rows import ROW, TIME

AsOf = Literal["event", "available"]

_ORDER = "__o"
_AVAILABLE = "__available"
_EVENT = "epoch_us(event_timestamp)"
_FILE = "__file"
_FILE_ROW = "__file_row"
_ONE_MICROSECOND = timedelta(microseconds=1)
# (event, created) packed into one HUGEINT: event in the high 64 bits, created shifted to unsigned in the low 64.
_VIEW_ORDER = (
    "(epoch_us(event_timestamp)::HUGEINT << 64) + (epoch_us(created_timestamp)::HUGEINT + 9223372036854775808)"
)


@dataclass(frozen=True)
class QuerySlice:
    """The part of a join one query does: view rows with event time in `[low, high]` (no lower bound when `low` is
    None) and, when `buckets` > 1, only entities whose join-key hash falls in `bucket`. `unique_event_times`: no
    two of the rows share join keys and event time, so the event time alone orders them."""

    low: int | None
    high: int
    buckets: int = 1
    bucket: int = 0
    unique_event_times: bool = False


def reach(view: FeatureView) -> timedelta | None:
    """Return how old a matched row may be: the ttl; for aggregations, less than one step (the row at T's step).

    A windowed aggregation has a row at every step whose longest window holds events, so an older row means the
    windows at T's step are empty: the values are null, not the stale row's.
    """
    if not view.aggregations:
        return view.ttl
    within_step = view.step - _ONE_MICROSECOND
    return within_step if view.ttl is None else min(view.ttl, within_step)


def view_query(
    view: FeatureView, features: dict[str, str], as_of: AsOf, ceiling: str, part: QuerySlice, late_fetch: bool = False
) -> tuple[str, dict[str, object]]:
    """Return the ASOF LEFT JOIN of the registered entities with one view's `$files`, and its parameters.

    `features` maps each feature to its output column; the result has the entity row number first, in entity order.
    `event`: view rows are ordered by (event, created) packed in a HUGEINT; an entity row at T matches the
    greatest one below (T + 1us, 0): the latest event at or before T and, among equal events, the latest created.
    `available`: a row can be seen from max(event, created) on. Keeping only rows whose (event, created) beats
    every row available no later than them leaves, per key, a sequence where the last row available at T is the
    best row available at T, so an ASOF on the availability time finds it.
    Either way the packed value carries the matched row's event time (high 64 bits) for the ttl check. When the
    slice's rows have unique event times per key, the event time alone (a BIGINT, a third faster to join) orders
    them the same way. Leaving out
    rows older than the slice's `low` (its first entity time minus the reach) changes no answer: such a row is
    older than the ttl allows at every entity time of the slice, and it never outranks a row that is kept.
    With `late_fetch` (wide views) the ASOF carries only each row's file and row number, and the features of the
    matched rows are read afterwards by a hash join on them, so the join never holds the view's wide rows.
    """
    keys = view.join_keys
    carried = [_FILE, _FILE_ROW] if late_fetch else list(features)
    selected = ", ".join([*(_quote(k) for k in keys), *(_quote(c) for c in carried)])
    equalities = [f"e.{_quote(k)} = v.{_quote(k)}" for k in keys]
    conditions = ["epoch_us(event_timestamp) <= $high"]
    parameters: dict[str, object] = {"high": part.high}
    if part.low is not None:
        conditions.append("epoch_us(event_timestamp) >= $low")
        parameters["low"] = part.low
    entity_filter = ""
    if part.buckets > 1:
        hashed = f"hash({', '.join(_quote(k) for k in keys)}) % $buckets = $bucket"
        conditions.append(hashed)
        entity_filter = f" WHERE {hashed}"
        parameters.update(buckets=part.buckets, bucket=part.bucket)
    rows = f"{_scan(late_fetch)} WHERE {' AND '.join(conditions)}"
    view_order = _EVENT if part.unique_event_times else _VIEW_ORDER
    if as_of == "event" and part.unique_event_times:
        entity_rows = f"(SELECT * FROM entities{entity_filter})"
        view_rows = f"SELECT {selected}, {view_order} AS {_ORDER} FROM {rows}"
        condition = f"e.{TIME} >= v.{_ORDER}"
    elif as_of == "event":
        entity_rows = f"(SELECT *, (({TIME} + 1)::HUGEINT << 64) AS {_ORDER} FROM entities{entity_filter})"
        view_rows = f"SELECT {selected}, {view_order} AS {_ORDER} FROM {rows}"
        condition = f"e.{_ORDER} > v.{_ORDER}"
    else:
        partition = f"PARTITION BY {', '.join(_quote(k) for k in keys)} " if keys else ""
        entity_rows = f"(SELECT * FROM entities{entity_filter})"
        view_rows = (
            f"SELECT {selected}, {_ORDER}, {_AVAILABLE} FROM ("
            f"SELECT {selected}, {view_order} AS {_ORDER}, "
            f"greatest(epoch_us(event_timestamp), epoch_us(created_timestamp)) AS {_AVAILABLE} "
            f"FROM {rows}) "
            f"QUALIFY {_ORDER} = max({_ORDER}) OVER ({partition}ORDER BY {_AVAILABLE} "
            f"RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
        )
        condition = f"e.{TIME} >= v.{_AVAILABLE}"
    matched = f"FROM {entity_rows} e ASOF LEFT JOIN ({view_rows}) v ON {' AND '.join([*equalities, condition])}"
    if not late_fetch:
        outputs = _outputs(view, features, "v", _event_of(f"v.{_ORDER}", part), f"e.{ceiling}")
        return f"SELECT e.{ROW}, {outputs} {matched} ORDER BY e.{ROW}", parameters
    fetched = ", ".join(_quote(f) for f in features)
    sql = (
        f"SELECT m.{ROW}, {_outputs(view, features, 'w', _event_of(f'm.{_ORDER}', part), f'm.{ceiling}')} FROM ("
        f"SELECT e.{ROW}, e.{ceiling}, v.{_FILE}, v.{_FILE_ROW}, v.{_ORDER} {matched}) m "
        f"LEFT JOIN (SELECT {_FILE}, {_FILE_ROW}, {fetched} FROM {_scan(True)}) w "
        f"ON m.{_FILE} = w.{_FILE} AND m.{_FILE_ROW} = w.{_FILE_ROW} ORDER BY m.{ROW}"
    )
    return sql, parameters


def _scan(numbered: bool) -> str:
    """Return the scan of the view's files, with each row's file and row number when `numbered`."""
    if not numbered:
        return "read_parquet($files)"
    return (
        f"(SELECT *, filename AS {_FILE}, file_row_number AS {_FILE_ROW} "
        "FROM read_parquet($files, filename = true, file_row_number = true))"
    )


def _event_of(order: str, part: QuerySlice) -> str:
    """Return the matched row's event time (epoch micros) from its order column."""
    return order if part.unique_event_times else f"({order} >> 64)::BIGINT"


def _outputs(view: FeatureView, features: dict[str, str], values: str, event: str, ceiling: str) -> str:
    """Return each feature's output column from `values`, null when the matched row's `event` time is older than
    the reach before the entity time's `ceiling`."""
    limit = reach(view)
    outputs = []
    for feature, name in features.items():
        value = f"{values}.{_quote(feature)}"
        if limit is not None:
            ttl = limit // _ONE_MICROSECOND
            value = f"CASE WHEN {event} >= {ceiling} - {ttl} THEN {value} END"
        outputs.append(f"{value} AS {_quote(name)}")
    return ", ".join(outputs)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
