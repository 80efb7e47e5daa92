"""Time windows of partitioned features: what a partition run reads, computes and replaces.

A partition (or a range of partitions, built in one run) is a half-open window
``[start, end)`` of the feature's timestamp column. Its build:

- substitutes ``{{ partition_start }}`` / ``{{ partition_end }}`` in the SQL as DATE literals
  (python transformations get ``partition_start`` / ``partition_end`` as keyword arguments);
- reads each upstream feature only from ``start - lookback`` to ``end``: the references to
  upstream tables are rewritten into filtered subqueries (found by parsing, like every other
  reference), so window functions get their warm-up rows and nothing more;
- keeps only the rows inside the window, which the publish then swaps for the live table's rows
  of that window in one lake transaction.

Everything here is pure SQL text building.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from featurestore_dagster.definitions.models import FeatureDefinition
from featurestore_dagster.definitions.sql import parse_select, quote_identifier


@dataclass(frozen=True)
class BuildWindow:
    """``[start, end)`` of a partition run (dates: every partition type is day-aligned)."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty window [{self.start}, {self.end})")

    @property
    def label(self) -> str:
        """``2024-02-01...2024-02-29``: the first and last day the window holds."""
        last = self.end - dt.timedelta(days=1)
        return str(self.start) if last == self.start else f"{self.start}...{last}"

    def placeholders(self) -> dict[str, str]:
        return {"partition_start": _date(self.start), "partition_end": _date(self.end)}

    def condition(self, column: str, *, lookback_days: int = 0, qualifier: str = "") -> str:
        """``column`` (of table alias ``qualifier``) inside the window, its lower end moved
        back by ``lookback_days``."""
        start = self.start - dt.timedelta(days=lookback_days)
        quoted = quote_identifier(column)
        if qualifier:
            quoted = f"{qualifier}.{quoted}"
        return f"{quoted} >= {_date(start)} AND {quoted} < {_date(self.end)}"


def _date(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def sample_window(definition: FeatureDefinition) -> BuildWindow:
    """A window to render a partitioned feature's SQL with when no run is at hand (checking
    references and binding at load time)."""
    assert definition.partitions is not None
    start = definition.partitions.start
    return BuildWindow(start, start + dt.timedelta(days=1))


def windowed_sql(
    sql: str,
    definition: FeatureDefinition,
    window: BuildWindow,
    upstream_time_columns: Mapping[str, str],
) -> str:
    """``sql`` computing only ``window`` of ``definition``.

    Args:
        sql: the rendered SELECT (placeholders already substituted).
        upstream_time_columns: each upstream feature's table (``schema.table``) -> its
            timestamp column; reads of those tables are limited to the window plus lookback.
    """
    lookback = definition.partitions.lookback_days if definition.partitions else 0
    tables = {name.lower(): column for name, column in upstream_time_columns.items()}
    tree = parse_select(sql)
    for table in list(tree.find_all(exp.Table)):
        if not table.db or table.catalog:
            continue
        name = f"{table.db}.{table.name}".lower()
        column = tables.get(name)
        if column is None:
            continue
        alias = table.alias or table.name
        reads = (
            f"SELECT * FROM {quote_identifier(table.db)}.{quote_identifier(table.name)}"
            f" WHERE {window.condition(column, lookback_days=lookback)}"
        )
        subquery = exp.Subquery(
            this=parse_select(reads), alias=exp.TableAlias(this=exp.to_identifier(alias))
        )
        table.replace(subquery)
    inner = tree.sql(dialect="duckdb")
    return (
        f"SELECT * FROM ({inner}) AS __partition_window"
        f" WHERE {window.condition(definition.timestamp_column)}"
    )


def in_time_order(definition: FeatureDefinition, select: str) -> str:
    """``select`` sorted by the timestamp column when it fills a partitioned feature's live
    table: each Parquet row group then spans a short stretch of time, so the reads and the
    DELETE of a partition run skip the others by their min/max statistics (measured at 5
    years x 2,000 symbols: the one-day DELETE 15 -> 8 ms). Unpartitioned: ``select``."""
    if definition.partitions is None:
        return select
    ts = quote_identifier(definition.timestamp_column)
    return f"SELECT * FROM ({select}) AS __rows ORDER BY {ts}"


def judged_at(now: dt.datetime | None, window: BuildWindow | None) -> dt.datetime | None:
    """When freshness is judged: a past window at its own end (a backfill of 2020 is not
    stale data), the latest window now."""
    if window is None:
        return now
    end = dt.datetime.combine(window.end, dt.datetime.min.time(), tzinfo=dt.UTC)
    current = now if now is not None else dt.datetime.now(dt.UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=dt.UTC)
    return min(current, end)
