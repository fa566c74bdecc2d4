"""Quality alerts: one alert per failed check evaluation or failed run, read from the Dagster event log."""

from collections.abc import Mapping
from datetime import UTC, datetime

from dagster import AssetCheckEvaluation, DagsterEventType, DagsterInstance, EventLogEntry
from dagster._utils.error import SerializableErrorInfo

BATCH = 500
SUMMARY_LENGTH = 300

Alert = dict[str, str | None]


def read_new_alerts(instance: DagsterInstance, after: int) -> tuple[list[Alert], int]:
    """Return the alerts for the failures stored after storage id `after`, oldest first, and the new cursor."""
    storage = instance.event_log_storage
    batches = [
        storage.get_logs_for_all_runs_by_log_id(after_cursor=after, dagster_event_type=event_type, limit=BATCH)
        for event_type in (DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.RUN_FAILURE)
    ]
    full = [max(batch) for batch in batches if len(batch) >= BATCH]
    horizon = min(full) if full else max([after, *batches[0], *batches[1]])
    events = sorted((storage_id, entry) for batch in batches for storage_id, entry in batch.items())
    alerts = []
    for storage_id, entry in events:
        if storage_id > horizon:
            break
        evaluation = _evaluation(entry)
        if evaluation is not None:
            if not evaluation.passed:
                alerts.append(check_alert(entry, evaluation))
        elif not _failed_a_blocking_check(instance, entry.run_id):
            alerts.append(run_alert(instance, entry))
    return alerts, horizon


def check_alert(entry: EventLogEntry, evaluation: AssetCheckEvaluation) -> Alert:
    """Return the alert for a failed check evaluation."""
    return {
        "kind": "check_failed",
        "asset": evaluation.asset_key.to_user_string(),
        "partition": evaluation.partition,
        "check": evaluation.check_name,
        "severity": evaluation.severity.value,
        "summary": shorten(evaluation.description or _metadata_summary(evaluation)),
        "run_id": entry.run_id or None,
        "timestamp": _iso(entry.timestamp),
    }


def run_alert(instance: DagsterInstance, entry: EventLogEntry) -> Alert:
    """Return the alert for a failed run: its assets, partition (or range) and first step failure."""
    run = instance.get_run_by_id(entry.run_id)
    assets = sorted(key.to_user_string() for key in (run.asset_selection or ())) if run else []
    tags = run.tags if run else {}
    partition = tags.get("dagster/partition")
    if partition is None and "dagster/asset_partition_range_start" in tags:
        start, end = tags["dagster/asset_partition_range_start"], tags.get("dagster/asset_partition_range_end")
        partition = start if end in (None, start) else f"{start}...{end}"
    return {
        "kind": "run_failed",
        "asset": ", ".join(assets) or None,
        "partition": partition,
        "check": None,
        "severity": "ERROR",
        "summary": shorten(_run_failure_summary(entry)),
        "run_id": entry.run_id,
        "timestamp": _iso(entry.timestamp),
    }


def describe(alert: Mapping[str, str | None]) -> str:
    """Return a one-line description of an alert for the Dagster log."""
    where = " ".join(str(alert[k]) for k in ("asset", "partition") if alert.get(k)) or "(no asset)"
    what = f"check {alert['check']} failed ({alert['severity']})" if alert.get("check") else "run failed"
    return f"{where}: {what}: {alert['summary']} [run {alert['run_id']}]"


def _evaluation(entry: EventLogEntry) -> AssetCheckEvaluation | None:
    data = entry.dagster_event.event_specific_data if entry.dagster_event else None
    return data if isinstance(data, AssetCheckEvaluation) else None


def _failed_a_blocking_check(instance: DagsterInstance, run_id: str) -> bool:
    """Return whether the run recorded a failed blocking check evaluation (alerted on by itself)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    evaluations = (_evaluation(record.event_log_entry) for record in records)
    return any(e is not None and e.blocking and not e.passed for e in evaluations)


def _metadata_summary(evaluation: AssetCheckEvaluation) -> str:
    metadata = evaluation.metadata
    if "failing_rows" in metadata and "rows" in metadata:
        return f"{metadata['failing_rows'].value} of {metadata['rows'].value} rows fail the {evaluation.check_name}"
    return f"check {evaluation.check_name} failed"


def _run_failure_summary(entry: EventLogEntry) -> str:
    event = entry.dagster_event
    data = event.event_specific_data if event else None
    step_failure = getattr(data, "first_step_failure_event", None)
    step_error = getattr(step_failure.event_specific_data, "error", None) if step_failure else None
    if step_failure is not None and step_error is not None:
        return f"step {step_failure.step_key} failed: {_root_cause(step_error)}"
    error = getattr(data, "error", None)
    if error is not None:
        return _root_cause(error)
    return (event.message if event else None) or entry.user_message or "run failed"


def _root_cause(error: SerializableErrorInfo) -> str:
    """Return the innermost cause's message: the user's exception rather than Dagster's wrapper."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def shorten(text: str, limit: int = SUMMARY_LENGTH) -> str:
    """Return `text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
