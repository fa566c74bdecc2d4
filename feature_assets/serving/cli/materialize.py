"""`feature-store materialize VIEW... --start --end`: Dagster runs over a date range, with a progress bar."""

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import date

from dagster import DagsterInstance
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from feature_assets.language.repository import load_repository
from feature_assets.serving.cli import output
from feature_assets.serving.materialize import (
    SUCCEEDED,
    MaterializationProgress,
    MaterializationRun,
    launch_materialization,
    materialization_workspace,
    plan_materialization,
    queue_needs_daemon,
    wait_for_runs,
)

NO_DAEMON = (
    "this Dagster instance queues runs (QueuedRunCoordinator) and no Dagster daemon is running to start them: "
    "start one (./dev ui, dagster dev or dagster-daemon run), or pass --no-wait to leave the runs queued"
)
QUEUED_NOTE = "note: the runs wait in the run queue until a Dagster daemon starts (./dev ui or dagster-daemon run)\n"


def _day(text: str) -> date:
    """Parse a YYYY-MM-DD argument."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day; write YYYY-MM-DD") from None


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `materialize` command."""
    parser = commands.add_parser(
        "materialize",
        parents=[common],
        help="materialize feature views over a date range as Dagster runs",
        description=(
            "Submit one Dagster run per view covering its daily partitions from --start to --end, on the instance "
            "in $DAGSTER_HOME (the UI shows them), then show a progress bar until every run ends. Exits 0 only if "
            "every run succeeded."
        ),
    )
    parser.add_argument("views", nargs="+", metavar="VIEW", help="feature view to materialize")
    parser.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", type=_day, required=True, help="last day, YYYY-MM-DD (included)")
    parser.add_argument("--no-wait", action="store_true", help="return once the runs are submitted")
    parser.add_argument(
        "--workspace",
        help="Dagster workspace file of the code location (default: ./workspace.yaml, else ./pyproject.toml's)",
    )
    parser.set_defaults(run=materialize)


def materialize(args: argparse.Namespace) -> int:
    """Submit the runs, then wait for them unless --no-wait; return 0 only if all succeeded."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return output.fail(
            "DAGSTER_HOME is not set: set it to the folder of the Dagster instance the UI uses (./dev sets "
            "$PWD/.dagster_home), so the runs are recorded where the UI and the daemon see them",
            output.USAGE,
        )
    if not os.path.isdir(home):
        return output.fail(
            f"DAGSTER_HOME={home} is not a folder; create it or point it at the instance's", output.USAGE
        )
    repository = load_repository(args.repository)
    plan_materialization(args.views, args.start, args.end, repository)
    with DagsterInstance.get() as instance:
        queued_forever = queue_needs_daemon(instance)
        if queued_forever and not args.no_wait:
            return output.fail(NO_DAEMON, output.UNAVAILABLE)
        with materialization_workspace(instance, args.workspace) as workspace:
            runs = launch_materialization(
                args.views, args.start, args.end, repository=repository, instance=instance, workspace=workspace
            )
            if args.no_wait:
                _print_runs(runs, None, as_json=args.json)
                if queued_forever:
                    sys.stderr.write(QUEUED_NOTE)
                return output.OK
            final = _wait_with_progress(instance, runs)
    _print_runs(runs, final, as_json=args.json)
    failed = [run.run_id for run in runs if final.states[run.run_id] != SUCCEEDED]
    if failed:
        return output.fail(
            f"{len(failed)} of {len(runs)} runs did not succeed: {', '.join(failed)}; open them in the Dagster UI "
            "(Runs) for their logs"
        )
    return output.OK


def _wait_with_progress(instance: DagsterInstance, runs: Sequence[MaterializationRun]) -> MaterializationProgress:
    """Wait for the runs with a progress bar over their partitions on stderr."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("partitions  {task.fields[states]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress_bar:
        views = ", ".join(run.view for run in runs)
        task = progress_bar.add_task(views, total=sum(len(run.partitions) for run in runs), states="")

        def show(progress: MaterializationProgress) -> None:
            done = sum(
                len(run.partitions) if progress.states[run.run_id] == SUCCEEDED else progress.materialized[run.run_id]
                for run in runs
            )
            states = Counter(progress.states.values())
            summary = ", ".join(f"{count} {state.lower()}" for state, count in sorted(states.items()))
            progress_bar.update(task, completed=done, states=f"runs: {summary}")

        return wait_for_runs(instance, runs, on_poll=show)


def _print_runs(runs: Sequence[MaterializationRun], progress: MaterializationProgress | None, *, as_json: bool) -> None:
    """Print the runs (with their final status once waited for) as a table or JSON."""
    rows = [
        {
            "run_id": run.run_id,
            "view": run.view,
            "partitions": list(run.partitions) if as_json else f"{run.partitions[0]}..{run.partitions[-1]}",
            "count": len(run.partitions),
            "status": progress.states[run.run_id] if progress else None,
        }
        for run in runs
    ]
    columns = ["run_id", "view", "partitions", "count"] + (["status"] if progress else [])
    output.print_table(rows, columns, as_json=as_json, title=None if as_json else "materialization runs")
