"""The online store at the terminal: `get-online` values of entities, `rebuild-online` from the offline store."""

import argparse
from collections.abc import Sequence

import polars as pl

from feature_assets.compute.online_rebuild import rebuild_online_view, rebuildable_views
from feature_assets.compute.stream_rebuild import StreamRebuildError
from feature_assets.language.errors import EntityFrameError
from feature_assets.language.feature_service import FeatureService
from feature_assets.language.repository import FeatureRepository, load_repository
from feature_assets.serving.cli import output
from resources.offline_store import OfflineStore
from resources.online_response import PRESENT
from resources.online_store import RedisOnlineStore


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `get-online VIEW|SERVICE --entity key=value[,key=value] ...`."""
    command = commands.add_parser(
        "get-online", parents=[common], help="read online values of a view, on-demand view or feature service"
    )
    command.add_argument("target", metavar="VIEW|SERVICE")
    command.add_argument(
        "--entity",
        action="append",
        required=True,
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="one entity row: its join keys (and request values of on-demand views); repeat for more rows",
    )
    command.add_argument("--feature", action="append", metavar="NAME", help="only these features of the view")
    command.set_defaults(run=_run)
    rebuild = commands.add_parser(
        "rebuild-online",
        parents=[common],
        help="disaster recovery: rewrite Redis from the offline store (latest row per entity within ttl)",
        description="For every online batch view (or each --view), write the latest row per entity within its ttl "
        "from its passed partitions. Writes are newer-wins, so it is safe while serving and publishing run. A "
        "streaming view's tiles are rebuilt from its event log, fenced against its stream workers (its archiver "
        "must have caught up). The `rebuild_online_store` job does the same from the UI.",
    )
    rebuild.add_argument("--view", action="append", metavar="VIEW", help="only this view (repeatable)")
    rebuild.set_defaults(run=_rebuild)


def features_of(repository: FeatureRepository, target: str, only: Sequence[str] | None) -> list[str] | FeatureService:
    """Return the references (or the service) that `get-online TARGET` reads."""
    if target in repository.services and not only:
        return repository.services[target]
    if target in repository.on_demand_views:
        names = repository.on_demand_views[target].feature_names
    else:
        names = repository.view(target).feature_names
    return [f"{target}:{name}" for name in (only or names)]


def entity_rows(repository: FeatureRepository, specs: Sequence[str]) -> pl.DataFrame:
    """Return the entity rows typed `key=value,key=value`, each value cast to its join key's or request dtype."""
    dtypes = {key: dtype for view in repository.views.values() for key, dtype in view.key_dtypes.items()}
    dtypes |= {
        field.name: field.dtype
        for on_demand in repository.on_demand_views.values()
        for field in on_demand.request_fields
    }
    rows = []
    for spec in specs:
        pairs = [part.partition("=") for part in spec.split(",") if part]
        if any(not sep or not key for key, sep, _ in pairs):
            raise EntityFrameError(f"--entity {spec!r}: write key=value pairs separated by commas, e.g. driver_id=42")
        rows.append({key.strip(): value.strip() for key, _, value in pairs})
    columns = list(dict.fromkeys(key for row in rows for key in row))
    series = []
    for column in columns:
        if column not in dtypes:
            raise EntityFrameError(
                f"--entity: {column!r} is neither a join key nor a request value; known: {sorted(dtypes)}"
            )
        values = pl.Series(column, [row.get(column) for row in rows], dtype=pl.String)
        try:
            series.append(values.cast(dtypes[column], strict=True))
        except pl.exceptions.InvalidOperationError:
            raise EntityFrameError(
                f"--entity: {column!r} values {values.to_list()} are not {dtypes[column]}; pass values of that type"
            ) from None
    return pl.DataFrame(series)


def _run(args: argparse.Namespace) -> int:
    repository = load_repository(args.repository)
    features = features_of(repository, args.target, args.feature)
    rows = entity_rows(repository, args.entity)
    store = RedisOnlineStore.from_env(repository=args.repository)
    try:
        response = store.get_online_features(features, rows, include_timestamps=True)
    finally:
        store.close()
    columns = list(response.columns)
    table = []
    for index in range(rows.height):
        row: dict[str, object] = {name: response.columns[name][index] for name in columns}
        statuses = {name: values[index] for name, values in response.statuses.items()}
        if args.json:
            row["statuses"] = statuses
        else:
            row |= {name: f"({status})" for name, status in statuses.items() if status != PRESENT}
        table.append(row)
    if args.json:
        output.print_json(table)
    else:
        output.print_table(table, columns, as_json=False)
    return output.OK


def _rebuild(args: argparse.Namespace) -> int:
    repository = load_repository(args.repository)
    views = rebuildable_views(
        [repository.view(name) for name in args.view] if args.view else list(repository.views.values())
    )
    if args.view and len(views) < len(args.view):
        return output.fail(f"only online views can be rebuilt; of {args.view}, those are {[v.name for v in views]}")
    online = RedisOnlineStore.from_env(repository=args.repository, count_usage=False)
    offline = OfflineStore.from_env()
    try:
        rebuilt = [rebuild_online_view(view, offline, online) for view in views]
    except StreamRebuildError as error:
        return output.fail(str(error))
    finally:
        online.close()
    rows = [vars(result) for result in rebuilt]
    output.print_table(rows, ["view", "partitions", "rows", "written"], as_json=args.json)
    return output.OK
