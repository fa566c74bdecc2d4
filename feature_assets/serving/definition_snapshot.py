"""The snapshot of a repository's definitions: plain JSON data in the shape `definition_schema` documents, equal
across processes (names and source text only, never object identities)."""

import ast
import hashlib
import inspect
import json
import os
import textwrap
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from feature_assets.language.durations import format_duration
from feature_assets.language.entity import Entity
from feature_assets.language.errors import DefinitionError
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.field import Field
from feature_assets.language.on_demand import OnDemandFeatureView, RequestSource
from feature_assets.language.repository import FeatureRepository
from feature_assets.language.sources import PushSource, Source, StreamSource
from feature_assets.serving.definition_schema import FORMAT_VERSION, Scalar, empty_snapshot, validate_snapshot


def snapshot_repository(repository: FeatureRepository) -> dict[str, Any]:
    """Return the snapshot of every definition in `repository`, previous versions of views included."""
    previous: Mapping[str, Mapping[int, FeatureView]] = getattr(repository, "previous_versions", {})
    orphans = sorted(set(previous) - set(repository.views))
    if orphans:
        raise DefinitionError(f"previous versions of {orphans} have no current view; add the current versions")
    every_view = [
        *repository.views.values(),
        *(view for versions in previous.values() for view in versions.values()),
    ]
    entities: dict[str, Entity] = {}
    sources: dict[str, Source] = {}
    for view in every_view:
        for entity in view.entities:
            entities.setdefault(entity.name, entity)
        for source in (view.source, *([view.source.batch_source] if isinstance(view.source, PushSource) else [])):
            known = sources.setdefault(source.name, source)
            if known != source:
                raise DefinitionError(
                    f"two different sources are named {source.name!r} (FeatureView {view.name!r}); "
                    "give each source its own name"
                )
    snapshot = {
        "format_version": FORMAT_VERSION,
        "entities": {name: _entity(entity) for name, entity in entities.items()},
        "sources": {name: _source(source) for name, source in sources.items()},
        "feature_views": {
            name: {
                **_view(view),
                "previous_versions": [_view(v) for _, v in sorted(previous.get(name, {}).items())],
            }
            for name, view in repository.views.items()
        },
        "on_demand_feature_views": {name: _on_demand(v) for name, v in repository.on_demand_views.items()},
        "feature_services": {
            name: {"features": [str(r) for r in s.features], "description": s.description, "owner": s.owner}
            for name, s in repository.services.items()
        },
    }
    return validate_snapshot(snapshot, "the repository's snapshot")


def read_applied(path: Path) -> dict[str, Any]:
    """Return the applied snapshot stored at `path`, or the empty one when nothing was applied there yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return empty_snapshot()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise DefinitionError(
            f"{path} is not valid JSON ({error}); restore it from version control, or delete it and apply again"
        ) from None
    return validate_snapshot(document, str(path))


def write_applied(path: Path, snapshot: Mapping[str, Any]) -> None:
    """Store `snapshot` at `path` atomically: readers see the old file or the new one, never a part."""
    data = (json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as for any file the user writes.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _entity(entity: Entity) -> dict[str, Any]:
    return {"join_keys": _keys(entity.key_dtypes), "description": entity.description}


def _keys(dtypes: Mapping[str, pl.DataType]) -> list[dict[str, str]]:
    return [{"name": key, "dtype": str(dtype)} for key, dtype in dtypes.items()]


def _source(source: Source) -> dict[str, Any]:
    common = {"description": source.description, "owner": source.owner}
    if isinstance(source, StreamSource):
        return {"kind": "stream", "batch_source": source.batch_source.name, "partitions": source.partitions, **common}
    if isinstance(source, PushSource):
        return {"kind": "push", "batch_source": source.batch_source.name, **common}
    return {
        "kind": "parquet",
        "path": source.path,
        "timestamp_field": source.timestamp_field,
        "created_timestamp_field": source.created_timestamp_field,
        **common,
    }


def _plain(value: object) -> Scalar:
    """Return a check's bound or allowed value as JSON data (dates and times as ISO text)."""
    return value.isoformat() if isinstance(value, date | datetime) else value


def _feature(f: Field) -> dict[str, Any]:
    return {
        "dtype": str(f.dtype),
        "description": f.description,
        "nullable": f.nullable,
        "min_value": _plain(f.min_value),
        "max_value": _plain(f.max_value),
        "allowed_values": None if f.allowed_values is None else [_plain(v) for v in f.allowed_values],
        "max_null_pct": f.max_null_pct,
    }


def _duration(value: timedelta | None) -> str | None:
    return None if value is None else format_duration(value)


def _view(view: FeatureView) -> dict[str, Any]:
    where = f"FeatureView {view.name!r} version {view.version}"
    if view.transformation is not None:
        transformation: dict[str, Any] | None = _python(view.transformation, where)
    elif view.sql is not None:
        transformation = {"kind": "sql", "sql": view.sql, "hash": _hash(" ".join(view.sql.split()))}
    else:
        transformation = None
    return {
        "version": view.version,
        "entities": [entity.name for entity in view.entities],
        "join_keys": _keys(view.key_dtypes),
        "source": view.source.name,
        "features": {f.name: _feature(f) for f in view.schema},
        "ttl": _duration(view.ttl),
        "online": view.online,
        "owner": view.owner,
        "tags": dict(view.tags),
        "description": view.description,
        "aggregations": {
            a.name: {"column": a.column, "function": a.function, "window": _duration(a.window), "dtype": str(a.dtype)}
            for a in view.aggregations
        },
        "step": _duration(view.step),
        "transformation": transformation,
        "allowed_lateness": _duration(view.allowed_lateness),
        "start_date": view.start_date.isoformat(),
        "quality": asdict(view.quality),
    }


def _on_demand(view: OnDemandFeatureView) -> dict[str, Any]:
    if view.fn is not None:
        transformation = _python(view.fn, f"OnDemandFeatureView {view.name!r}")
    else:
        normalised = repr(sorted((name, " ".join(sql.split())) for name, sql in view.expressions.items()))
        transformation = {"kind": "expressions", "expressions": dict(view.expressions), "hash": _hash(normalised)}
    return {
        "sources": [source.name for source in view.source_views],
        "request_sources": {
            source.name: {f.name: _feature(f) for f in source.schema}
            for source in view.sources
            if isinstance(source, RequestSource)
        },
        "features": {f.name: _feature(f) for f in view.schema},
        "transformation": transformation,
        "description": view.description,
    }


def _python(function: Callable[..., object], where: str) -> dict[str, str]:
    """Return a Python transformation's name and the hash of its source without comments, layout or docstring."""
    try:
        text = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError) as error:
        raise DefinitionError(
            f"{where}: cannot read the source of its function ({error}); define it with def in a module file"
        ) from None
    try:
        tree = ast.parse(text)
    except SyntaxError:
        normalised = "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
    else:
        node = tree.body[0]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and function.__name__ == node.name:
            body = node.body[1:] if ast.get_docstring(node) is not None else node.body
            normalised = "\n".join(ast.dump(part) for part in (node.args, *node.decorator_list, *body))
        else:
            normalised = ast.dump(tree)
    name = f"{function.__module__}.{getattr(function, '__qualname__', type(function).__name__)}"
    return {"kind": "python", "function": name, "hash": _hash(normalised)}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
