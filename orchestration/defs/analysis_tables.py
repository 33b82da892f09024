"""Python analyses over the marts: the per-step convergence regression, the log-likelihood-vector
analyses (model map, diffusion exponents, agreement with the exact KL), the four phases of
convergence, the seed-and-context intervals of E[conv] and the diffusion exponents of the exact
trajectory KL."""

import dagster as dg
import duckdb

from analysis import bootstrap, loglik, phases, trajectory
from analysis.regression import fit_all_steps
from orchestration.defs.resources import WAREHOUSE_POOL, SeedconvSettings
from orchestration.warehouse_lock import writing_warehouse

GROUP = "analysis"
# The tables each Python analysis writes into the warehouse, by the asset that writes them.
WRITTEN_BY = {
    "regression_coefficients": "regression_coefficients",
    **{table: "loglik_analysis" for table in loglik.TABLES},
    phases.TABLE: "convergence_phases",
    **{table: "convergence_intervals" for table in bootstrap.TABLES},
    trajectory.TABLE: "trajectory_exponents",
}


@dg.asset(
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"statsmodels", "duckdb"},
    deps=[dg.AssetKey("mart_regression_features")],
)
def regression_coefficients(context: dg.AssetExecutionContext, seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """Per step: OLS of conv on log frequency, PoS of s_t and s_{t-1}, and size (clustered SEs).

    Written as the table `regression_coefficients` into the warehouse dbt builds, before it is
    published, so users query it beside the marts.
    """
    database = seedconv.load().paths.duckdb
    with writing_warehouse(database, context.log.info), duckdb.connect(str(database)) as connection:
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


@dg.asset(
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"numpy", "duckdb"},
    deps=[dg.AssetKey(name) for name in loglik.INPUTS],
)
def loglik_analysis(context: dg.AssetExecutionContext, seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """Log-likelihood vectors (Oyama et al. 2025; Kishino et al. 2026): the model map, diffusion exponents,
    agreement with exact KL.

    Written as the tables `loglik_model_map`, `diffusion_exponents` and `loglik_exact_agreement`
    into the warehouse dbt builds, before it is published. A lake without log-likelihood vectors
    gives the three tables empty, with their columns.
    """
    database = seedconv.load().paths.duckdb
    with writing_warehouse(database, context.log.info), duckdb.connect(str(database)) as connection:
        tables = loglik.compute_tables(connection)
        loglik.write_tables(connection, tables)
    model_map = tables["loglik_model_map"]
    exponents = tables["diffusion_exponents"]
    agreement = tables["loglik_exact_agreement"]
    explained = (
        model_map.groupby("suite")[["explained_x", "explained_y"]].first().reset_index()
        if len(model_map)
        else model_map[["suite", "explained_x", "explained_y"]]
    )
    by_size = (
        (
            exponents.groupby(["suite", "size"], sort=False)
            .agg(
                seeds=("seed", "nunique"),
                start_steps=("start_step", "nunique"),
                median_kl_exponent=("kl_exponent", "median"),
                median_weight_exponent=("weight_exponent", "median"),
            )
            .reset_index()
        )
        if len(exponents)
        else exponents[["suite", "size"]]
    )
    return dg.MaterializeResult(
        metadata={
            **{f"{table}_rows": len(frame) for table, frame in tables.items()},
            "models_mapped": len(model_map),
            "map_explained_variance": dg.MetadataValue.md(explained.to_markdown(index=False)),
            "diffusion_exponents_by_size": dg.MetadataValue.md(by_size.to_markdown(index=False)),
            "loglik_vs_exact": dg.MetadataValue.md(agreement.to_markdown(index=False)),
        }
    )


@dg.asset(
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"numpy", "duckdb"},
    deps=[dg.AssetKey(name) for name in phases.INPUTS],
)
def convergence_phases(context: dg.AssetExecutionContext, seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """Fehlauer et al.'s four phases located per size: where the uniform phase ends, E[conv] peaks,
    bottoms out and starts to rise again, with the interval over seed pairs (analysis/phases.py).

    Written as the table `convergence_phases` into the warehouse dbt builds, before it is
    published. A turning point the curve has not passed is NULL with the reason.
    """
    database = seedconv.load().paths.duckdb
    with writing_warehouse(database, context.log.info), duckdb.connect(str(database)) as connection:
        table = phases.compute_table(connection)
        phases.write_table(connection, table)
    shown = table[["suite", "size", "turning_point", "step", "step_low", "step_high", "n_pairs_located", "status"]]
    return dg.MaterializeResult(
        metadata={
            "rows": len(table),
            "located": int((table["status"] == phases.LOCATED).sum()),
            "turning_points": dg.MetadataValue.md(shown.to_markdown(index=False)),
        }
    )


@dg.asset(
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"numpy", "duckdb"},
    deps=[dg.AssetKey(name) for name in bootstrap.INPUTS],
)
def convergence_intervals(context: dg.AssetExecutionContext, seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """E[conv] per checkpoint with an interval from a bootstrap over seeds and contexts at once (the
    MultiBERTs' multi-bootstrap), and the differences between two sizes at a step and between
    consecutive steps of a size, with intervals and p-values (analysis/bootstrap.py).

    Written as the tables `convergence_intervals` and `convergence_differences` into the warehouse
    dbt builds, before it is published; `[bootstrap]` in seedconv.toml sets the replicates, level,
    resampling unit and seed.
    """
    settings = seedconv.load()
    database = settings.paths.duckdb
    with writing_warehouse(database, context.log.info), duckdb.connect(str(database)) as connection:
        tables = bootstrap.compute_tables(connection, settings.bootstrap)
        bootstrap.write_tables(connection, tables)
    intervals, differences = tables[bootstrap.INTERVALS_TABLE], tables[bootstrap.DIFFERENCES_TABLE]
    last = intervals.sort_values("step").groupby(["suite", "size"], sort=False).tail(1)
    shown = last[["suite", "size", "step", "expected_conv", "ci_low", "ci_high", "band_low", "band_high"]]
    return dg.MaterializeResult(
        metadata={
            "intervals_rows": len(intervals),
            "differences_rows": len(differences),
            "significant_differences": int((differences["p_value"] < 1 - settings.bootstrap.level).sum()),
            "last_steps": dg.MetadataValue.md(shown.to_markdown(index=False)),
        }
    )


@dg.asset(
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"numpy", "duckdb"},
    deps=[*(dg.AssetKey(name) for name in trajectory.INPUTS), loglik_analysis],
)
def trajectory_exponents(context: dg.AssetExecutionContext, seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """Diffusion exponents fitted to the exact KL along each seed's trajectory from each anchor step,
    with a bootstrap interval over evaluation windows, beside the log-likelihood-vector estimator's
    and the weight-distance exponent of the same seed and start step (analysis/trajectory.py).

    Written as the table `trajectory_exponents` into the warehouse dbt builds, before it is
    published; the replicates, level and seed are `[bootstrap]`'s.
    """
    settings = seedconv.load()
    database = settings.paths.duckdb
    config = settings.bootstrap
    with writing_warehouse(database, context.log.info), duckdb.connect(str(database)) as connection:
        table = trajectory.compute_table(connection, config.n_boot, config.level, config.seed)
        trajectory.write_table(connection, table)
    by_size = (
        table.groupby(["suite", "size", "anchor_step"], sort=False)[
            ["exact_exponent", "llv_exponent", "weight_exponent"]
        ]
        .mean()
        .reset_index()
    )
    return dg.MaterializeResult(
        metadata={"rows": len(table), "mean_exponents": dg.MetadataValue.md(by_size.to_markdown(index=False))}
    )
