"""Entities: the things features describe, identified by join keys."""

from dataclasses import dataclass, field

import polars as pl

from feature_assets.language.errors import DefinitionError
from feature_assets.language.names import validate_name


@dataclass(frozen=True)
class Entity:
    """A business object (driver, customer) whose rows are identified by `join_keys`."""

    name: str
    join_keys: tuple[str, ...]
    description: str = ""
    key_dtypes: dict[str, pl.DataType] = field(default_factory=dict)

    def __init__(
        self,
        name: str,
        join_keys: list[str] | tuple[str, ...],
        description: str = "",
        key_dtypes: dict[str, pl.DataType | type[pl.DataType]] | None = None,
    ) -> None:
        validate_name(name, "Entity")
        if isinstance(join_keys, str) or not join_keys:
            raise DefinitionError(f"Entity {name!r}: join_keys must be a non-empty list of column names")
        for key in join_keys:
            validate_name(key, f"Entity {name!r} join key")
        dtypes = {key: pl.Int64() for key in join_keys}
        for key, dtype in (key_dtypes or {}).items():
            if key not in join_keys:
                raise DefinitionError(f"Entity {name!r}: key_dtypes names {key!r}, which is not a join key")
            dtypes[key] = dtype() if isinstance(dtype, type) else dtype
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "join_keys", tuple(join_keys))
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "key_dtypes", dtypes)
