"""The Pandera (polars backend) schema of a feature view and the validation of one partition against it."""

from dataclasses import dataclass

import pandera.polars as pa
import polars as pl
from dagster import MetadataValue
from pandera.errors import SchemaError, SchemaErrors

from feature_assets.language.feature_view import FeatureView
from feature_assets.language.field import Field
from feature_assets.quality.check_outcome import CheckOutcome

SAMPLE_SIZE = 20


def pandera_schema(view: FeatureView) -> pa.DataFrameSchema:
    """Return the view's Pandera schema: dtypes, nullability, ranges, allowed values, unique row identity.

    A row's identity is (join keys, event_timestamp, created_timestamp): a correction shares the keys and event time
    of the row it corrects and has a later created time; two rows of one identity with different values conflict.
    """
    columns: dict[str, pa.Column] = {
        key: pa.Column(dtype, nullable=False, description=f"join key of {view.name}")
        for key, dtype in view.key_dtypes.items()
    }
    for name in ("event_timestamp", "created_timestamp"):
        columns[name] = pa.Column(pl.Datetime("us", "UTC"), nullable=False)
    for field in view.schema:
        columns[field.name] = pa.Column(
            field.dtype, checks=_field_checks(field), nullable=field.nullable, description=field.description or None
        )
    return pa.DataFrameSchema(
        columns,
        unique=[*view.join_keys, "event_timestamp", "created_timestamp"],
        strict=True,
        name=view.name,
    )


def _field_checks(field: Field) -> list[pa.Check]:
    checks = []
    if field.min_value is not None:
        checks.append(pa.Check.ge(field.min_value))
    if field.max_value is not None:
        checks.append(pa.Check.le(field.max_value))
    if field.allowed_values is not None:
        checks.append(pa.Check.isin(list(field.allowed_values)))
    return checks


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one partition: failing rows and every failure as (column, check, value, row)."""

    passed: bool
    rows: int
    failing_rows: int
    failures: int
    sample: pl.DataFrame

    def failures_by_check(self) -> dict[str, int]:
        """Return how many failures each (column, check) pair had."""
        counts = self.sample.group_by("column", "check").agg(pl.len().alias("count")).sort("column", "check")
        return {f"{column}: {check}": count for column, check, count in counts.iter_rows()}


def validate_partition(view: FeatureView, frame: pl.DataFrame) -> ValidationReport:
    """Validate `frame` against the view's schema, collecting every failure instead of stopping at the first."""
    try:
        pandera_schema(view).validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = _failure_table(errors.failure_cases)
    except SchemaError as error:
        cases = _failure_table(error.failure_cases) if error.failure_cases is not None else _single_failure(error)
    else:
        return ValidationReport(True, frame.height, 0, 0, _failure_table(None))
    failing_rows = cases.filter(pl.col("row").is_not_null())["row"].n_unique()
    whole_column = cases.filter(pl.col("row").is_null()).height
    return ValidationReport(
        passed=False,
        rows=frame.height,
        failing_rows=failing_rows if failing_rows else (frame.height if whole_column else 0),
        failures=cases.height,
        sample=cases,
    )


def _failure_table(failure_cases: object) -> pl.DataFrame:
    schema = {"column": pl.String, "check": pl.String, "value": pl.String, "row": pl.Int64}
    if not isinstance(failure_cases, pl.DataFrame) or failure_cases.is_empty():
        return pl.DataFrame(schema=schema)
    return failure_cases.select(
        pl.when(pl.col("schema_context") == "DataFrameSchema")
        .then(pl.lit("<frame>"))
        .otherwise(pl.col("column").cast(pl.String))
        .alias("column"),
        pl.col("check").cast(pl.String),
        pl.col("failure_case").cast(pl.String).alias("value"),
        pl.col("index").cast(pl.Int64).alias("row"),
    ).sort("row", "column", nulls_last=True)


def _single_failure(error: SchemaError) -> pl.DataFrame:
    return pl.DataFrame(
        {"column": ["<frame>"], "check": [str(error.check or "schema")], "value": [str(error)[:200]], "row": [None]},
        schema={"column": pl.String, "check": pl.String, "value": pl.String, "row": pl.Int64},
    )


def schema_outcome(report: ValidationReport, quarantine_path: str | None = None) -> CheckOutcome:
    """Return the blocking schema check's outcome with the failing rows' sample (and quarantine path) as metadata."""
    metadata: dict[str, object] = {"rows": report.rows, "failing_rows": report.failing_rows}
    if report.passed:
        return CheckOutcome(True, f"all {report.rows} rows match the schema", metadata)
    if quarantine_path is not None:
        metadata["quarantine_path"] = MetadataValue.path(quarantine_path)
    metadata["failures"] = report.failures
    metadata["failures_by_check"] = MetadataValue.json(report.failures_by_check())
    metadata["failing_rows_sample"] = MetadataValue.md(_markdown_table(report))
    return CheckOutcome(False, f"{report.failing_rows} of {report.rows} rows fail the schema", metadata)


def _markdown_table(report: ValidationReport) -> str:
    lines = ["| row | column | check | value |", "|---|---|---|---|"]
    for row in report.sample.head(SAMPLE_SIZE).iter_rows(named=True):
        lines.append(f"| {row['row']} | {row['column']} | {row['check']} | {row['value']} |")
    return "\n".join(lines)
