"""Usage that closes the loop with training sets.

``get_training_set(model=...)`` writes one usage record per feature, with the version the
training set read and its id as ``execution_id`` (or the run that built it, when one is given:
a Dagster run id), in the transaction that stores its manifest.
``record_model_usage(..., training_set_id=...)`` later adds the model's importances to those
same records (or writes them, when the training set was built without ``model``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from featurestore_dagster.errors import TrainingSetError, UsageError
from featurestore_dagster.registry import training_sets as ts_sql
from featurestore_dagster.registry import usage as sql
from featurestore_dagster.usage.models import FeatureUsage
from featurestore_dagster.usage.reports import usage_from_row
from featurestore_dagster.usage.validation import raise_problems, validate_usage


def training_set_usage_rows(
    host, manifest: Mapping[str, Any], *, importances: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Validated usage rows (one per feature) of a training set's model run.

    Raises:
        UsageError: model fields that would be refused (checked before anything is computed).
    """
    correlations = manifest.get("correlations") or {}
    records = []
    for feature in manifest["features"]:
        records.append(
            {
                "feature_name": feature["feature_name"],
                "feature_version": feature["version"],
                "used_by_model": manifest.get("model"),
                "model_version": manifest.get("model_version"),
                "environment": manifest.get("environment"),
                "feature_importance": (importances or {}).get(feature["request"]),
                "correlation_with_target": correlations.get(feature["request"]),
                "usage_timestamp": None,
                "execution_id": execution_of(manifest),
                "execution_duration_ms": None,
            }
        )
    return validate_usage(records, host.graph, now=datetime.now(UTC))


def execution_of(manifest: Mapping[str, Any]) -> str:
    """The ``execution_id`` of a training set's usage records: the run that built it (a
    Dagster run id), else the training set id."""
    return manifest.get("execution_id") or manifest["training_set_id"]


def check_registered(host, rows: list[dict[str, Any]]) -> None:
    """Refuse usage of unregistered features or versions before any work is done."""
    names = {row["feature_name"] for row in rows}
    with host.registry.engine.connect() as conn:
        current = sql.current_versions(conn, names)
        versions = sql.registered_versions(conn, names)
    problems = []
    for row in rows:
        name, version = row["feature_name"], row["feature_version"]
        if name not in current:
            problems.append(
                f"feature '{name}' is not registered; run `featurestore apply` before recording"
                " a model's use of it"
            )
        elif version not in versions.get(name, set()):
            problems.append(
                f"feature '{name}': the training set reads version {version}, which is not a"
                " registered version (an unregistered build); register it with `featurestore"
                " apply` and rebuild, or leave out model=..."
            )
    raise_problems(problems)


def _match(manifest: Mapping[str, Any], names: Iterable[str]) -> tuple[dict[str, dict], list[str]]:
    """Requested names (feature, request text or column) -> manifest feature; unmatched names."""
    index: dict[str, dict] = {}
    for feature in manifest["features"]:
        for key in (feature["request"], feature["column"]):
            index.setdefault(key, feature)
        by_name = [f for f in manifest["features"] if f["feature_name"] == feature["feature_name"]]
        if len(by_name) == 1:
            index.setdefault(feature["feature_name"], feature)
    found, unknown = {}, []
    for name in names:
        if name in index:
            found[name] = index[name]
        else:
            unknown.append(name)
    return found, unknown


def record_training_set_usage(
    host,
    training_set_id: str,
    *,
    used_by_model: str,
    model_version: str,
    environment: str,
    features: Mapping[str, Any] | Iterable[str],
    correlations: Mapping[str, Any] | None = None,
    feature_versions: Mapping[str, str] | None = None,
    execution_id: str | None = None,
    execution_duration_ms: float | None = None,
    usage_timestamp: datetime | None = None,
) -> list[FeatureUsage]:
    """Importances (and correlations) of a model fitted on a stored training set."""
    manifest = ts_sql.training_set_manifest(host.registry.engine, training_set_id)
    if manifest is None:
        raise TrainingSetError(f"no training set with id '{training_set_id}'")
    # The records of a training set's model run carry the execution_id of its manifest (the
    # run that built it, else the training set id), whatever is passed here.
    del execution_id
    importances = dict(features) if isinstance(features, Mapping) else dict.fromkeys(features)
    matched, unknown = _match(manifest, [*importances, *(correlations or {})])
    if unknown:
        columns = ", ".join(f["column"] for f in manifest["features"])
        raise UsageError(
            f"usage refused, nothing written: training set {training_set_id} has no feature(s)"
            f" {', '.join(sorted(set(unknown)))} (it has: {columns})"
        )
    for name, version in (feature_versions or {}).items():
        if name in matched and matched[name]["version"] != version:
            raise UsageError(
                f"usage refused, nothing written: training set {training_set_id} read"
                f" '{name}' at {matched[name]['version']}, not {version}"
            )
    by_request = {matched[n]["request"]: v for n, v in importances.items()}
    corr_by_request = {matched[n]["request"]: v for n, v in (correlations or {}).items()}
    run = {
        **manifest,
        "model": used_by_model,
        "model_version": model_version,
        "environment": environment,
        "correlations": {**(manifest.get("correlations") or {}), **corr_by_request},
    }
    rows = training_set_usage_rows(host, run, importances=by_request)
    for row in rows:
        row["execution_duration_ms"] = execution_duration_ms
        if usage_timestamp is not None:
            row["usage_timestamp"] = usage_timestamp
    engine = host.registry.engine
    with sql.registry_errors(engine), engine.connect() as conn:
        existing = sql.usage_by_execution(
            conn, execution_of(manifest), used_by_model, model_version
        )
    if not existing:
        check_registered(host, rows)
        return host._record([], returning=True, rows=rows)
    by_key = {(r.feature_name, r.feature_version): r for r in existing}
    updates, result = [], []
    for row, feature in zip(rows, manifest["features"], strict=True):
        stored = by_key.get((row["feature_name"], row["feature_version"]))
        if stored is None:
            continue
        change = {"id": stored.id}
        if feature["request"] in by_request:
            change["feature_importance"] = row["feature_importance"]
        if feature["request"] in corr_by_request:
            change["correlation_with_target"] = row["correlation_with_target"]
        updates.append(change)

    def work(conn) -> None:
        sql.update_usage_values(conn, updates)

    with sql.registry_errors(engine):
        sql.run_write(engine, work)
        with engine.connect() as conn:
            result = sql.usage_by_execution(
                conn, execution_of(manifest), used_by_model, model_version
            )
    return [usage_from_row(row) for row in result]
