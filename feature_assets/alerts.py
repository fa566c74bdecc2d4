"""The quality alert sensor: one alert per failed check evaluation or failed run, sent through the alert webhook."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import (
    AssetCheckEvaluation,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    EventLogEntry,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._utils.error import SerializableErrorInfo

from resources.alert_webhook import AlertWebhook

ALERT_SENSOR = "quality_alerts"
BATCH = 500
MAX_PENDING = 500
SUMMARY_LENGTH = 300

Alert = dict[str, str | None]


@dataclass
class AlertCursor:
    """The sensor's state: the last event-log storage id read and the alerts not delivered yet, oldest first."""

    after: int = -1
    pending: list[Alert] = field(default_factory=list)

    @classmethod
    def parse(cls, cursor: str | None) -> "AlertCursor":
        """Return the state serialized in `cursor` (a fresh state when there is none)."""
        if not cursor:
            return cls()
        state = json.loads(cursor)
        return cls(after=int(state["after"]), pending=list(state["pending"]))

    def serialize(self) -> str:
        """Return the state as the sensor's JSON cursor."""
        return json.dumps({"after": self.after, "pending": self.pending}, sort_keys=True)


def build_alert_sensor(minimum_interval_seconds: int = 30, max_pending: int = MAX_PENDING) -> SensorDefinition:
    """Return the sensor alerting once per failed check evaluation and per failed run not due to a blocking check."""

    @sensor(
        name=ALERT_SENSOR,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Sends one alert per failed asset check evaluation (ERROR or WARN) and per failed run not already "
            "explained by a blocking check, to the alert_webhook resource; undelivered alerts are retried."
        ),
    )
    def quality_alerts(context: SensorEvaluationContext, alert_webhook: AlertWebhook) -> SensorResult:
        state = AlertCursor.parse(context.cursor)
        alerts, state.after = read_new_alerts(context.instance, state.after)
        for alert in alerts:
            context.log.warning(describe(alert))
        queue = state.pending + alerts
        delivered = 0
        for alert in queue:
            if not alert_webhook.deliver(alert):
                undelivered = len(queue) - delivered
                context.log.warning(
                    f"could not deliver {undelivered} alert(s), retrying next tick: {alert_webhook.last_error}"
                )
                break
            delivered += 1
        state.pending = queue[delivered:]
        if len(state.pending) > max_pending:
            dropped = state.pending[: len(state.pending) - max_pending]
            state.pending = state.pending[-max_pending:]
            context.log.error(
                f"alert queue over {max_pending}: dropped the {len(dropped)} oldest undelivered alert(s), "
                f"from {dropped[0]['timestamp']} to {dropped[-1]['timestamp']}"
            )
        if not queue:
            reason = "no new check or run failures"
        else:
            reason = f"{len(alerts)} new alert(s), {delivered} delivered, {len(state.pending)} queued"
        return SensorResult(skip_reason=SkipReason(reason), cursor=state.serialize())

    return quality_alerts


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
