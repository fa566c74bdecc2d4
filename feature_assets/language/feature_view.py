"""Feature views: a source, entities, a typed schema and how features are computed from the source."""

import hashlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal, get_args

import polars as pl

from feature_assets.language.durations import format_duration, parse_duration
from feature_assets.language.entity import Entity
from feature_assets.language.errors import DefinitionError
from feature_assets.language.field import Field, normalize_dtype
from feature_assets.language.names import validate_name
from feature_assets.language.quality_policy import QualityPolicy
from feature_assets.language.sources import ParquetSource, PushSource, Source, StreamSource

AggregationFunction = Literal["sum", "count", "mean", "min", "max", "last", "count_distinct"]
Transformation = Callable[[pl.LazyFrame], pl.LazyFrame]

_OWNER = re.compile(r"team:[A-Za-z0-9_-]+|[^@\s]+@[^@\s]+\.[^@\s]+")
_COUNTING: frozenset[str] = frozenset({"count", "count_distinct"})
STREAMED_FUNCTIONS: tuple[str, ...] = ("sum", "count", "mean", "min", "max", "last")
MAX_STREAMED_STEPS = 2000


@dataclass(frozen=True)
class Aggregation:
    """A windowed aggregation of one source column, e.g. the sum of `fare` over the trailing `7d`."""

    column: str
    function: AggregationFunction
    window: timedelta
    name: str
    dtype: pl.DataType

    def __init__(
        self,
        column: str,
        function: AggregationFunction,
        window: str | timedelta,
        *,
        name: str | None = None,
        dtype: pl.DataType | type[pl.DataType] | None = None,
    ) -> None:
        if function not in get_args(AggregationFunction):
            raise DefinitionError(
                f"Aggregation of {column!r}: unknown function {function!r}; "
                f"use one of {', '.join(get_args(AggregationFunction))}"
            )
        window_td = parse_duration(window, f"Aggregation {column!r} {function}")
        out_name = name or f"{column}_{function}_{format_duration(window_td)}"
        validate_name(out_name, f"Aggregation {column!r} {function} output")
        if function in _COUNTING:
            if dtype is not None:
                raise DefinitionError(f"Aggregation {out_name!r}: {function} always yields Int64; drop dtype")
            out_dtype: pl.DataType = pl.Int64()
        else:
            out_dtype = normalize_dtype(dtype or pl.Float64, f"Aggregation {out_name!r}")
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "function", function)
        object.__setattr__(self, "window", window_td)
        object.__setattr__(self, "name", out_name)
        object.__setattr__(self, "dtype", out_dtype)


@dataclass(frozen=True, eq=False)
class FeatureView:
    """A named, versioned group of features of some entities, computed from one source per daily partition."""

    name: str
    entities: tuple[Entity, ...]
    source: Source
    schema: tuple[Field, ...]
    ttl: timedelta | None
    online: bool
    owner: str | None
    tags: Mapping[str, str]
    description: str
    version: int
    transformation: Transformation | None
    sql: str | None
    aggregations: tuple[Aggregation, ...]
    step: timedelta
    start_date: date
    quality: QualityPolicy
    allowed_lateness: timedelta | None
    partitions_per_run: int | None
    execution_tags: dict[str, object]
    fields_by_name: Mapping[str, Field] = field(repr=False)

    def __init__(
        self,
        name: str,
        *,
        entities: Sequence[Entity],
        source: Source,
        schema: Sequence[Field] = (),
        ttl: str | timedelta | None = None,
        online: bool = True,
        owner: str | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        version: int = 1,
        transformation: Transformation | None = None,
        sql: str | None = None,
        aggregations: Sequence[Aggregation] = (),
        step: str | timedelta = "1h",
        start_date: str | date = "2024-01-01",
        quality: QualityPolicy | None = None,
        allowed_lateness: str | timedelta | None = None,
        partitions_per_run: int | None = None,
        execution_tags: Mapping[str, object] | None = None,
    ) -> None:
        validate_name(name, "FeatureView")
        where = f"FeatureView {name!r}"
        if partitions_per_run is not None and (not isinstance(partitions_per_run, int) or partitions_per_run < 1):
            raise DefinitionError(
                f"{where}: partitions_per_run must be a positive integer (None: a backfill is one run), "
                f"got {partitions_per_run!r}"
            )
        if not isinstance(source, ParquetSource | PushSource):
            raise DefinitionError(
                f"{where}: source must be a ParquetSource or a PushSource, got {type(source).__name__}"
            )
        if isinstance(source, StreamSource):
            _check_streamed(where, transformation, sql, aggregations)
        elif allowed_lateness is not None:
            raise DefinitionError(f"{where}: allowed_lateness applies to views on a StreamSource only; drop it")
        elif isinstance(source, PushSource) and (transformation is not None or sql is not None or aggregations):
            raise DefinitionError(
                f"{where}: a PushSource feeds a view whose features are the pushed columns; drop the "
                "transformation, sql and aggregations, or read the source's batch_source instead"
            )
        if sql is not None and (not isinstance(sql, str) or not sql.strip()):
            raise DefinitionError(f"{where}: sql must be a SELECT statement over the table 'source', got {sql!r}")
        if sql is not None and (transformation is not None or aggregations):
            raise DefinitionError(f"{where}: give one of sql, a transformation or aggregations")
        entities = tuple(entities)
        for entity in entities:
            if not isinstance(entity, Entity):
                raise DefinitionError(f"{where}: entities must be Entity objects, got {entity!r}")
        keys = [key for entity in entities for key in entity.join_keys]
        if len(set(keys)) != len(keys):
            raise DefinitionError(f"{where}: join keys {keys} repeat across its entities")
        if transformation is not None and aggregations:
            raise DefinitionError(f"{where}: give either a transformation or aggregations, not both")
        if owner is not None and not _OWNER.fullmatch(owner):
            raise DefinitionError(f"{where}: owner {owner!r} must be an email address or 'team:<name>'")
        if not isinstance(version, int) or version < 1:
            raise DefinitionError(f"{where}: version must be a positive integer, got {version!r}")
        fields = _resolve_schema(where, tuple(schema), tuple(aggregations))
        for f in fields:
            if f.name in keys:
                raise DefinitionError(f"{where}: field {f.name!r} has the name of a join key; rename the feature")
        for aggregation in aggregations:
            if aggregation.column in keys:
                raise DefinitionError(
                    f"{where}: aggregation {aggregation.name!r} aggregates the join key {aggregation.column!r}"
                )
        step_td = parse_duration(step, f"{where} step")
        longest = max((a.window for a in aggregations), default=timedelta(0))
        if isinstance(source, StreamSource) and longest // step_td > MAX_STREAMED_STEPS:
            raise DefinitionError(
                f"{where}: the longest window ({format_duration(longest)}) spans {longest // step_td} steps of "
                f"{format_duration(step_td)}; stream workers keep at most {MAX_STREAMED_STEPS} per entity, so use a "
                f"larger step, e.g. {format_duration(_coarser_step(longest))}"
            )
        if aggregations:
            if timedelta(days=1) % step_td:
                raise DefinitionError(f"{where}: step {format_duration(step_td)} must divide one day evenly")
            for aggregation in aggregations:
                if aggregation.window % step_td:
                    raise DefinitionError(
                        f"{where}: window {format_duration(aggregation.window)} of {aggregation.name!r} "
                        f"is not a multiple of the step {format_duration(step_td)}"
                    )
        try:
            start = date.fromisoformat(start_date) if isinstance(start_date, str) else start_date
        except ValueError as error:
            raise DefinitionError(f"{where}: start_date {start_date!r} is not YYYY-MM-DD") from error
        values = {
            "name": name,
            "entities": entities,
            "source": source,
            "schema": fields,
            "ttl": parse_duration(ttl, f"{where} ttl") if ttl is not None else None,
            "online": online,
            "owner": owner,
            "tags": dict(tags or {}),
            "description": description,
            "version": version,
            "transformation": transformation,
            "sql": sql,
            "aggregations": tuple(aggregations),
            "step": step_td,
            "start_date": start,
            "quality": quality or QualityPolicy(),
            "allowed_lateness": (
                parse_duration(allowed_lateness or "5m", f"{where} allowed_lateness")
                if isinstance(source, StreamSource)
                else None
            ),
            "partitions_per_run": partitions_per_run,
            "execution_tags": dict(execution_tags or {}),
            "fields_by_name": {f.name: f for f in fields},
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        return f"FeatureView({self.name!r}, version={self.version})"

    @property
    def takes_pushes(self) -> bool:
        """Return whether rows can be pushed to the view (its source is a PushSource)."""
        return isinstance(self.source, PushSource)

    @property
    def streaming(self) -> bool:
        """Return whether stream workers keep the view's aggregations fresh online (its source is a StreamSource)."""
        return isinstance(self.source, StreamSource)

    @property
    def stream_columns(self) -> tuple[str, ...]:
        """Return the source columns the view's aggregations read, sorted: the value fields of its stream events."""
        return tuple(sorted({a.column for a in self.aggregations}))

    @property
    def join_keys(self) -> tuple[str, ...]:
        """Return the join-key columns of all the view's entities, in order."""
        return tuple(key for entity in self.entities for key in entity.join_keys)

    @property
    def key_dtypes(self) -> dict[str, pl.DataType]:
        """Return the declared dtype of each join key."""
        return {key: dtype for entity in self.entities for key, dtype in entity.key_dtypes.items()}

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Return the feature column names, in schema order."""
        return tuple(f.name for f in self.schema)

    @property
    def lookback(self) -> timedelta:
        """Return how far before a partition's day the source must be read (the longest window)."""
        return max((a.window for a in self.aggregations), default=timedelta(0))

    @property
    def output_schema(self) -> dict[str, pl.DataType]:
        """Return the exact column dtypes of the view's offline rows."""
        timestamp = pl.Datetime("us", "UTC")
        return {
            **self.key_dtypes,
            "event_timestamp": timestamp,
            "created_timestamp": timestamp,
            **{f.name: f.dtype for f in self.schema},
        }

    @property
    def code_version(self) -> str:
        """Return a hash of everything that determines the view's rows, so logic changes show as unsynced."""
        transformation_code = inspect.getsource(self.transformation) if self.transformation else ""
        parts = [
            self.name,
            str(self.version),
            repr(self.source),
            repr([(e.name, e.join_keys, sorted(map(str, e.key_dtypes.items()))) for e in self.entities]),
            repr([(f.name, str(f.dtype), f.nullable, f.min_value, f.max_value, f.allowed_values) for f in self.schema]),
            repr(self.ttl),
            repr([(a.column, a.function, a.window, a.name, str(a.dtype)) for a in self.aggregations]),
            repr(self.step),
            *([repr(self.allowed_lateness)] if self.allowed_lateness else []),
            transformation_code,
            *([self.sql] if self.sql else []),
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _coarser_step(longest: timedelta) -> timedelta:
    """Return the smallest usual step (one that divides a day) keeping `longest` within MAX_STREAMED_STEPS steps."""
    for minutes in (1, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440):
        step = timedelta(minutes=minutes)
        if longest // step <= MAX_STREAMED_STEPS:
            return step
    return timedelta(days=1)


def _check_streamed(
    where: str, transformation: Transformation | None, sql: str | None, aggregations: Sequence[Aggregation]
) -> None:
    """Refuse what stream workers cannot keep fresh: no aggregations, a transformation or SQL, count_distinct."""
    if transformation is not None or sql is not None or not aggregations:
        raise DefinitionError(
            f"{where}: a StreamSource feeds windowed aggregations; give aggregations= and drop the transformation "
            "and sql"
        )
    for aggregation in aggregations:
        if aggregation.function not in STREAMED_FUNCTIONS:
            raise DefinitionError(
                f"{where}: aggregation {aggregation.name!r} uses {aggregation.function}, which stream workers do not "
                f"keep; use one of {', '.join(STREAMED_FUNCTIONS)} or read the batch source in another view"
            )


def _resolve_schema(where: str, schema: tuple[Field, ...], aggregations: tuple[Aggregation, ...]) -> tuple[Field, ...]:
    for f in schema:
        if not isinstance(f, Field):
            raise DefinitionError(f"{where}: schema entries must be Field objects, got {f!r}")
    names = [f.name for f in schema]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError(f"{where}: duplicate field names {duplicates}")
    if not aggregations:
        if not schema:
            raise DefinitionError(f"{where}: schema is empty; declare at least one Field")
        return schema
    agg_names = [a.name for a in aggregations]
    duplicates = sorted({n for n in agg_names if agg_names.count(n) > 1})
    if duplicates:
        raise DefinitionError(f"{where}: duplicate aggregation output names {duplicates}; pass name=")
    declared = {f.name: f for f in schema}
    unknown = sorted(set(declared) - set(agg_names))
    if unknown:
        raise DefinitionError(
            f"{where}: schema fields {unknown} are not produced by any aggregation; outputs are {agg_names}"
        )
    resolved = []
    for aggregation in aggregations:
        declared_field = declared.get(aggregation.name)
        if declared_field is not None and declared_field.dtype != aggregation.dtype:
            raise DefinitionError(
                f"{where}: field {aggregation.name!r} is declared {declared_field.dtype} but "
                f"{aggregation.function} yields {aggregation.dtype}"
            )
        resolved.append(declared_field or Field(aggregation.name, aggregation.dtype))
    return tuple(resolved)
