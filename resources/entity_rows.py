"""Entity rows of an online read (dicts, a dict of lists or a frame) turned into checked join-key columns."""

from collections.abc import Mapping, Sequence

import polars as pl

from feature_assets.language.errors import EntityFrameError, OnlineStoreError
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.field import Field
from resources import online_encoding as encoding

EntityRows = Sequence[Mapping[str, object]] | Mapping[str, Sequence[object]] | pl.DataFrame


def check_key_dtype(view: FeatureView, key: str, dtype: pl.DataType) -> None:
    """Raise unless the online store can key entities by a join key of this dtype (integers or String)."""
    if not (encoding.is_integer_key(dtype) or dtype == pl.String):
        raise OnlineStoreError(
            f"FeatureView {view.name!r}: join key {key!r} has dtype {dtype}; the online store keys entities by "
            "integer or String join keys"
        )


def _key_type_name(dtype: pl.DataType) -> str:
    return "int" if encoding.is_integer_key(dtype) else "str"


def entity_columns(
    entity_rows: EntityRows, join_keys: Mapping[str, tuple[pl.DataType, str]]
) -> dict[str, list[object]]:
    """Return the join key columns of entity rows given as dicts, a dict of lists or a frame, checked by dtype."""
    if isinstance(entity_rows, pl.DataFrame):
        for key, (dtype, view) in join_keys.items():
            actual = entity_rows.schema.get(key)
            if actual is None:
                _raise_missing_key(key, view)
            if encoding.is_integer_key(actual) != encoding.is_integer_key(dtype) or not (
                actual.is_integer() or actual == pl.String
            ):
                raise EntityFrameError(
                    f"entity frame column {key!r} (join key of view {view!r}) has dtype {actual}; expected {dtype}"
                )
        columns = {key: entity_rows.get_column(key).to_list() for key in join_keys}
    elif isinstance(entity_rows, Mapping):
        for key, (_, view) in join_keys.items():
            if key not in entity_rows:
                _raise_missing_key(key, view)
        columns = {key: list(entity_rows[key]) for key in join_keys}
        lengths = {key: len(values) for key, values in columns.items()}
        if len(set(lengths.values())) > 1:
            raise EntityFrameError(f"entity key columns have different lengths {lengths}; give one value per row")
    else:
        rows = entity_rows if isinstance(entity_rows, list) else list(entity_rows)
        columns = {}
        for key, (_, view) in join_keys.items():
            try:
                columns[key] = [row[key] for row in rows]
            except KeyError:
                index = next(i for i, row in enumerate(rows) if key not in row)
                _raise_missing_key(key, view, index)
    for key, (dtype, view) in join_keys.items():
        expected = int if encoding.is_integer_key(dtype) else str
        values = columns[key]
        if not all(type(value) is expected for value in values):
            for index, value in enumerate(values):
                if not isinstance(value, expected) or isinstance(value, bool):
                    raise EntityFrameError(
                        f"entity row {index}: join key {key!r} of view {view!r} must be {dtype} "
                        f"(a Python {_key_type_name(dtype)}), got {value!r} ({type(value).__name__})"
                    )
    return columns


def _raise_missing_key(key: str, view: str, index: int | None = None) -> None:
    where = "entity rows lack" if index is None else f"entity row {index} lacks"
    raise EntityFrameError(f"{where} join key {key!r} needed by view {view!r}; give it in every entity row")


def request_values(entity_rows: EntityRows, fields: Sequence[Field], view: str) -> dict[str, pl.Series]:
    """Return the request values an on-demand view needs from the entity rows, as Series of the declared dtypes."""
    values: dict[str, pl.Series] = {}
    for f in fields:
        if isinstance(entity_rows, pl.DataFrame):
            present = f.name in entity_rows.columns
            raw = entity_rows.get_column(f.name).to_list() if present else None
        elif isinstance(entity_rows, Mapping):
            present = f.name in entity_rows
            raw = list(entity_rows[f.name]) if present else None
        else:
            rows = entity_rows if isinstance(entity_rows, list) else list(entity_rows)
            missing = next((index for index, row in enumerate(rows) if f.name not in row), None)
            if missing is not None:
                raise EntityFrameError(
                    f"entity row {missing} lacks request value {f.name!r} needed by on-demand view {view!r}; "
                    "give it in every entity row"
                )
            present, raw = True, [row[f.name] for row in rows]
        if not present:
            raise EntityFrameError(
                f"entity rows lack request value {f.name!r} needed by on-demand view {view!r}; give it in every row"
            )
        try:
            values[f.name] = pl.Series(f.name, raw, dtype=f.dtype, strict=True)
        except (TypeError, pl.exceptions.PolarsError) as error:
            raise EntityFrameError(
                f"request value {f.name!r} of on-demand view {view!r} must be {f.dtype}: {error}"
            ) from error
    return values
