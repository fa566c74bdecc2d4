"""Finding features: `list`, `describe`, `search` and `lineage` over the definitions, the instance and usage."""

import argparse
import importlib
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta

from dagster import AssetKey, DagsterInstance, Definitions

from feature_assets.language.asset_keys import online_asset_key, view_asset_key
from feature_assets.language.durations import format_duration
from feature_assets.language.errors import DefinitionError
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.field import Field
from feature_assets.language.repository import FeatureRepository, load_repository
from feature_assets.orchestration.project import build_definitions
from feature_assets.serving.cli import output
from resources.online_store import RedisOnlineStore
from resources.read_usage import usage_counts

DEMO_DEFINITIONS = "definitions:defs"
KINDS = ("entity", "source", "feature view", "on-demand view", "feature service", "training set")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `list`, `describe VIEW`, `search TEXT` and `lineage VIEW`."""
    definitions = argparse.ArgumentParser(add_help=False)
    definitions.add_argument(
        "--definitions",
        metavar="MODULE:ATTR",
        default=os.environ.get("FEATURE_DEFINITIONS"),
        help="Dagster Definitions holding the training sets (default: $FEATURE_DEFINITIONS, else the repository's "
        "own definitions; definitions:defs for the demo)",
    )
    listing = commands.add_parser("list", parents=[common, definitions], help="list views, entities, services, ...")
    listing.add_argument("--kind", choices=KINDS, help="list only this kind of object")
    listing.set_defaults(run=_list)
    describe = commands.add_parser(
        "describe", parents=[common], help="a view's schema, checks, ttl, owner, versions, partitions, usage"
    )
    describe.add_argument("view", metavar="VIEW")
    describe.set_defaults(run=_describe)
    search = commands.add_parser("search", parents=[common, definitions], help="find objects by name or text")
    search.add_argument("text", metavar="TEXT")
    search.set_defaults(run=_search)
    lineage = commands.add_parser("lineage", parents=[common, definitions], help="what a view reads and feeds")
    lineage.add_argument("view", metavar="VIEW")
    lineage.set_defaults(run=_lineage)


def catalog(repository: FeatureRepository, definitions: Definitions) -> Iterator[dict[str, object]]:
    """Yield one row (kind, name, description, owner, words to search) per object of the project."""
    entities = {entity.name: entity for view in repository.views.values() for entity in view.entities}
    for entity in entities.values():
        yield _row("entity", entity.name, entity.description, None, list(entity.join_keys))
    sources = {view.source.name: view.source for view in repository.views.values()}
    for source in sources.values():
        yield _row("source", source.name, source.description, source.owner, [type(source).__name__])
    for view in repository.views.values():
        words = [*view.feature_names, *view.tags, *view.tags.values(), *(f.description for f in view.schema)]
        yield _row("feature view", view.name, view.description, view.owner, words)
    for on_demand in repository.on_demand_views.values():
        yield _row("on-demand view", on_demand.name, on_demand.description, None, list(on_demand.feature_names))
    for service in repository.services.values():
        yield _row("feature service", service.name, service.description, service.owner, map(str, service.features))
    for key in definitions.resolve_asset_graph().get_all_asset_keys():
        if key.path[0] == "training":
            node = definitions.resolve_asset_graph().get(key)
            yield _row("training set", key.path[-1], node.description or "", node.owners[0] if node.owners else None)


def _row(kind: str, name: str, description: str, owner: str | None, words: object = ()) -> dict[str, object]:
    return {"kind": kind, "name": name, "description": description, "owner": owner, "words": list(words)}


def _list(args: argparse.Namespace) -> int:
    repository = load_repository(args.repository)
    rows = [row for row in catalog(repository, _definitions(args, repository)) if args.kind in (None, row["kind"])]
    output.print_table(rows, ["kind", "name", "owner", "description"], as_json=args.json)
    return output.OK


def _search(args: argparse.Namespace) -> int:
    repository = load_repository(args.repository)
    text = args.text.lower()
    rows = []
    for row in catalog(repository, _definitions(args, repository)):
        fields = {"name": row["name"], "description": row["description"], "owner": row["owner"] or ""}
        matched = [field for field, value in fields.items() if text in str(value).lower()]
        matched += [word for word in map(str, row["words"]) if text in word.lower()]
        if matched:
            rows.append({**row, "matched": matched})
    output.print_table(rows, ["kind", "name", "matched", "description"], as_json=args.json)
    return output.OK if rows else output.FAILED


def _lineage(args: argparse.Namespace) -> int:
    repository = load_repository(args.repository)
    view = repository.view(args.view)
    graph = _definitions(args, repository).resolve_asset_graph()
    rows = []
    for direction, step in (("upstream", "parent_keys"), ("downstream", "child_keys")):
        seen: dict[AssetKey, int] = {}
        frontier = [(view_asset_key(view), 0)]
        while frontier:
            key, depth = frontier.pop()
            for other in sorted(getattr(graph.get(key), step), key=lambda k: k.to_user_string()):
                if other not in seen:
                    seen[other] = depth + 1
                    frontier.append((other, depth + 1))
        rows += [
            {
                "direction": direction,
                "distance": distance,
                "asset": key.to_user_string(),
                "kinds": sorted(graph.get(key).kinds),
            }
            for key, distance in sorted(seen.items(), key=lambda item: (item[1], item[0].to_user_string()))
        ]
    output.print_table(rows, ["direction", "distance", "asset", "kinds"], as_json=args.json, title=view.name)
    return output.OK


def _describe(args: argparse.Namespace) -> int:
    repository = load_repository(args.repository)
    view = repository.view(args.view)
    record: dict[str, object] = {
        "name": view.name,
        "version": view.version,
        "versions": sorted(getattr(repository, "versions", lambda _: {view.version: view})(view.name)),
        "description": view.description,
        "owner": view.owner,
        "tags": dict(view.tags),
        "entities": {key: str(dtype) for key, dtype in view.key_dtypes.items()},
        "source": f"{view.source.name} ({type(view.source).__name__})",
        "kind": _kind(view),
        "ttl": format_duration(view.ttl) if view.ttl else None,
        "online": view.online,
        "features": {field.name: _field_text(field) for field in view.schema},
    }
    record |= _instance_state(view)
    record["usage"] = _usage(view)
    if args.json:
        record["features"] = [
            {"name": field.name, "dtype": str(field.dtype), "checks": _checks(field), "description": field.description}
            for field in view.schema
        ]
    output.print_record(record, as_json=args.json)
    return output.OK


def _kind(view: FeatureView) -> str:
    if view.streaming:
        return f"streaming aggregations (step {format_duration(view.step)})"
    if view.aggregations:
        return f"windowed aggregations (step {format_duration(view.step)})"
    if view.sql:
        return "SQL"
    return "transformation" if view.transformation else "pass-through"


def _checks(field: Field) -> list[str]:
    checks = [] if field.nullable else ["not null"]
    if field.min_value is not None:
        checks.append(f">= {field.min_value}")
    if field.max_value is not None:
        checks.append(f"<= {field.max_value}")
    if field.allowed_values is not None:
        checks.append(f"in {list(field.allowed_values)}")
    if field.max_null_pct is not None:
        checks.append(f"null <= {field.max_null_pct}%")
    return checks


def _field_text(field: Field) -> str:
    return " ".join([str(field.dtype), *(f"[{check}]" for check in _checks(field))])


def _instance_state(view: FeatureView) -> dict[str, object]:
    """Return latest partition, last published time and freshness from the Dagster instance under DAGSTER_HOME."""
    if not os.environ.get("DAGSTER_HOME"):
        return {"latest partition": "unknown (DAGSTER_HOME is not set)"}
    with DagsterInstance.get() as instance:
        latest = max(instance.get_materialized_partitions(view_asset_key(view)), default=None)
        published = None
        if view.online:
            event = instance.get_latest_materialization_event(online_asset_key(view))
            published = datetime.fromtimestamp(event.timestamp, UTC).replace(microsecond=0) if event else None
    expected = datetime.now(UTC).date() - timedelta(days=1)
    behind = (expected - date.fromisoformat(latest)).days if latest else None
    return {
        "latest partition": latest or "none",
        "last published": published or ("never" if view.online else "offline only"),
        "freshness": "never materialized"
        if behind is None
        else ("fresh" if behind <= 0 else f"{behind} day(s) behind {expected.isoformat()}"),
    }


def _usage(view: FeatureView) -> Mapping[str, int] | str:
    """Return the online reads counted per feature of `view` (all callers), or why they are unknown."""
    if not (os.environ.get("REDIS_URL") or os.environ.get("DAGSTER_HOME")):
        return "unknown (set REDIS_URL or DAGSTER_HOME to reach the online store)"
    store = RedisOnlineStore.from_env()
    try:
        counts = usage_counts(store.client, store.key_prefix)
    finally:
        store.close()
    prefix = f"{view.name}:"
    return {name.removeprefix(prefix): n for name, n in sorted(counts.features.items()) if name.startswith(prefix)}


def _definitions(args: argparse.Namespace, repository: FeatureRepository) -> Definitions:
    """Return the Dagster definitions named by --definitions, or those of the repository without training sets."""
    path = args.definitions or (DEMO_DEFINITIONS if args.repository.startswith("feature_assets.demo.") else None)
    if path is None:
        return build_definitions(repository)
    module, _, attribute = path.partition(":")
    definitions = getattr(importlib.import_module(module), attribute or "defs", None)
    if not isinstance(definitions, Definitions):
        raise DefinitionError(f"{path!r} does not name Dagster Definitions (write 'module:attribute')")
    return definitions
