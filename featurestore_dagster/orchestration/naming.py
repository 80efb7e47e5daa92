"""Names a person reads in the Dagster UI: a cron schedule in words (``weekdays at 22:00``)
and the job and schedule names made from them (``rebuild_weekdays_at_22_00``)."""

from __future__ import annotations

import re

_DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
_DAY_NUMBERS = {name[:3]: i for i, name in enumerate(_DAYS)}
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def describe_cron(cron: str) -> str:
    """A cron expression in words; the expression itself when it has no short description.

    Example:
        >>> describe_cron("0 22 * * 1-5")
        'weekdays at 22:00'
        >>> describe_cron("*/15 * * * *")
        'every 15 minutes'
    """
    text = _MACROS.get(cron.strip(), cron.strip())
    fields = text.split()
    if len(fields) != 5:
        return cron
    minute, hour, day, month, weekday = fields
    if month != "*" or (day != "*" and weekday != "*"):
        return cron
    days = _days(weekday)
    if days is None:
        return cron
    if day != "*":
        if not day.isdigit():
            return cron
        days = f"monthly on day {int(day)}"
    if minute.isdigit() and hour.isdigit():
        return f"{days} at {int(hour):02d}:{int(minute):02d}"
    if minute.isdigit() and hour == "*":
        return f"hourly at minute {int(minute)}" + ("" if days == "daily" else f", {days}")
    step = re.fullmatch(r"\*/(\d+)", minute)
    if step and hour == "*":
        return f"every {int(step.group(1))} minutes" + ("" if days == "daily" else f", {days}")
    return cron


def _days(weekday: str) -> str | None:
    if weekday in {"*", "?"}:
        return "daily"
    numbers = []
    for part in weekday.lower().split(","):
        bounds = [_day_number(b) for b in part.split("-")]
        if None in bounds or len(bounds) > 2:
            return None
        low, high = bounds[0], bounds[-1]
        numbers.extend(range(low, high + 1) if low <= high else [])
    days = sorted({n % 7 for n in numbers})
    if days == [1, 2, 3, 4, 5]:
        return "weekdays"
    if days == [0, 6]:
        return "weekends"
    if not days:
        return None
    return " and ".join(_DAYS[d] + "s" for d in days)


def _day_number(text: str) -> int | None:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    return _DAY_NUMBERS.get(text[:3]) if len(text) >= 3 else None


def cron_slug(cron: str) -> str:
    """``describe_cron`` as a Dagster name (``^[A-Za-z0-9_]+$``): ``weekdays_at_22_00``."""
    slug = re.sub(r"[^a-z0-9]+", "_", describe_cron(cron).lower()).strip("_")
    return slug or "cron"


def schedule_names(crons: list[str]) -> dict[str, str]:
    """Cron -> a unique slug; two crons with the same words get ``_2``, ``_3``."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for cron in sorted(crons):
        base = slug = cron_slug(cron)
        index = 2
        while slug in used:
            slug, index = f"{base}_{index}", index + 1
        used.add(slug)
        names[cron] = slug
    return names
