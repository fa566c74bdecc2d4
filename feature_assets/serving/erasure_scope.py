"""The entity to forget, checked against the repository: its typed key values, the views keyed by them, row tests."""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import polars as pl

from feature_assets.language.errors import EntityFrameError
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.repository import FeatureRepository
from resources.online_encoding import encode_key_value, is_integer_key


@dataclass(frozen=True)
class ErasureScope:
    """One entity's join key values, the views whose join keys are all among them and every version of those."""

    entity: Mapping[str, int | str]
    views: tuple[FeatureView, ...]
    versions: tuple[FeatureView, ...]

    def version_of(self, view: FeatureView, version: int) -> FeatureView:
        """Return the definition of `version` of `view` when the repository knows it, else the current one."""
        return next((v for v in self.versions if v.name == view.name and v.version == version), view)

    @property
    def key_names(self) -> tuple[str, ...]:
        """Return the given join key names, sorted."""
        return tuple(sorted(self.entity))

    @property
    def digest(self) -> str:
        """Return the sha256 of the canonical key values (`name=i:42|...`, names sorted), which audits keep."""
        text = "|".join(f"{name}={encode_key_value(self.entity[name])}" for name in self.key_names)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def key_groups(self) -> tuple[tuple[str, ...], ...]:
        """Return the distinct join key tuples of the views: each identifies the entity's rows by itself."""
        return tuple(dict.fromkeys(view.join_keys for view in self.views))

    def matches(self, keys: Sequence[str]) -> pl.Expr:
        """Return the test of rows whose `keys` columns hold the entity's values (null never matches)."""
        tests = [pl.col(key).eq_missing(pl.lit(self.entity[key])) for key in keys]
        return pl.all_horizontal(tests)

    def holds(self, schema: pl.Schema, keys: Sequence[str]) -> bool:
        """Return whether a file's columns include `keys` with dtypes that can hold the entity's values."""
        return all(key in schema and _comparable(schema[key], self.entity[key]) for key in keys)

    def view_predicate(self, view: FeatureView, schema: pl.Schema) -> pl.Expr | None:
        """Return the test of the entity's rows in a file of `view`, or None when the file lacks a join key."""
        return self.matches(view.join_keys) if self.holds(schema, view.join_keys) else None

    def any_predicate(self, schema: pl.Schema) -> pl.Expr | None:
        """Return the test of rows matching any key group the file holds (training sets, labels, sources)."""
        tests = [self.matches(group) for group in self.key_groups if self.holds(schema, group)]
        return pl.any_horizontal(tests) if tests else None


def _comparable(dtype: pl.DataType, value: int | str) -> bool:
    """Return whether a column of `dtype` can hold `value` (integers in integer columns, text in String ones)."""
    return dtype.is_integer() if isinstance(value, int) else dtype == pl.String


def erasure_scope(
    repository: FeatureRepository, entity: Mapping[str, object], views: Sequence[str] | None = None
) -> ErasureScope:
    """Return the checked scope of forgetting `entity` in `views` (default: every view keyed by given keys)."""
    if not entity:
        raise EntityFrameError("no entity given; pass its join key values, e.g. {'driver_id': 42}")
    all_views = list(repository.views.values())
    dtypes: dict[str, list[tuple[FeatureView, pl.DataType]]] = {}
    for view in all_views:
        for key, dtype in view.key_dtypes.items():
            dtypes.setdefault(key, []).append((view, dtype))
    unknown = sorted(set(entity) - set(dtypes))
    if unknown:
        raise EntityFrameError(f"no feature view uses join keys {unknown}; known join keys: {sorted(dtypes)}")
    for key, value in entity.items():
        for view, dtype in dtypes[key]:
            _check_value(view, key, dtype, value)
    if views is not None:
        if not views:
            raise EntityFrameError("no views given; name the views to erase in, or pass None for every view")
        current = [repository.views[repository.view(name).name] for name in views]
        chosen = list({view.name: view for view in current}.values())
        for view in chosen:
            missing = [key for key in view.join_keys if key not in entity]
            if missing:
                raise EntityFrameError(
                    f"FeatureView {view.name!r} is keyed by {list(view.join_keys)}; give a value for {missing} too"
                )
    else:
        chosen = [view for view in all_views if all(key in entity for key in view.join_keys)]
        if not chosen:
            needs = {view.name: list(view.join_keys) for view in all_views}
            raise EntityFrameError(
                f"no feature view is keyed by {sorted(entity)} alone; views need all their join keys: {needs}"
            )
    typed = {key: cast(int | str, entity[key]) for key in sorted(entity)}
    versions = [v for view in chosen for v in repository.versions(view.name).values() if v.join_keys == view.join_keys]
    return ErasureScope(entity=typed, views=tuple(chosen), versions=tuple(versions))


def _check_value(view: FeatureView, key: str, dtype: pl.DataType, value: object) -> None:
    """Raise unless `value` is a valid join key value of `dtype` (a Python int for integers, a str for String)."""
    if is_integer_key(dtype):
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif dtype == pl.String:
        ok, expected = isinstance(value, str), "a string"
    else:
        raise EntityFrameError(
            f"FeatureView {view.name!r}: join key {key!r} has dtype {dtype}; entities are keyed by integers or strings"
        )
    if not ok:
        raise EntityFrameError(
            f"join key {key!r} is {dtype} in FeatureView {view.name!r}: give {expected}, got {value!r} "
            f"({type(value).__name__})"
        )


def parse_entity_arguments(repository: FeatureRepository, arguments: Sequence[str]) -> dict[str, int | str]:
    """Return `name=value` arguments as typed join key values, converted by the key's dtype in the repository."""
    dtypes = {key: dtype for view in repository.views.values() for key, dtype in view.key_dtypes.items()}
    entity: dict[str, int | str] = {}
    for argument in arguments:
        name, separator, text = argument.partition("=")
        name = name.strip()
        if not separator or not name:
            raise EntityFrameError(f"--entity {argument!r} is not name=value; write e.g. --entity driver_id=42")
        if name not in dtypes:
            raise EntityFrameError(f"no feature view uses join key {name!r}; known join keys: {sorted(dtypes)}")
        if name in entity:
            raise EntityFrameError(f"join key {name!r} is given twice; give each key once")
        if is_integer_key(dtypes[name]):
            try:
                entity[name] = int(text)
            except ValueError:
                raise EntityFrameError(f"join key {name!r} is {dtypes[name]}: {text!r} is not an integer") from None
        else:
            entity[name] = text
    return entity
