"""The answer of an online read: feature columns in request order with a status per value."""

from datetime import timedelta

import polars as pl

from resources.online_encoding import EPOCH

PRESENT = "present"
NOT_FOUND = "not_found"
EXPIRED = "expired"
TIMESTAMP_SUFFIX = "__event_timestamp"
AGE_SUFFIX = "__age_seconds"


class OnlineResponse:
    """Values of an online read as columns in request order, with a status per feature value.

    `read_at_us` is the instant the values are for (µs since the epoch): the ages of values are measured from it.
    """

    def __init__(
        self,
        columns: dict[str, list[object]],
        statuses: dict[str, list[str]],
        dtypes: dict[str, pl.DataType],
        read_at_us: int | None = None,
    ) -> None:
        self.columns = columns
        self.statuses = statuses
        self.dtypes = dtypes
        self.read_at_us = read_at_us

    def __repr__(self) -> str:
        rows = len(next(iter(self.columns.values()), []))
        return f"OnlineResponse({rows} rows, columns={list(self.columns)})"

    def ages(self) -> dict[str, list[float | None]]:
        """Return `<view>__age_seconds` per view read with its event times: seconds from each value's event time."""
        stamps = {name: values for name, values in self.columns.items() if name.endswith(TIMESTAMP_SUFFIX)}
        if not stamps or self.read_at_us is None:
            raise ValueError("ages are measured from event times: read with include_timestamps=True")
        read_at = EPOCH + timedelta(microseconds=self.read_at_us)
        return {
            name.removesuffix(TIMESTAMP_SUFFIX) + AGE_SUFFIX: [
                None if stamp is None else (read_at - stamp).total_seconds() for stamp in values
            ]
            for name, values in stamps.items()
        }

    def to_dict(self, *, include_statuses: bool = False, include_ages: bool = False) -> dict[str, list[object]]:
        """Return join keys, features and requested timestamps as lists, plus statuses and ages on request."""
        columns: dict[str, list[object]] = dict(self.columns)
        if include_ages:
            columns.update(self.ages())
        if include_statuses:
            columns.update({f"{name}__status": values for name, values in self.statuses.items()})
        return columns

    def to_polars(self, *, include_statuses: bool = False, include_ages: bool = False) -> pl.DataFrame:
        """Return the response as a frame with the declared dtypes (statuses as String, ages as Float64 columns)."""
        columns = self.to_dict(include_statuses=include_statuses, include_ages=include_ages)
        return pl.DataFrame(
            [
                pl.Series(
                    name,
                    values,
                    dtype=pl.Float64() if name.endswith(AGE_SUFFIX) else self.dtypes.get(name, pl.String()),
                )
                for name, values in columns.items()
            ]
        )
