"""The quality alert sensor: sends each new alert through the alert webhook, queueing what it cannot deliver."""

import json
from dataclasses import dataclass, field

from dagster import DefaultSensorStatus, SensorDefinition, SensorEvaluationContext, SensorResult, SkipReason, sensor

from feature_assets.quality.alerts import Alert, describe, read_new_alerts
from resources.alert_webhook import AlertWebhook

ALERT_SENSOR = "quality_alerts"
MAX_PENDING = 500


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
