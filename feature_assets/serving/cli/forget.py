"""`feature-store forget`: erase every trace of one entity online and offline; without --yes, a dry run."""

import argparse
import contextlib
import importlib
import os
from collections.abc import Iterator

from dagster import DagsterInstance

from feature_assets.language.errors import DefinitionError
from feature_assets.language.repository import load_repository
from feature_assets.language.training_set import TrainingSet
from feature_assets.serving.cli import output
from feature_assets.serving.erasure_scope import parse_entity_arguments
from feature_assets.serving.forget import forget_entity
from feature_assets.serving.forget_record import ForgetReport
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

ONLINE_COLUMNS = ("view", "hashes", "tiles", "stream_entries")
FILE_COLUMNS = ("path", "kind", "owner", "rows_removed")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `forget` command."""
    parser = commands.add_parser(
        "forget",
        parents=[common],
        help="erase one entity from Redis and every Parquet file (a dry run without --yes)",
        description=(
            "Delete an entity's online keys in every version, rewrite each offline file holding it without its rows "
            "(one atomic replace per file), mark training sets that held it as stale in Dagster ($DAGSTER_HOME) and "
            "write an audit record under <offline root>/_audit/forget/. Without --yes, print what would be deleted."
        ),
    )
    parser.add_argument(
        "--entity",
        action="append",
        required=True,
        metavar="KEY=VALUE",
        help="a join key value of the entity, e.g. driver_id=42; repeat it for each key of a composite entity",
    )
    parser.add_argument(
        "--view",
        action="append",
        dest="views",
        metavar="VIEW",
        help="erase only in this view (repeatable); default: every view keyed by the given keys",
    )
    parser.add_argument(
        "--training-sets",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="a TrainingSet or a list of them whose label files are rewritten too (outputs always are)",
    )
    parser.add_argument("--actor", default="cli", help="who asks for the erasure, kept in the audit record")
    parser.add_argument("--yes", action="store_true", help="erase; without it nothing is changed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Forget the entity (or, without --yes, show what would be forgotten) and print the report."""
    repository = load_repository(args.repository)
    entity = parse_entity_arguments(repository, args.entity)
    training_sets = [training_set for path in args.training_sets for training_set in _training_sets(path)]
    online_store = RedisOnlineStore.from_env(repository=args.repository)
    try:
        with _instance(args.yes) as instance:
            report = forget_entity(
                repository,
                entity,
                online_store=online_store,
                offline_store=OfflineStore.from_env(),
                views=args.views,
                instance=instance,
                training_sets=training_sets,
                actor=args.actor,
                dry_run=not args.yes,
            )
    finally:
        online_store.close()
    _print(report, as_json=args.json)
    return output.OK


@contextlib.contextmanager
def _instance(erasing: bool) -> Iterator[DagsterInstance | None]:
    """Yield the Dagster instance at $DAGSTER_HOME when erasing and it is set, else None."""
    if not erasing or not os.environ.get("DAGSTER_HOME"):
        yield None
        return
    with DagsterInstance.get() as instance:
        yield instance


def _training_sets(import_path: str) -> list[TrainingSet]:
    """Import a TrainingSet, or a list of them, at `module:attribute`."""
    module_name, _, attribute = import_path.partition(":")
    value = getattr(importlib.import_module(module_name), attribute, None) if attribute else None
    found = [value] if isinstance(value, TrainingSet) else list(value) if isinstance(value, list | tuple) else []
    if not found or not all(isinstance(item, TrainingSet) for item in found):
        raise DefinitionError(f"--training-sets {import_path!r} does not name a TrainingSet or a list of them")
    return found


def _training_note(report: ForgetReport) -> str:
    """Return what happened to the training sets that held the entity in Dagster."""
    if not report.training_sets:
        return "none held the entity"
    names = ", ".join(report.training_sets)
    if report.dry_run:
        return f"{names} (would be marked stale)"
    return f"{names} (marked stale)" if report.marked_in_dagster else f"{names} (not marked: DAGSTER_HOME is unset)"


def _print(report: ForgetReport, *, as_json: bool) -> None:
    """Print the report: a summary, the online keys per view and the files, or all of it as JSON."""
    if as_json:
        output.print_json({**report.record(), "audit_path": report.audit_path})
        return
    verb = "would remove" if report.dry_run else "removed"
    output.print_record(
        {
            "entity keys": list(report.key_names),
            "entity sha256": report.entity_sha256,
            "views": list(report.views),
            "mode": "dry run: nothing changed, add --yes to erase" if report.dry_run else "erased",
            "audit record": report.audit_path or "",
            "training sets": _training_note(report),
        },
        as_json=False,
    )
    online_rows = [{"view": view, **counts} for view, counts in report.online.items()]
    output.print_table(online_rows, ONLINE_COLUMNS, as_json=False, title=f"online: keys and entries it {verb}")
    file_rows = [vars(rewrite) for rewrite in report.files]
    output.print_table(file_rows, FILE_COLUMNS, as_json=False, title=f"offline: files and rows it {verb}")
    if report.sources_outside_root:
        output.print_table(
            [{"path": path} for path in report.sources_outside_root],
            ("path",),
            as_json=False,
            title="outside the store's root, not rewritten: erase the entity there too",
        )
