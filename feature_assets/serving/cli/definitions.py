"""Definitions: `plan` and `apply` against the applied snapshot, `export` and `import` of YAML for other tools."""

import argparse
import os
import sys
from pathlib import Path

from feature_assets.language.repository import load_repository
from feature_assets.serving.cli import output
from feature_assets.serving.definition_diff import Plan, plan_changes
from feature_assets.serving.definition_snapshot import read_applied, snapshot_repository, write_applied
from feature_assets.serving.definition_yaml import export_yaml, import_yaml

DEFAULT_SNAPSHOT = "applied_definitions.json"


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `plan`, `apply`, `export` and `import` to the command line."""
    snapshot = argparse.ArgumentParser(add_help=False)
    snapshot.add_argument(
        "--snapshot",
        type=Path,
        help=f"the applied snapshot (default: $FEATURE_SNAPSHOT or ./{DEFAULT_SNAPSHOT}); a missing file means "
        "nothing was applied yet",
    )
    plan = commands.add_parser(
        "plan",
        parents=[common, snapshot],
        help="show how the definitions differ from the applied snapshot",
        description="Print what apply would record: Created, Updated and Deleted definitions, with `field: old -> "
        "new` lines. Exits 3 when a breaking change lacks a version bump, saying what to bump.",
    )
    plan.set_defaults(run=run_plan)
    apply = commands.add_parser(
        "apply",
        parents=[common, snapshot],
        help="record the definitions as applied, unless a breaking change lacks a version bump",
        description="Print the plan and write the snapshot (atomically) when no change is refused; exits 3 and "
        "writes nothing otherwise.",
    )
    apply.set_defaults(run=run_apply)
    export = commands.add_parser(
        "export",
        parents=[common],
        help="write the definitions as YAML for other tools",
        description="Write the definitions as YAML (top-level entities, sources, feature_views, "
        "on_demand_feature_views, feature_services). The Python definitions stay the source of truth.",
    )
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.set_defaults(run=run_export)
    imported = commands.add_parser(
        "import",
        parents=[common],
        help="show how a YAML document differs from the Python definitions (changes no code)",
        description="Validate a YAML document of the shape export writes and print the plan from the Python "
        "definitions to it. Python stays the source of truth: import never changes code or the applied snapshot; "
        "make the changes in Python, then plan and apply.",
    )
    imported.add_argument("file", type=Path, help="YAML document, as written by export")
    imported.set_defaults(run=run_import)


def snapshot_path(args: argparse.Namespace) -> Path:
    """Return the applied snapshot's path: --snapshot, else $FEATURE_SNAPSHOT, else the default in the cwd."""
    return args.snapshot or Path(os.environ.get("FEATURE_SNAPSHOT") or DEFAULT_SNAPSHOT)


def run_plan(args: argparse.Namespace) -> int:
    """Print the plan from the applied snapshot to the current definitions."""
    current = snapshot_repository(load_repository(args.repository))
    return _report(plan_changes(read_applied(snapshot_path(args)), current), args.json)


def run_apply(args: argparse.Namespace) -> int:
    """Print the plan and record the current definitions as applied, unless the plan is refused."""
    path = snapshot_path(args)
    current = snapshot_repository(load_repository(args.repository))
    plan = plan_changes(read_applied(path), current)
    if not plan.refused:
        write_applied(path, current)
    code = _report(plan, args.json, {"applied": not plan.refused, "snapshot": str(path)})
    if plan.refused:
        return output.fail(f"nothing applied; {path} is unchanged", code)
    if not args.json:
        sys.stdout.write(f"Applied: {path} records these definitions\n")
    return code


def run_export(args: argparse.Namespace) -> int:
    """Write the definitions as YAML to --output or standard output."""
    text = export_yaml(snapshot_repository(load_repository(args.repository)))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return output.OK


def run_import(args: argparse.Namespace) -> int:
    """Print the plan from the Python definitions to a YAML document, changing nothing."""
    try:
        text = args.file.read_text()
    except OSError as error:
        return output.fail(f"cannot read {args.file}: {error.strerror}", output.USAGE)
    document = import_yaml(text, str(args.file))
    return _report(plan_changes(snapshot_repository(load_repository(args.repository)), document), args.json)


def _report(plan: Plan, as_json: bool, extra: dict[str, object] | None = None) -> int:
    """Print the plan (text or JSON), the refusals on stderr, and return OK or REFUSED."""
    if as_json:
        output.print_json(plan.to_json() | (extra or {}))
    else:
        sys.stdout.write(plan.render() + "\n")
    for refusal in plan.refusals:
        output.fail(refusal, output.REFUSED)
    return output.REFUSED if plan.refused else output.OK
