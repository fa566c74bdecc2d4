"""The answer of an online read: feature columns in request order with a status per value."""

import polars as pl

PRESENT = "present"
NOT_FOUND = "not_found"
EXPIRED = "expired"


class OnlineResponse:
    """Values of an online read as columns in request order, with a status per feature value."""

    def __init__(
        self, columns: dict[str, list[object]], statuses: dict[str, list[str]], dtypes: dict[str, pl.DataType]
    ) -> None:
        self.columns = columns
        self.statuses = statuses
        self.dtypes = dtypes

    def __repr__(self) -> str:
        rows = len(next(iter(self.columns.values()), []))
        return f"OnlineResponse({rows} rows, columns={list(self.columns)})"

    def to_dict(self, *, include_statuses: bool = False) -> dict[str, list[object]]:
        """Return join keys, features and requested timestamps as lists, plus `<feature>__status` on request."""
        if not include_statuses:
            return dict(self.columns)
        return {**self.columns, **{f"{name}__status": values for name, values in self.statuses.items()}}

    def to_polars(self, *, include_statuses: bool = False) -> pl.DataFrame:
        """Return the response as a frame with the declared dtypes (statuses as String columns on request)."""
        return pl.DataFrame(
            [
                pl.Series(name, values, dtype=self.dtypes.get(name, pl.String()))
                for name, values in self.to_dict(include_statuses=include_statuses).items()
            ]
        )
