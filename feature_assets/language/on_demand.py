"""On-demand feature views: features computed at read time from other views' features and values sent with a request.

The same function runs online (after the Redis read, request values from the entity rows) and in training (after
the point-in-time join, request values from the entity frame), so both give the same values.
"""

import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from feature_assets.language.errors import DefinitionError, TransformationOutputError, first_line
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.field import Field, widens
from feature_assets.language.names import validate_name

OnDemandFunction = Callable[[pl.DataFrame], pl.DataFrame]


@dataclass(frozen=True)
class RequestSource:
    """Values that come with each request: online in the entity rows, in training as entity-frame columns."""

    name: str
    schema: tuple[Field, ...]

    def __init__(self, name: str, schema: Sequence[Field]) -> None:
        validate_name(name, "RequestSource")
        fields = tuple(schema)
        if not fields or not all(isinstance(f, Field) for f in fields):
            raise DefinitionError(f"RequestSource {name!r}: schema must be a non-empty list of Field objects")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "schema", fields)


@dataclass(frozen=True, eq=False)
class OnDemandFeatureView:
    """Features computed from source views' features and request values by a Polars function or SQL expressions.

    Args:
        name: the view's name, used in references `name:feature`.
        sources: FeatureViews (all their features are inputs) and RequestSources (their fields are inputs).
        schema: the output Fields; their dtypes are checked on every call.
        fn: a function from a frame of the inputs (one column per input, named by feature or field) to a frame
            holding every output column, row for row.
        expressions: instead of `fn`, one SQL expression per output, e.g. `{"fare_per_km": "fare / NULLIF(km, 0)"}`.
    """

    name: str
    sources: tuple[FeatureView | RequestSource, ...]
    schema: tuple[Field, ...]
    fn: OnDemandFunction | None
    expressions: Mapping[str, str]
    description: str

    def __init__(
        self,
        name: str,
        *,
        sources: Sequence[FeatureView | RequestSource],
        schema: Sequence[Field],
        fn: OnDemandFunction | None = None,
        expressions: Mapping[str, str] | None = None,
        description: str = "",
    ) -> None:
        validate_name(name, "OnDemandFeatureView")
        where = f"OnDemandFeatureView {name!r}"
        sources = tuple(sources)
        if not sources or not all(isinstance(s, FeatureView | RequestSource) for s in sources):
            raise DefinitionError(f"{where}: sources must be a non-empty list of FeatureViews and RequestSources")
        fields = tuple(schema)
        if not fields or not all(isinstance(f, Field) for f in fields):
            raise DefinitionError(f"{where}: schema must be a non-empty list of Field objects")
        if (fn is None) == (expressions is None):
            raise DefinitionError(f"{where}: give either fn or expressions (one SQL expression per feature)")
        outputs = [f.name for f in fields]
        if len(set(outputs)) != len(outputs):
            raise DefinitionError(f"{where}: duplicate feature names in {outputs}")
        if expressions is not None and sorted(expressions) != sorted(outputs):
            raise DefinitionError(
                f"{where}: expressions must name each feature once: {outputs}, got {list(expressions)}"
            )
        inputs: dict[str, str] = {}
        for source in sources:
            names = source.feature_names if isinstance(source, FeatureView) else tuple(f.name for f in source.schema)
            for input_name in names:
                if input_name in inputs:
                    raise DefinitionError(
                        f"{where}: input {input_name!r} comes from both {inputs[input_name]!r} and {source.name!r}; "
                        "rename one of them"
                    )
                inputs[input_name] = source.name
        clashes = sorted(set(outputs) & set(inputs))
        if clashes:
            raise DefinitionError(f"{where}: features {clashes} have the names of inputs; rename them")
        values = {
            "name": name,
            "sources": sources,
            "schema": fields,
            "fn": fn,
            "expressions": dict(expressions or {}),
            "description": description,
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        return f"OnDemandFeatureView({self.name!r})"

    @property
    def code_version(self) -> str:
        """Return a hash of the inputs, outputs and logic, so a change shows in the assets that use the view."""
        logic = inspect.getsource(self.fn) if self.fn is not None else repr(sorted(self.expressions.items()))
        parts = [
            self.name,
            repr([s.name for s in self.sources]),
            repr([(f.name, str(f.dtype)) for f in (*self.request_fields, *self.schema)]),
            logic,
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Return the output feature names, in schema order."""
        return tuple(f.name for f in self.schema)

    @property
    def fields_by_name(self) -> dict[str, Field]:
        """Return the output fields by name."""
        return {f.name: f for f in self.schema}

    @property
    def source_views(self) -> tuple[FeatureView, ...]:
        """Return the feature views whose features are inputs."""
        return tuple(s for s in self.sources if isinstance(s, FeatureView))

    @property
    def request_fields(self) -> tuple[Field, ...]:
        """Return the fields each request must carry."""
        return tuple(f for s in self.sources if isinstance(s, RequestSource) for f in s.schema)

    def apply(self, inputs: pl.DataFrame) -> pl.DataFrame:
        """Return the features for rows of inputs (source features and request values), dtypes checked."""
        where = f"OnDemandFeatureView {self.name!r}"
        if self.fn is not None:
            output = self.fn(inputs)
            if not isinstance(output, pl.DataFrame):
                raise TransformationOutputError(
                    f"{where}: fn must return a polars DataFrame, got {type(output).__name__}"
                )
        else:
            try:
                output = inputs.select(pl.sql_expr(sql).alias(name) for name, sql in self.expressions.items())
            except pl.exceptions.PolarsError as error:
                raise TransformationOutputError(
                    f"{where}: an expression does not run over the inputs {inputs.columns} ({first_line(error)}); "
                    f"the expressions: {self.expressions}"
                ) from error
        if output.height != inputs.height:
            raise TransformationOutputError(f"{where}: fn returned {output.height} rows for {inputs.height} inputs")
        missing = [name for name in self.feature_names if name not in output.columns]
        if missing:
            raise TransformationOutputError(f"{where}: the output lacks {missing}; it has {output.columns}")
        columns = []
        for f in self.schema:
            actual = output.schema[f.name]
            if actual != f.dtype and not widens(actual, f.dtype):
                raise TransformationOutputError(f"{where}: feature {f.name!r} is {actual}, declared {f.dtype}")
            columns.append(output.get_column(f.name).cast(f.dtype))
        return pl.DataFrame(columns)
