"""Typed feature fields with the value checks that become the view's Pandera schema."""

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from feature_assets.language.errors import DefinitionError
from feature_assets.language.names import RESERVED_COLUMNS, validate_name

_SCALAR_DTYPES: tuple[type[pl.DataType], ...] = (
    pl.Int8,
    pl.Int16,
    pl.Int32,
    pl.Int64,
    pl.UInt8,
    pl.UInt16,
    pl.UInt32,
    pl.UInt64,
    pl.Float32,
    pl.Float64,
    pl.Boolean,
    pl.String,
    pl.Date,
    pl.Datetime,
)


def normalize_dtype(dtype: pl.DataType | type[pl.DataType], what: str) -> pl.DataType:
    """Return a supported Polars dtype instance; datetimes become UTC microseconds."""
    instance = dtype() if isinstance(dtype, type) else dtype
    if isinstance(instance, pl.List):
        return pl.List(normalize_dtype(instance.inner, what))
    if isinstance(instance, pl.Datetime):
        return pl.Datetime("us", "UTC")
    if not isinstance(instance, pl.DataType) or not any(isinstance(instance, t) for t in _SCALAR_DTYPES):
        supported = ", ".join(t.__name__ for t in _SCALAR_DTYPES)
        raise DefinitionError(f"{what}: unsupported dtype {dtype!r}; use one of {supported} or pl.List of them")
    return instance


@dataclass(frozen=True)
class Field:
    """One feature column: its dtype, description and the checks every value must pass."""

    name: str
    dtype: pl.DataType
    description: str = ""
    nullable: bool = True
    min_value: float | None = None
    max_value: float | None = None
    allowed_values: tuple[object, ...] | None = None
    max_null_pct: float | None = None

    def __init__(
        self,
        name: str,
        dtype: pl.DataType | type[pl.DataType],
        description: str = "",
        *,
        nullable: bool = True,
        min_value: float | None = None,
        max_value: float | None = None,
        allowed_values: Sequence[object] | None = None,
        max_null_pct: float | None = None,
    ) -> None:
        validate_name(name, "Field")
        if name in RESERVED_COLUMNS:
            raise DefinitionError(f"Field {name!r}: the name is reserved for the store's own timestamp column")
        dtype = normalize_dtype(dtype, f"Field {name!r}")
        if (min_value is not None or max_value is not None) and not (dtype.is_numeric() or dtype.is_temporal()):
            raise DefinitionError(f"Field {name!r}: min_value/max_value need a numeric dtype, got {dtype}")
        if min_value is not None and max_value is not None and min_value > max_value:
            raise DefinitionError(f"Field {name!r}: min_value {min_value} is greater than max_value {max_value}")
        if max_null_pct is not None and not 0 <= max_null_pct <= 100:
            raise DefinitionError(f"Field {name!r}: max_null_pct must be within 0..100, got {max_null_pct}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "nullable", nullable)
        object.__setattr__(self, "min_value", min_value)
        object.__setattr__(self, "max_value", max_value)
        object.__setattr__(self, "allowed_values", tuple(allowed_values) if allowed_values is not None else None)
        object.__setattr__(self, "max_null_pct", max_null_pct)

    def describe_checks(self) -> str:
        """Return the field's checks in words, e.g. `not null, 0 <= x <= 5`."""
        parts = [] if self.nullable else ["not null"]
        if self.min_value is not None or self.max_value is not None:
            low = "" if self.min_value is None else f"{self.min_value} <= "
            high = "" if self.max_value is None else f" <= {self.max_value}"
            parts.append(f"{low}x{high}")
        if self.allowed_values is not None:
            parts.append(f"in {list(self.allowed_values)}")
        return ", ".join(parts)


def widens(actual: pl.DataType, declared: pl.DataType) -> bool:
    """Return whether casting `actual` to `declared` keeps every value (e.g. Int32 to Int64, Int to Float64)."""
    if actual.is_integer() and declared.is_integer():
        return actual.is_signed_integer() == declared.is_signed_integer() and _bits(actual) <= _bits(declared)
    if actual.is_integer() and declared.is_float():
        return _bits(actual) < _bits(declared)
    if actual.is_float() and declared.is_float():
        return _bits(actual) <= _bits(declared)
    return actual == pl.Null


_BITS = {
    pl.Int8: 8,
    pl.Int16: 16,
    pl.Int32: 32,
    pl.Int64: 64,
    pl.UInt8: 8,
    pl.UInt16: 16,
    pl.UInt32: 32,
    pl.UInt64: 64,
    pl.Float32: 32,
    pl.Float64: 64,
}


def _bits(dtype: pl.DataType) -> int:
    return _BITS.get(dtype.base_type(), 128)
