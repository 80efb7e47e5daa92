"""``automation: eager | on_cron`` -> Dagster's declarative automation (``AutomationCondition``).

Both conditions are combined with ``all_deps_blocking_checks_passed()``: Dagster's own
``eager()`` and ``on_cron()`` look at materializations only, so an upstream feature whose
latest blocking check failed (a rejected build keeps its last good table, but its check result
is failed) would otherwise still launch its downstream. With the gate, nothing is launched past
a failed blocking check until that check passes again.

``eager`` only ever requests the latest time partition of a partitioned feature (Dagster's
``eager()`` is limited to it); older partitions are backfilled from the UI or with
``featurestore materialize NAME --partition-range A...B``.

The conditions are evaluated by one automation sensor, ``featurestore_automation``, running by
default like the schedules. ``draft`` features are never automated.
"""

from __future__ import annotations

import dagster as dg

from featurestore_dagster.definitions.models import Automation, FeatureDefinition, FeatureStatus

SENSOR_NAME = "featurestore_automation"


def automation_condition(definition: FeatureDefinition) -> dg.AutomationCondition | None:
    """The definition's ``AutomationCondition`` (None without ``automation`` or for drafts).

    Example:
        >>> automation_condition(rsi).get_label()  # automation: eager
        'eager_unless_blocking_check_failed'
    """
    if definition.automation is None or definition.status == FeatureStatus.DRAFT:
        return None
    if definition.automation == Automation.EAGER:
        base = dg.AutomationCondition.eager()
    else:
        base = dg.AutomationCondition.on_cron(definition.schedule)
    gated = base & dg.AutomationCondition.all_deps_blocking_checks_passed()
    return gated.with_label(f"{definition.automation.value}_unless_blocking_check_failed")


def automation_sensor(keys: list[dg.AssetKey]) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the features' conditions (running by default)."""
    return dg.AutomationConditionSensorDefinition(
        SENSOR_NAME,
        target=dg.AssetSelection.assets(*keys),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Declarative automation of the features with `automation: eager | on_cron`.",
    )
