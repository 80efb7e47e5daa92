"""``partitions: {type, start, lookback}`` -> Dagster time partitions, and back to windows.

Each distinct partitioning is one shared ``TimeWindowPartitionsDefinition`` (daily, weekly
from Monday, monthly), so features with the same one build in the same multi-asset. A range of
partitions runs as one run (single-run backfill policy): the build gets the whole window.
"""

from __future__ import annotations

import functools

import dagster as dg

from featurestore_dagster.build.partitions import BuildWindow
from featurestore_dagster.definitions.models import FeatureDefinition, Partitions, PartitionType
from featurestore_dagster.errors import PartitionError


@functools.cache
def partitions_definition(spec: Partitions) -> dg.TimeWindowPartitionsDefinition:
    """The Dagster partitions of ``spec`` (one object per distinct spec)."""
    start = spec.start.isoformat()
    if spec.type == PartitionType.DAILY:
        return dg.DailyPartitionsDefinition(start_date=start)
    if spec.type == PartitionType.WEEKLY:
        return dg.WeeklyPartitionsDefinition(start_date=start, day_offset=1)
    return dg.MonthlyPartitionsDefinition(start_date=start)


def run_window(context: dg.AssetExecutionContext) -> BuildWindow | None:
    """The window of a partitioned run (a range run: the whole range); None otherwise."""
    if not context.has_partition_key and not context.has_partition_key_range:
        return None
    window = context.partition_time_window
    return BuildWindow(window.start.date(), window.end.date())


def partition_range(
    definition: FeatureDefinition, first: str, last: str | None = None
) -> dg.PartitionKeyRange:
    """Validate partition keys of ``definition`` for the command line.

    Raises:
        PartitionError: the feature is not partitioned, a key is not one of its partitions
            (wrong format, before ``start`` or not complete yet), or the range is reversed.
    """
    name = definition.feature_name
    if definition.partitions is None:
        raise PartitionError(f"feature '{name}' is not partitioned (it has no 'partitions')")
    partitions = partitions_definition(definition.partitions)
    keys = partitions.get_partition_keys()
    if not keys:
        raise PartitionError(f"feature '{name}' has no complete partition yet")
    for key in (first, last) if last is not None else (first,):
        if not partitions.has_partition_key(key):
            raise PartitionError(
                f"'{key}' is not a partition of feature '{name}': its"
                f" {definition.partitions.type.value} partitions run from {keys[0]} to {keys[-1]}"
            )
    last = last or first
    if last < first:
        raise PartitionError(f"partition range {first}...{last} of '{name}' is reversed")
    return dg.PartitionKeyRange(first, last)


def parse_partition_range(text: str) -> tuple[str, str]:
    """``2024-02-01...2024-02-29`` -> its two keys."""
    first, sep, last = text.partition("...")
    if not sep or not first.strip() or not last.strip():
        raise PartitionError(f"'{text}' is not a partition range: write FIRST...LAST")
    return first.strip(), last.strip()


def full_range(definition: FeatureDefinition) -> dg.PartitionKeyRange | None:
    """Every complete partition of ``definition`` (None when there is none yet)."""
    assert definition.partitions is not None
    keys = partitions_definition(definition.partitions).get_partition_keys()
    return dg.PartitionKeyRange(keys[0], keys[-1]) if keys else None
