"""Python analyses over the marts: the per-step convergence regression."""

import dagster as dg
import duckdb

from analysis.regression import fit_all_steps
from orchestration.resources import SeedconvSettings


@dg.asset(group_name="warehouse", kinds={"statsmodels", "duckdb"},
          deps=[dg.AssetKey("mart_regression_features")])
def regression_coefficients(seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """Per step: OLS of conv on log frequency, PoS of s_t and s_{t-1}, and size (clustered SEs).

    Written as the table `regression_coefficients` into the warehouse dbt builds, before it is
    published, so users query it beside the marts.
    """
    database = seedconv.load().paths.duckdb
    with duckdb.connect(str(database)) as connection:
        features = connection.execute("select * from mart_regression_features").df()
        coefficients = fit_all_steps(features)
        connection.register("coefficients", coefficients)
        connection.execute("create or replace table regression_coefficients as select * from coefficients")
    frequency = coefficients[coefficients["term"] == "log_frequency"]
    return dg.MaterializeResult(
        metadata={
            "rows": len(coefficients),
            "steps": int(coefficients["step"].nunique()) if len(coefficients) else 0,
            "log_frequency_by_step": dg.MetadataValue.md(
                frequency[["suite", "step", "estimate", "std_error", "n_obs"]].to_markdown(index=False)
            ),
        }
    )

