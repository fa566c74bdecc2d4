"""The demo code location's asset graph, pinned by a snapshot: keys, groups, partitions, checks, jobs, automation.

A change that renames nothing in the UI leaves the snapshot unchanged. The demo's views start on its first day,
which moves with the calendar, so the snapshot names that day instead of a date. Update it on purpose with
`./dev test tests/test_asset_graph.py --snapshot-update` and read the diff.
"""

import dagster as dg
from dagster import DailyPartitionsDefinition, PartitionsDefinition

from feature_assets.demo.calendar import FIRST_DAY


def describe_partitions(partitions: PartitionsDefinition | None) -> str | None:
    if partitions is None:
        return None
    if isinstance(partitions, DailyPartitionsDefinition):
        offset = f", end offset {partitions.end_offset}" if partitions.end_offset else ""
        start = partitions.start.date()
        since = "the demo's first day" if start == FIRST_DAY else start.isoformat()
        return f"daily {partitions.timezone} from {since}{offset}"
    return repr(partitions)


def asset_graph_snapshot(defs: dg.Definitions) -> dict[str, object]:
    """Return the parts of the definitions a user sees in the UI, as plain sorted data."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": describe_partitions(node.partitions_def),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "kinds": sorted(node.kinds),
            "backfill_policy": str(node.backfill_policy) if node.backfill_policy else None,
            "pools": sorted(node.pools or []),
            "checks": {
                check.name: {
                    "blocking": graph.get(check).blocking,
                    "partitions": describe_partitions(graph.get(check).partitions_def),
                }
                for check in sorted(graph.get_check_keys_for_assets({key}), key=lambda c: c.name)
            },
        }
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name == "__ASSET_JOB":
            continue
        executable = job.asset_layer.executable_asset_keys if job.asset_layer else []
        selected = sorted(key.to_user_string() for key in executable)
        jobs[job.name] = {"assets": selected, "partitions": describe_partitions(job.partitions_def)}
    schedules = {}
    for unresolved in sorted(defs.schedules or [], key=lambda s: s.name):
        schedule = defs.resolve_schedule_def(unresolved.name)
        schedules[schedule.name] = {
            "cron": schedule.cron_schedule,
            "job": schedule.job_name,
            "timezone": schedule.execution_timezone,
            "default_status": schedule.default_status.value,
        }
    sensors = {}
    for sensor in sorted(defs.sensors or [], key=lambda s: s.name):
        targets = sensor.asset_selection.resolve(graph) if sensor.asset_selection else []
        sensors[sensor.name] = {
            "default_status": sensor.default_status.value,
            "targets": sorted(key.to_user_string() for key in targets),
        }
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_the_demo_asset_graph_matches_its_snapshot(snapshot):
    from definitions import defs

    assert asset_graph_snapshot(defs) == snapshot
