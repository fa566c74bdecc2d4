"""The documented shape of a definitions snapshot (the applied JSON file, the exported YAML) and its validation.

The shape (every key present, `null` where a value is absent):

```
format_version: 1
entities:       {name: {join_keys: [{name, dtype}], description}}
sources:        {name: {kind: parquet, path, timestamp_field, created_timestamp_field, description, owner}
                      | {kind: push | stream, batch_source, description, owner (, partitions for stream)}}
feature_views:  {name: {version, entities, join_keys, source, features: {name: {dtype, description, nullable,
                      min_value, max_value, allowed_values, max_null_pct}}, ttl, online, owner, tags, description,
                      aggregations: {name: {column, function, window, dtype}}, step, transformation, allowed_lateness,
                      start_date, quality: {...QualityPolicy}, previous_versions: [older versions, oldest first,
                      each with the fields above but previous_versions]}}
on_demand_feature_views: {name: {sources, request_sources: {name: {field: {...}}}, features, transformation,
                      description}}
feature_services: {name: {features: ["view:feature" or "view@v<N>:feature"], description, owner}}
```
Durations are written `30m`, `2d`; dtypes as Polars prints them (`Int64`, `List(Float64)`); a transformation is
`{kind: python, function, hash}`, `{kind: sql, sql, hash}` or `{kind: expressions, expressions, hash}`, where the hash
covers the normalised source (comments, layout, docstrings and a function's own name do not count).
"""

from datetime import date, timedelta
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic import Field as ModelField

from feature_assets.language.durations import format_duration, parse_duration
from feature_assets.language.errors import DefinitionError
from feature_assets.language.field import normalize_dtype

FORMAT_VERSION = 1
_SOURCE_KINDS = frozenset({"parquet", "push", "stream"})
_TRANSFORMATION_KINDS = frozenset({"python", "sql", "expressions"})


def _dtype_text(text: str) -> str:
    """Return `text` if it spells a supported dtype as the snapshot writes it, else raise naming the forms."""
    inner, depth = text, 0
    while inner.startswith("List(") and inner.endswith(")"):
        inner, depth = inner[5:-1], depth + 1
    kind = getattr(pl, inner.partition("(")[0], None)
    if isinstance(kind, type) and issubclass(kind, pl.DataType):
        dtype = normalize_dtype(kind, f"dtype {text!r}")
        for _ in range(depth):
            dtype = pl.List(dtype)
        if str(dtype) == text:
            return text
    raise ValueError(f"unknown dtype {text!r}; write e.g. 'Int64', 'Float64', 'String', 'Boolean', 'List(Int64)'")


def _duration_text(value: object) -> object:
    """Return a duration (`48h`, a timedelta) in its shortest spelling (`2d`); leave other values to the type check."""
    return format_duration(parse_duration(value, "duration")) if isinstance(value, str | timedelta) else value


def _date_text(value: object) -> object:
    """Return a date (or `YYYY-MM-DD` text) as `YYYY-MM-DD`."""
    if isinstance(value, date):
        return value.isoformat()
    return date.fromisoformat(value).isoformat() if isinstance(value, str) else value


Dtype = Annotated[str, AfterValidator(_dtype_text)]
Duration = Annotated[str, BeforeValidator(_duration_text)]
DateText = Annotated[str, BeforeValidator(_date_text)]
Scalar = bool | int | float | str | None


class _Spec(BaseModel):
    """A part of the snapshot: every key required, no other key allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySpec(_Spec):
    """One join key and its dtype."""

    name: str
    dtype: Dtype


class EntitySpec(_Spec):
    """An entity: its join keys in order."""

    join_keys: list[KeySpec] = ModelField(min_length=1)
    description: str


class ParquetSourceSpec(_Spec):
    """A Parquet source."""

    kind: Literal["parquet"]
    path: str
    timestamp_field: str
    created_timestamp_field: str | None
    description: str
    owner: str | None


class PushSourceSpec(_Spec):
    """A push source and the name of its batch source."""

    kind: Literal["push"]
    batch_source: str
    description: str
    owner: str | None


class StreamSourceSpec(_Spec):
    """A stream source, its batch source and how many Redis Streams it spreads over."""

    kind: Literal["stream"]
    batch_source: str
    partitions: int
    description: str
    owner: str | None


class FeatureSpec(_Spec):
    """A feature (or request field): dtype and the checks declared on it."""

    dtype: Dtype
    description: str
    nullable: bool
    min_value: Scalar
    max_value: Scalar
    allowed_values: list[Scalar] | None
    max_null_pct: float | None


class AggregationSpec(_Spec):
    """A windowed aggregation; its output feature is the key it is stored under."""

    column: str
    function: str
    window: Duration
    dtype: Dtype


class PythonTransformation(_Spec):
    """A Python function, named by module and qualified name, and the hash of its normalised source."""

    kind: Literal["python"]
    function: str
    hash: str


class SqlTransformation(_Spec):
    """A SQL statement over the table `source`, and the hash of its whitespace-normalised text."""

    kind: Literal["sql"]
    sql: str
    hash: str


class ExpressionsTransformation(_Spec):
    """One SQL expression per on-demand feature, and their hash."""

    kind: Literal["expressions"]
    expressions: dict[str, str]
    hash: str


class QualitySpec(_Spec):
    """The thresholds of a view's warning checks."""

    max_null_pct: float
    baseline_partitions: int
    max_row_count_change: float
    max_psi: float
    max_ks: float
    freshness_deadline_cron: str
    consistency_sample: int
    max_mismatch_rate: float
    max_stream_age_minutes: float = 10.0


Transformation = Annotated[
    PythonTransformation | SqlTransformation | ExpressionsTransformation, ModelField(discriminator="kind")
]


class FeatureViewSpec(_Spec):
    """One version of a feature view."""

    version: int = ModelField(ge=1)
    entities: list[str]
    join_keys: list[KeySpec]
    source: str
    features: dict[str, FeatureSpec] = ModelField(min_length=1)
    ttl: Duration | None
    online: bool
    owner: str | None
    tags: dict[str, str]
    description: str
    aggregations: dict[str, AggregationSpec]
    step: Duration
    transformation: Transformation | None
    allowed_lateness: Duration | None
    start_date: DateText
    quality: QualitySpec


class VersionedFeatureViewSpec(FeatureViewSpec):
    """A feature view's current version with the previous versions it still serves."""

    previous_versions: list[FeatureViewSpec]

    @model_validator(mode="after")
    def _versions_below_current(self) -> "VersionedFeatureViewSpec":
        versions = [spec.version for spec in self.previous_versions]
        if len(set(versions)) != len(versions) or any(v >= self.version for v in versions):
            raise ValueError(f"previous_versions {versions} must be distinct and below version {self.version}")
        return self


class OnDemandViewSpec(_Spec):
    """An on-demand view: source views, request fields, output features and its logic."""

    sources: list[str]
    request_sources: dict[str, dict[str, FeatureSpec]]
    features: dict[str, FeatureSpec] = ModelField(min_length=1)
    transformation: Transformation
    description: str


class FeatureServiceSpec(_Spec):
    """A feature service: its references in order."""

    features: list[str] = ModelField(min_length=1)
    description: str
    owner: str | None


class Snapshot(_Spec):
    """Every definition of a repository."""

    format_version: Literal[1]
    entities: dict[str, EntitySpec]
    sources: dict[
        str, Annotated[ParquetSourceSpec | PushSourceSpec | StreamSourceSpec, ModelField(discriminator="kind")]
    ]
    feature_views: dict[str, VersionedFeatureViewSpec]
    on_demand_feature_views: dict[str, OnDemandViewSpec]
    feature_services: dict[str, FeatureServiceSpec]


def empty_snapshot() -> dict[str, Any]:
    """Return the snapshot of a repository with no definitions (what nothing applied yet means)."""
    return Snapshot(
        format_version=FORMAT_VERSION,
        entities={},
        sources={},
        feature_views={},
        on_demand_feature_views={},
        feature_services={},
    ).model_dump(mode="json")


def validate_snapshot(document: object, where: str) -> dict[str, Any]:
    """Return `document` checked against the snapshot's shape, or raise naming each bad path inside it."""
    try:
        return Snapshot.model_validate(document).model_dump(mode="json")
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            if problem["type"] == "missing":
                message = "missing; add it"
            elif problem["type"] == "extra_forbidden":
                message = "unknown key; remove it or fix its spelling"
            else:
                message = problem["msg"].removeprefix("Value error, ")
            problems.append(f"\n  {_document_path(problem['loc'])}: {message}")
        raise DefinitionError(
            f"{where} is not a definitions snapshot; fix these paths in it:" + "".join(problems)
        ) from None


def _document_path(loc: tuple[int | str, ...]) -> str:
    """Return a validation error's location as a dotted path in the document, without pydantic's union tags."""
    parts = []
    for index, part in enumerate(loc):
        before = loc[:index]
        source_kind = len(before) == 2 and before[0] == "sources" and part in _SOURCE_KINDS
        transformation_kind = bool(before) and before[-1] == "transformation" and part in _TRANSFORMATION_KINDS
        if not (source_kind or transformation_kind):
            parts.append(str(part))
    return ".".join(parts) or "(top level)"
