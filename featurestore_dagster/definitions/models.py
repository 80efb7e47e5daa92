"""Pydantic models of a feature definition. Declared fields only, frozen.

A definition is plain data: it knows nothing of files, Dagster or the registry. The loader
attaches where it came from; the graph checks how definitions relate to each other.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

import semver
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from featurestore_dagster.definitions.scheduling import (  # noqa: F401 (re-exported)
    PARTITION_PLACEHOLDERS,
    Automation,
    Partitions,
    PartitionType,
)

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Dagster tag values/keys and check names accept only these characters (measured on Dagster 1.13).
TAG_PATTERN = r"^[A-Za-z0-9_.-]{1,63}$"
CHECK_NAME_PATTERN = r"^[A-Za-z0-9_]+$"
TEAM_PATTERN = r"^[A-Za-z0-9_.-]{1,63}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$"
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Tables the store writes beside each feature's live table: the build's staging table
# ``<schema>.__staging_<table>``, rejected rows ``_rejected.<feature>``, latest values
# ``_latest.<feature>``. No definition may name a table there (it would be overwritten or
# dropped by another feature's build), nor in DuckDB's own catalogs.
STAGING_PREFIX = "__staging_"
REJECTED_SCHEMA = "_rejected"
LATEST_SCHEMA = "_latest"
RESERVED_SCHEMAS = frozenset(
    {"_staging", REJECTED_SCHEMA, LATEST_SCHEMA, "information_schema", "pg_catalog"}
)


class FeatureType(StrEnum):
    TECHNICAL_INDICATOR = "technical_indicator"
    FUNDAMENTAL = "fundamental"
    SENTIMENT = "sentiment"
    MACRO_ECONOMIC = "macro_economic"
    DERIVED = "derived"
    RAW = "raw"


class DataType(StrEnum):
    FLOAT = "float"
    INTEGER = "integer"
    STRING = "string"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"


class FeatureStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"


class TransformationType(StrEnum):
    SQL = "sql"
    PYTHON = "python"


class RuleType(StrEnum):
    RANGE = "range"
    NULL_CHECK = "null_check"
    OUTLIER = "outlier"
    UNIQUE = "unique"
    ALLOWED_VALUES = "allowed_values"
    ROW_COUNT = "row_count"
    FRESHNESS = "freshness"
    CUSTOM_SQL = "custom_sql"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- validation rule parameters, one model per rule type ------------------------------------


class RangeParameters(_Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RangeParameters:
        if self.min is None and self.max is None:
            raise ValueError("range needs at least one of 'min' and 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min ({self.min:g}) is greater than max ({self.max:g})")
        return self


class NullCheckParameters(_Strict):
    max_null_fraction: float = Field(0.0, ge=0.0, le=1.0)


class OutlierParameters(_Strict):
    method: Literal["zscore", "iqr"] = "zscore"
    threshold: float | None = Field(None, gt=0)
    max_outlier_fraction: float = Field(0.001, ge=0.0, le=1.0)

    @property
    def effective_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        return 4.0 if self.method == "zscore" else 3.0


class UniqueParameters(_Strict):
    columns: list[str] | None = Field(None, min_length=1)

    @field_validator("columns")
    @classmethod
    def _identifiers(cls, value: list[str] | None) -> list[str] | None:
        for column in value or []:
            if not re.match(IDENTIFIER_PATTERN, column):
                raise ValueError(f"'{column}' is not a column name")
        return value


class AllowedValuesParameters(_Strict):
    values: list[str | int | float | bool] = Field(min_length=1)


class RowCountParameters(_Strict):
    min: int = Field(1, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> RowCountParameters:
        if self.max is not None and self.min > self.max:
            raise ValueError(f"row_count min ({self.min}) is greater than max ({self.max})")
        return self


class FreshnessParameters(_Strict):
    max_age: str

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not re.match(DURATION_PATTERN, str(value)):
            raise ValueError(f"'{value}' is not a duration like '3d', '36h', '90m', '2w'")
        return value

    @property
    def max_age_seconds(self) -> float:
        return parse_duration(self.max_age)


class CustomSqlParameters(_Strict):
    sql: str = Field(min_length=1)
    max_failing_rows: int = Field(0, ge=0)

    @field_validator("sql")
    @classmethod
    def _has_table(cls, value: str) -> str:
        if "{{ table }}" not in value and "{{table}}" not in value:
            raise ValueError("custom_sql 'sql' must read the feature table as {{ table }}")
        return value


RULE_PARAMETERS: dict[RuleType, type[_Strict]] = {
    RuleType.RANGE: RangeParameters,
    RuleType.NULL_CHECK: NullCheckParameters,
    RuleType.OUTLIER: OutlierParameters,
    RuleType.UNIQUE: UniqueParameters,
    RuleType.ALLOWED_VALUES: AllowedValuesParameters,
    RuleType.ROW_COUNT: RowCountParameters,
    RuleType.FRESHNESS: FreshnessParameters,
    RuleType.CUSTOM_SQL: CustomSqlParameters,
}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``"3d"`` or ``"36h"``."""
    match = re.match(DURATION_PATTERN, text)
    if not match:
        raise ValueError(f"'{text}' is not a duration")
    return float(match.group(1)) * _DURATION_SECONDS[match.group(2)]


class ValidationRule(_Strict):
    """One validation rule; it compiles into one Dagster asset check."""

    rule_type: RuleType
    parameters: dict[str, Any] = Field(default_factory=dict)
    is_blocking: bool = False
    name: str | None = Field(None, pattern=CHECK_NAME_PATTERN, max_length=63)

    @field_validator("parameters")
    @classmethod
    def _typed_parameters(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        rule_type = info.data.get("rule_type")
        if rule_type is None:  # rule_type itself is invalid; that error is reported instead
            return value
        try:
            RULE_PARAMETERS[rule_type].model_validate(value)
        except ValidationError as error:
            problems = []
            for item in error.errors():
                where = ".".join(str(part) for part in item["loc"])
                message = item["msg"].removeprefix("Value error, ")
                if item["type"] == "extra_forbidden":
                    allowed = ", ".join(RULE_PARAMETERS[rule_type].model_fields)
                    message = f"unknown parameter for {rule_type.value} (allowed: {allowed})"
                problems.append(f"{where}: {message}" if where else message)
            raise ValueError("; ".join(problems)) from None
        return value

    @property
    def typed_parameters(self) -> Any:
        """The parameters parsed into the model of this rule type (defaults filled in)."""
        return RULE_PARAMETERS[self.rule_type].model_validate(self.parameters)


class Transformation(_Strict):
    transformation_type: TransformationType = TransformationType.SQL
    code: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _python_reference(self) -> Transformation:
        if self.transformation_type == TransformationType.PYTHON:
            if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", self.code.strip()):
                raise ValueError(
                    "a python transformation's code must be an importable 'module.path:function'"
                    " reference; inline code is refused and never executed"
                )
        return self

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if not re.match(IDENTIFIER_PATTERN, key):
                raise ValueError(f"parameter name '{key}' is not an identifier")
            if not isinstance(item, str | int | float | bool | type(None) | list | dict):
                raise ValueError(f"parameter '{key}' has an unsupported type")
        return value


class FeatureDefinition(_Strict):
    """One feature, exactly as declared in a definition file."""

    feature_name: str = Field(pattern=NAME_PATTERN)
    version: str = "1.0.0"
    feature_type: FeatureType
    data_type: DataType
    status: FeatureStatus = FeatureStatus.DRAFT
    description: str = ""
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    entity_columns: list[str] = Field(default_factory=list)
    timestamp_column: str = "date"
    upstream_features: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    transformation: Transformation
    validation_rules: list[ValidationRule] = Field(default_factory=list)
    schedule: str | None = None
    automation: Automation | None = None
    partitions: Partitions | None = None
    duckdb_table: str | None = None
    changelog: str | None = None
    breaking_changes: bool = False
    # Consumers (training sets, latest values): values older than ``ttl`` are NULL.
    ttl: str | None = None
    # Whether the transformation can see later rows. Declared for python; for SQL found by
    # parsing (definitions/leakage.py), and ``false`` there must agree with the SQL.
    lookahead: bool | None = None

    _path: Any = PrivateAttr(default=None)

    @field_validator("version", mode="before")
    @classmethod
    def _semver(cls, value: Any) -> str:
        text = str(value).strip()
        try:
            semver.Version.parse(text)
        except (ValueError, TypeError):
            raise ValueError(f"'{text}' is not a semantic version (MAJOR.MINOR.PATCH)") from None
        return text

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not (re.match(EMAIL_PATTERN, value) or re.match(TEAM_PATTERN, value)):
            raise ValueError(
                f"'{value}' is neither an e-mail address nor a team name"
                " (letters, digits, '_', '.', '-')"
            )
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not re.match(TAG_PATTERN, str(tag)):
                raise ValueError(
                    f"tag '{tag}' cannot be stored as a Dagster tag: use 1-63 letters, digits,"
                    " '_', '.' or '-'"
                )
        if len(set(value)) != len(value):
            raise ValueError("tags are repeated")
        return value

    @field_validator("entity_columns")
    @classmethod
    def _entities(cls, value: list[str]) -> list[str]:
        for column in value:
            if not re.match(IDENTIFIER_PATTERN, column):
                raise ValueError(f"'{column}' is not a column name")
        if len(set(value)) != len(value):
            raise ValueError("entity columns are repeated")
        return value

    @field_validator("timestamp_column")
    @classmethod
    def _timestamp(cls, value: str) -> str:
        if not re.match(IDENTIFIER_PATTERN, value):
            raise ValueError(f"'{value}' is not a column name")
        return value

    @field_validator("upstream_features")
    @classmethod
    def _upstreams(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"'{name}' is not a feature name")
        if len(set(value)) != len(value):
            raise ValueError("upstream features are repeated")
        return value

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        for source in value:
            if not (is_table_source(source) or is_file_source(source)):
                raise ValueError(
                    f"source '{source}' is neither a 'schema.table' name nor a"
                    " .parquet/.csv file path or glob"
                )
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        problem = None if value is None else cron_problem(value)
        if problem:
            raise ValueError(f"'{value}' is not a valid cron expression: {problem}")
        return value

    @field_validator("automation")
    @classmethod
    def _cron_automation(cls, value: Automation | None, info: ValidationInfo):
        # `schedule` is declared before `automation`, so it is validated (or failed) already.
        if value == Automation.ON_CRON and not info.data.get("schedule"):
            raise ValueError(
                "automation 'on_cron' runs on the feature's schedule: add a 'schedule' cron"
                " (or use automation 'eager')"
            )
        return value

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        if not re.match(DURATION_PATTERN, text) or parse_duration(text) <= 0:
            raise ValueError(f"'{text}' is not a positive duration like '30d', '36h', '90m', '2w'")
        return text

    @field_validator("duckdb_table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        if value is not None and not is_table_source(value):
            raise ValueError(f"'{value}' is not a 'schema.table' name")
        return value

    @model_validator(mode="after")
    def _columns_distinct(self, info: ValidationInfo) -> FeatureDefinition:
        names = [*self.entity_columns, self.timestamp_column, self.feature_name]
        if len(set(names)) != len(names):
            raise ValueError(
                "entity columns, timestamp column and the feature's value column"
                f" ('{self.feature_name}') must all differ"
            )
        return self

    # --- derived views --------------------------------------------------------------------

    @property
    def table_name(self) -> str:
        """The live DuckDB table, ``schema.table``."""
        return self.duckdb_table or f"features.{self.feature_name}"

    @property
    def key_columns(self) -> list[str]:
        return [*self.entity_columns, self.timestamp_column]

    @property
    def value_column(self) -> str:
        return self.feature_name

    @property
    def ttl_seconds(self) -> float | None:
        """``ttl`` in seconds (None: no limit)."""
        return parse_duration(self.ttl) if self.ttl else None

    @property
    def lookahead_reasons(self) -> tuple[str, ...]:
        """Why this feature can see the future (SQL parsed; python as declared)."""
        if self.transformation.transformation_type == TransformationType.PYTHON:
            return ("declared lookahead: true",) if self.lookahead else ()
        from featurestore_dagster.definitions.leakage import definition_lookahead

        reasons = definition_lookahead(self)
        if not reasons and self.lookahead:
            return ("declared lookahead: true",)
        return reasons

    @property
    def is_lookahead(self) -> bool:
        """True when a training set must refuse this feature (unless allowed explicitly)."""
        return bool(self.lookahead_reasons)

    @property
    def table_sources(self) -> list[str]:
        return [s for s in self.sources if is_table_source(s)]

    @property
    def file_sources(self) -> list[str]:
        return [s for s in self.sources if not is_table_source(s)]

    @property
    def path(self) -> Any:
        """The file this definition was loaded from, if any."""
        return self._path

    def with_path(self, path: Any) -> FeatureDefinition:
        self._path = path
        return self

    def to_payload(self) -> dict[str, Any]:
        """The definition as plain JSON-able data, without defaulted empty optionals."""
        return self.model_dump(mode="json", exclude_none=True)


def is_table_source(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$", text))


def is_file_source(text: str) -> bool:
    lowered = text.lower()
    return any(lowered.endswith(ext) for ext in (".parquet", ".csv", ".csv.gz", ".tsv"))


_CRON_FIELD = re.compile(r"^(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?$")
_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_CRON_NAMES = {
    3: {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    4: {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}


_CRON_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")


def is_valid_cron(expression: str) -> bool:
    """Whether ``expression`` is a standard 5-field cron string (also ``@daily`` and friends)."""
    return cron_problem(expression) is None


def cron_problem(expression: str) -> str | None:
    """What is wrong with a cron string, in words (None when it is valid).

    Example:
        >>> cron_problem("0 25 * * 1-5")
        'hour 25 is out of range (0-23)'
    """
    text = expression.strip()
    if text in {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}:
        return None
    fields = text.split()
    if len(fields) != 5:
        return (
            f"it has {len(fields)} field(s); a cron expression has 5 (minute hour day-of-month"
            " month day-of-week, e.g. '0 22 * * 1-5')"
        )
    for index, field in enumerate(fields):
        low, high = _CRON_RANGES[index]
        what = _CRON_FIELD_NAMES[index]
        for part in field.split(","):
            if not _CRON_FIELD.match(part):
                return f"{what} field '{field}' is not understood"
            base = part.split("/")[0]
            if base in {"*", "?"}:
                continue
            for bound in base.split("-"):
                if bound.isdigit():
                    if not low <= int(bound) <= high:
                        return f"{what} {bound} is out of range ({low}-{high})"
                elif bound.lower() not in _CRON_NAMES.get(index, {}):
                    return f"{what} '{bound}' is not a number or a known name"
    return None
