"""Jobs that materialize every feature view over a range: one per start date, since a job has one partitions set.

Views keep their own daily partitions from their own `start_date`. A Dagster job (and a run) covers assets of one
partitions definition, so the views are grouped by start date into `materialize_feature_views` (all views share
one start) or `materialize_feature_views_from_<YYYY_MM_DD>` (one job per start). `materialize_views_over` runs each
group over its own part of a date range: what the demo does and what a script calls. In the UI, each job is
backfilled over a range from its Partitions tab, whose picker offers only the days its views have.
"""

from collections.abc import Mapping, Sequence
from datetime import date

from dagster import (
    AssetChecksDefinition,
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    define_asset_job,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from feature_assets.language.asset_keys import view_asset_key
from feature_assets.language.feature_view import FeatureView
from feature_assets.orchestration.partitions import partition_range_tags

MATERIALIZE_VIEWS_JOB = "materialize_feature_views"


def materialize_job_names(views: Sequence[FeatureView]) -> dict[date, str]:
    """Return the name of the materialization job of each distinct view start date."""
    starts = sorted({view.start_date for view in views})
    if len(starts) == 1:
        return {starts[0]: MATERIALIZE_VIEWS_JOB}
    return {start: f"{MATERIALIZE_VIEWS_JOB}_from_{start.strftime('%Y_%m_%d')}" for start in starts}


def build_materialize_jobs(
    views: Sequence[FeatureView], excluded_checks: Sequence[AssetChecksDefinition] = ()
) -> list[UnresolvedAssetJobDefinition]:
    """Return one job per start date computing and checking its views (without `excluded_checks`)."""
    jobs = []
    for start, name in materialize_job_names(views).items():
        keys = [view_asset_key(view) for view in views if view.start_date == start]
        jobs.append(
            define_asset_job(
                name,
                selection=AssetSelection.assets(*keys) - AssetSelection.checks(*excluded_checks),
                description=(
                    f"Compute and check the feature views starting on {start.isoformat()} over a partition range "
                    "(freshness is judged by its own sensor)"
                ),
            )
        )
    return jobs


def materialize_views_over(
    defs: Definitions,
    views: Sequence[FeatureView],
    instance: DagsterInstance,
    first: date,
    last: date,
    run_config: Mapping[str, object] | None = None,
) -> list[ExecuteInProcessResult]:
    """Materialize every view over the days of `[first, last]` it has partitions for: one run per start date."""
    results = []
    for start, name in materialize_job_names(views).items():
        job = defs.resolve_job_def(name)
        last_key = job.partitions_def.get_last_partition_key() if job.partitions_def else None
        begin = max(first, start)
        end = min(last, date.fromisoformat(last_key)) if last_key else last
        if begin > end:
            continue
        results.append(
            job.execute_in_process(
                instance=instance,
                tags=partition_range_tags(begin.isoformat(), end.isoformat()),
                run_config=run_config,
                raise_on_error=False,
            )
        )
    return results
