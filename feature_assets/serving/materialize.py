"""Materializing views over a date range from outside the UI: real Dagster runs submitted to the instance.

Runs are created the way `dagster job launch` creates them: the project's code location is loaded through a
WorkspaceProcessContext (a gRPC code server, as `dagster dev` runs it), and for each view one run of its
materialization job is created for the view's asset and checks, tagged with its partition range (the views'
`BackfillPolicy.single_run()` lets one run cover a range), then submitted with `instance.submit_run`. Submitting goes
through the instance's run coordinator: with the default QueuedRunCoordinator the run waits in the queue until the
Dagster daemon (`dagster dev`, `dagster-daemon run`) starts it within its limits; with the DefaultRunCoordinator it
starts at once. Either way the run executes in its own process, so launching returns as soon as the runs are submitted.
"""

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster import __version__ as dagster_version
from dagster._cli.utils import has_pyproject_dagster_block
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import FINISHED_STATUSES
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.workspace.context import BaseWorkspaceRequestContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import PyProjectFileTarget, WorkspaceFileTarget, WorkspaceLoadTarget
from dagster._daemon.controller import get_daemon_statuses

from feature_assets.language.asset_keys import view_asset_key
from feature_assets.language.errors import DefinitionError, FeatureReferenceError
from feature_assets.language.feature_view import FeatureView
from feature_assets.language.repository import FeatureRepository
from feature_assets.orchestration.jobs import MATERIALIZE_VIEWS_JOB
from feature_assets.orchestration.partitions import daily_partitions, partition_range_tags

LAUNCHED_BY_TAG = "feature_store/launched_by"
# Runs log to the console of the process that launched them (this one, through the code server); WARNING keeps a
# terminal or a server log readable. The run's full event log is stored on the instance whatever this level.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
# The daemon writes a heartbeat every 30 s; two missed beats mean nobody is taking runs off the queue.
QUEUE_DAEMON_SILENCE_S = 30
SUCCEEDED = DagsterRunStatus.SUCCESS.value
NOT_FOUND = "NOT_FOUND"
FINISHED = frozenset({NOT_FOUND, *(status.value for status in FINISHED_STATUSES)})


@dataclass(frozen=True)
class MaterializationRun:
    """One Dagster run materializing `partitions` (daily keys, in order) of feature view `view`."""

    run_id: str
    view: str
    partitions: tuple[str, ...]


def view_partitions(view: FeatureView, start: date, end: date) -> tuple[str, ...]:
    """Return the daily partition keys of `view` from `start` to `end`, or raise naming the view's valid range."""
    last_key = daily_partitions(view.start_date).get_last_partition_key()
    if last_key is None:
        raise DefinitionError(
            f"FeatureView {view.name!r} has no partition yet: its first day, {view.start_date.isoformat()}, "
            "has not ended; materialize it from tomorrow on"
        )
    last = date.fromisoformat(last_key)
    valid = f"{view.start_date.isoformat()} to {last_key}"
    if end < start:
        raise DefinitionError(f"end {end.isoformat()} is before start {start.isoformat()}; give start <= end")
    if start < view.start_date or end > last:
        raise DefinitionError(
            f"FeatureView {view.name!r}: {start.isoformat()} to {end.isoformat()} is outside its partitions; "
            f"choose days from {valid} (the last is the latest complete UTC day)"
        )
    return tuple((start + timedelta(days=offset)).isoformat() for offset in range((end - start).days + 1))


def plan_materialization(
    views: Sequence[str], start: date, end: date, repository: FeatureRepository
) -> dict[str, tuple[str, ...]]:
    """Return the partition keys to materialize per view, or raise naming an unknown view or the valid range."""
    partitions = {}
    for name in dict.fromkeys(views):
        if name in repository.on_demand_views:
            raise DefinitionError(
                f"{name!r} is an on-demand view, computed at read time; it has nothing to materialize"
            )
        partitions[name] = view_partitions(repository.view(name), start, end)
    if not partitions:
        raise DefinitionError("no views given; name at least one feature view to materialize")
    return partitions


def workspace_target(workspace_file: str | Path | None = None) -> WorkspaceLoadTarget:
    """Return the Dagster workspace to load: `workspace_file`, else ./workspace.yaml, else ./pyproject.toml's.

    ./workspace.yaml comes first because `dagster dev -w workspace.yaml` (`./dev ui`) loads it: runs are then
    created for the code location name its daemon knows, so it can dequeue them.
    """
    if workspace_file is not None:
        path = Path(workspace_file)
        if not path.is_file():
            raise DefinitionError(f"workspace file {str(path)!r} does not exist; pass a Dagster workspace.yaml")
        return WorkspaceFileTarget(paths=[str(path.resolve())])
    if Path("workspace.yaml").is_file():
        return WorkspaceFileTarget(paths=[str(Path("workspace.yaml").resolve())])
    if has_pyproject_dagster_block("pyproject.toml"):
        return PyProjectFileTarget(str(Path("pyproject.toml").resolve()))
    raise DefinitionError(
        f"no Dagster workspace in {Path.cwd()}: run from the project folder (workspace.yaml or [tool.dagster] in "
        "pyproject.toml) or name a workspace file"
    )


@contextmanager
def materialization_workspace(
    instance: DagsterInstance, workspace_file: str | Path | None = None
) -> Iterator[WorkspaceProcessContext]:
    """Load the project's code locations in a code server for launching runs; on exit it ends once its runs end."""
    target = workspace_target(workspace_file)
    with WorkspaceProcessContext(
        instance, target, version=dagster_version, code_server_log_level="WARNING"
    ) as workspace:
        errors = workspace.create_request_context().code_location_errors()
        if errors:
            raise DefinitionError(
                f"the Dagster code location failed to load: {errors[0].message.strip().splitlines()[0]}; "
                "fix the definitions (try `dagster definitions validate`)"
            )
        yield workspace


def launch_materialization(
    views: Sequence[str],
    start: date,
    end: date,
    *,
    repository: FeatureRepository,
    instance: DagsterInstance,
    workspace: WorkspaceProcessContext | None = None,
) -> list[MaterializationRun]:
    """Submit one Dagster run per view materializing its days from `start` to `end`; return the runs at once.

    `workspace` is a loaded `materialization_workspace` to reuse; without it the project's is loaded for this call.
    """
    partitions = plan_materialization(views, start, end, repository)
    if workspace is None:
        with materialization_workspace(instance) as loaded:
            return launch_materialization(views, start, end, repository=repository, instance=instance, workspace=loaded)
    context = workspace.create_request_context()
    selectors = {name: _view_job_selector(context, repository.view(name)) for name in partitions}
    return [
        MaterializationRun(run_id=_submit_run(context, instance, selectors[name], keys), view=name, partitions=keys)
        for name, keys in partitions.items()
    ]


def _view_job_selector(context: BaseWorkspaceRequestContext, view: FeatureView) -> JobSubsetSelector:
    """Return the selection of the view's asset and its checks within its materialization job."""
    graph = context.asset_graph
    key = view_asset_key(view)
    if not graph.has(key):
        raise FeatureReferenceError(
            f"FeatureView {view.name!r} has no asset in the Dagster code locations "
            f"{list(context.code_location_names)}; load the workspace whose definitions are built from this repository"
        )
    job_name = next((job for job in graph.get(key).job_names if job.startswith(MATERIALIZE_VIEWS_JOB)), None)
    if job_name is None:
        raise DefinitionError(
            f"FeatureView {view.name!r} is in no {MATERIALIZE_VIEWS_JOB}* job of its code location; build the "
            "definitions with build_definitions"
        )
    handle = graph.get_repository_handle(key)
    return JobSubsetSelector(
        location_name=handle.location_name,
        repository_name=handle.repository_name,
        job_name=job_name,
        op_selection=None,
        asset_selection=[key],
        asset_check_selection=[
            node.asset_check.key for node in graph.get_checks_for_asset(key) if job_name in node.asset_check.job_names
        ],
    )


def _submit_run(
    context: BaseWorkspaceRequestContext, instance: DagsterInstance, selector: JobSubsetSelector, keys: tuple[str, ...]
) -> str:
    """Create the run of a job selection over the partitions `keys` and submit it to the run coordinator."""
    code_location = context.get_code_location(selector.location_name)
    remote_job = code_location.get_job(selector)
    plan = code_location.get_execution_plan(
        remote_job, run_config=QUIET_RUN_CONFIG, step_keys_to_execute=None, known_state=None, instance=instance
    )
    partition_tags = {PARTITION_NAME_TAG: keys[0]} if len(keys) == 1 else partition_range_tags(keys[0], keys[-1])
    run = instance.create_run(
        job_name=remote_job.name,
        run_id=None,
        run_config=QUIET_RUN_CONFIG,
        resolved_op_selection=None,
        op_selection=None,
        step_keys_to_execute=None,
        status=DagsterRunStatus.NOT_STARTED,
        tags={**remote_job.run_tags, LAUNCHED_BY_TAG: "materialize", **partition_tags},
        root_run_id=None,
        parent_run_id=None,
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=frozenset(selector.asset_selection or ()),
        asset_check_selection=frozenset(selector.asset_check_selection or ()),
        asset_graph=context.asset_graph,
    )
    return instance.submit_run(run.run_id, context).run_id


def queue_needs_daemon(instance: DagsterInstance) -> bool:
    """Return whether submitted runs wait in a run queue that no live Dagster daemon is taking runs from."""
    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
        return False
    statuses = get_daemon_statuses(
        instance, [QUEUE_DAEMON], ignore_errors=True, heartbeat_tolerance_seconds=QUEUE_DAEMON_SILENCE_S
    )
    return not statuses[QUEUE_DAEMON].healthy


def run_states(instance: DagsterInstance, run_ids: Sequence[str]) -> dict[str, str]:
    """Return the Dagster status name (QUEUED, STARTED, SUCCESS, FAILURE, ...) of each run found on the instance."""
    runs = instance.get_runs(RunsFilter(run_ids=list(run_ids))) if run_ids else []
    return {run.run_id: run.status.value for run in runs}


def materialized_partitions(instance: DagsterInstance, run: MaterializationRun) -> int:
    """Return how many of the run's partitions it has materialized so far."""
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    return min(len(records), len(run.partitions))


@dataclass(frozen=True)
class MaterializationProgress:
    """The state of launched runs at one poll: each run's status and partitions materialized."""

    states: Mapping[str, str]
    materialized: Mapping[str, int]

    @property
    def finished(self) -> bool:
        """Return whether every run has ended (succeeded, failed, was canceled or deleted)."""
        return all(state in FINISHED for state in self.states.values())


def poll_runs(instance: DagsterInstance, runs: Sequence[MaterializationRun]) -> MaterializationProgress:
    """Return the current status and materialized partitions of each run."""
    states = run_states(instance, [run.run_id for run in runs])
    return MaterializationProgress(
        states={run.run_id: states.get(run.run_id, NOT_FOUND) for run in runs},
        materialized={run.run_id: materialized_partitions(instance, run) for run in runs},
    )


def wait_for_runs(
    instance: DagsterInstance,
    runs: Sequence[MaterializationRun],
    *,
    on_poll: Callable[[MaterializationProgress], None] | None = None,
    poll_seconds: float = 1.0,
    timeout: float | None = None,
) -> MaterializationProgress:
    """Poll the runs until every one has ended (calling `on_poll` each time); return their final progress."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        progress = poll_runs(instance, runs)
        if on_poll is not None:
            on_poll(progress)
        if progress.finished:
            return progress
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"runs still not finished after {timeout} s: {dict(progress.states)}")
        time.sleep(poll_seconds)
