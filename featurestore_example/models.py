"""The example's model asset: ``alpha_model``, a linear forecast of the 5-day forward return.

It depends on four feature assets (``feature_asset_key``), so the Dagster UI draws it below
them in the features' lineage graph. A run of it:

1. reads a point-in-time training set through ``FeatureStoreResource``: the spine is every
   symbol on every Friday since 2023 from the lake's raw prices, with the label (the return
   over the next 5 trading days) computed in SQL; the training set's manifest is stored and
   its usage records carry the Dagster run id;
2. fits ordinary least squares with numpy on the standardized features;
3. records each feature's share of the absolute coefficients as its importance on those
   same usage records (``record_model_usage(training_set_id=...)``).

The features must be registered (``featurestore apply``) and built first: usage is only
recorded for registered versions, and the run fails with that message otherwise.
"""

import dagster as dg
import numpy as np

from featurestore_dagster import FeatureStoreResource, feature_asset_key

MODEL = "alpha_model"
MODEL_VERSION = "1.0.0"
ENVIRONMENT = "dev"
FEATURES = ["stock_rsi_14d", "stock_volatility_20d", "stock_beta_60d", "treasury_10y_yield"]
LABEL = "fwd_return_5d"

# One row per symbol and Friday since 2023, labelled with the return over the next 5 trading
# days (the last week has no label yet and is left out).
SPINE_SQL = f"""
SELECT symbol, date, {LABEL}
FROM (
    SELECT symbol, date,
           LEAD(close, 5) OVER (PARTITION BY symbol ORDER BY date) / close - 1 AS {LABEL}
    FROM raw.daily_prices
)
WHERE date >= DATE '2023-01-01' AND dayofweek(date) = 5 AND {LABEL} IS NOT NULL
ORDER BY symbol, date
"""


def fit(frame, features: list[str], label: str) -> dict[str, object]:
    """Least squares of ``label`` on the standardized ``features`` (rows with a NULL left
    out): coefficients, importances (shares of the absolute coefficients) and R^2."""
    data = frame[[*features, label]].dropna()
    if len(data) <= len(features):
        raise dg.Failure(
            f"{MODEL}: {len(data)} complete training rows for {len(features)} features; build"
            " the features first (`featurestore materialize`)"
        )
    x = data[features].to_numpy(dtype=float)
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    y = data[label].to_numpy(dtype=float)
    design = np.c_[x, np.ones(len(x))]
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    r2 = 1.0 - float(residual @ residual) / float(((y - y.mean()) ** 2).sum() or 1.0)
    weights = np.abs(coef[:-1])
    shares = weights / weights.sum() if weights.sum() > 0 else np.full(len(features), 0.0)
    return {
        "rows": len(data),
        "coefficients": dict(zip(features, coef[:-1].round(8).tolist(), strict=True)),
        "importances": dict(zip(features, shares.round(6).tolist(), strict=True)),
        "r2": round(r2, 6),
    }


@dg.asset(
    name=MODEL,
    deps=[feature_asset_key(name) for name in FEATURES],
    group_name="models",
    kinds={"numpy"},
    owners=["team:quant-team"],
    code_version=MODEL_VERSION,
    description="Linear forecast of the 5-day forward return from four features (OLS on"
    " a point-in-time training set; importances recorded as feature usage).",
)
def alpha_model(
    context: dg.AssetExecutionContext, feature_store: FeatureStoreResource
) -> dg.MaterializeResult:
    ts = feature_store.get_training_set(
        SPINE_SQL,
        FEATURES,
        timestamp_column="date",
        model=MODEL,
        model_version=MODEL_VERSION,
        environment=ENVIRONMENT,
        label_column=LABEL,
    )
    result = fit(ts.to_pandas(), FEATURES, LABEL)
    feature_store.record_model_usage(
        used_by_model=MODEL,
        model_version=MODEL_VERSION,
        environment=ENVIRONMENT,
        features=result["importances"],
        training_set_id=ts.training_set_id,
    )
    context.log.info(f"{MODEL}: R^2 {result['r2']} on {result['rows']} rows")
    return dg.MaterializeResult(
        metadata={
            "training_set_id": ts.training_set_id,
            "dagster/row_count": result["rows"],
            "r2": result["r2"],
            "coefficients": dg.MetadataValue.json(result["coefficients"]),
            "importances": dg.MetadataValue.json(result["importances"]),
            "feature_versions": dg.MetadataValue.json(
                {f["request"]: f["version"] for f in ts.manifest["features"]}
            ),
        }
    )
