"""The demo's calendar: its data and its views cover the days up to yesterday (UTC), with history before them."""

from datetime import UTC, date, datetime, timedelta

DEMO_DAYS = 14
HISTORY_DAYS = 30
"""Days of trips before the first demo day, so every window (the longest is 30 days) is full from day one."""


def demo_days(days: int = DEMO_DAYS, today: date | None = None) -> tuple[date, date]:
    """Return the first and last day of a demo that ends yesterday (UTC), so online values are fresh."""
    last = (today or datetime.now(UTC).date()) - timedelta(days=1)
    return last - timedelta(days=days - 1), last


FIRST_DAY, LAST_DAY = demo_days()
"""The demo's days as of import: the views start on FIRST_DAY, so the UI shows no partition before the data."""
