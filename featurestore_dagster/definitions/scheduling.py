"""When a feature is rebuilt: ``automation`` and time ``partitions`` of a definition."""

from __future__ import annotations

import datetime as dt
import math
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$"
_DAY_SECONDS = {"d": 86400, "w": 604800}


class Automation(StrEnum):
    """How Dagster's declarative automation keeps a feature up to date."""

    EAGER = "eager"  # whenever an upstream feature (or source) is updated
    ON_CRON = "on_cron"  # on each tick of the feature's ``schedule``, once its upstream updated


class PartitionType(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"  # weeks start on Monday
    MONTHLY = "monthly"


# Placeholders a partitioned feature's SQL may use (and python functions get as keywords).
PARTITION_PLACEHOLDERS = ("partition_start", "partition_end")


class Partitions(BaseModel):
    """Time partitions of a feature: each partition is one window of its timestamp column.

    ``lookback`` is how much upstream history before a window its transformation reads
    (window functions need their warm-up rows), in days or weeks: ``60d``, ``8w``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: PartitionType
    start: dt.date
    lookback: str = "0d"

    @field_validator("start", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if isinstance(value, dt.datetime):  # YAML may read a timestamp
            return value.date()
        return value

    @field_validator("lookback")
    @classmethod
    def _lookback(cls, value: str) -> str:
        match = re.match(DURATION_PATTERN, str(value))
        if not match or match.group(2) not in {"d", "w"}:
            raise ValueError(f"lookback '{value}' is not a number of days or weeks ('60d', '8w')")
        return str(value).strip()

    @property
    def key(self) -> tuple[PartitionType, dt.date]:
        """What makes two features partitioned alike (the lookback is each one's own)."""
        return (self.type, self.start)

    @property
    def lookback_days(self) -> int:
        match = re.match(DURATION_PATTERN, self.lookback)
        return math.ceil(float(match.group(1)) * _DAY_SECONDS[match.group(2)] / 86400)
