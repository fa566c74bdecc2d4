"""`versions VIEW` lists the versions of a view served side by side; `retire VIEW --version N` deletes an old one."""

import argparse

from feature_assets.language.durations import format_duration
from feature_assets.language.errors import DefinitionError
from feature_assets.language.repository import load_repository
from feature_assets.serving.cli import output
from feature_assets.serving.versions import retire_version
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

VERSION_COLUMNS = ("version", "current", "features", "ttl", "offline partitions")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `versions VIEW` and `retire VIEW --version N [--offline]`."""
    versions = commands.add_parser(
        "versions", parents=[common], help="list the versions of a view (current and previous, served side by side)"
    )
    versions.add_argument("view", metavar="VIEW")
    versions.set_defaults(run=_versions)
    retire = commands.add_parser(
        "retire", parents=[common], help="delete a previous version's online keys (and with --offline its partitions)"
    )
    retire.add_argument("view", metavar="VIEW")
    retire.add_argument("--version", type=int, required=True, metavar="N", help="the previous version to retire")
    retire.add_argument(
        "--offline", action="store_true", help="also delete its offline folder <root>/<view>/v<N>/ (training data)"
    )
    retire.set_defaults(run=_retire)


def _versions(args: argparse.Namespace) -> int:
    repository = load_repository(args.repository)
    current = repository.view(args.view)
    offline_store = OfflineStore.from_env()
    rows = [
        {
            "version": version,
            "current": version == current.version,
            "features": list(view.feature_names),
            "ttl": view.ttl if args.json or view.ttl is None else format_duration(view.ttl),
            "offline partitions": len(offline_store.list_partitions(view)),
        }
        for version, view in repository.versions(current.name).items()
    ]
    output.print_table(rows, VERSION_COLUMNS, as_json=args.json, title=f"versions of {current.name}")
    return output.OK


def _retire(args: argparse.Namespace) -> int:
    repository = load_repository(args.repository)
    online_store = RedisOnlineStore.from_env(repository=args.repository)
    try:
        report = retire_version(
            repository,
            args.view,
            args.version,
            online_store=online_store,
            offline_store=OfflineStore.from_env() if args.offline else None,
        )
    except DefinitionError as error:
        return output.fail(str(error), output.REFUSED)
    finally:
        online_store.close()
    record: dict[str, object] = {
        "view": report.view,
        "version": report.version,
        "online keys deleted": report.online_keys,
    }
    if args.offline:
        record["offline folder deleted"] = report.offline_folder
        record["offline partitions deleted"] = report.offline_partitions
        record["offline files deleted"] = report.offline_files
    record["next step"] = report.next_step
    output.print_record(record, as_json=args.json)
    return output.OK
