"""Diffusion exponents from the exact KL along each seed's trajectory, beside the estimator's.

Kishino et al. fit how far a model has moved from a start checkpoint t0 as a power of the steps
since: KL(t0, t0 + Delta) ~ Delta^alpha (alpha = 1 diffusive, below 1 subdiffusive), with KL
estimated from log-likelihood vectors (analysis/loglik.py, `diffusion_exponents`). Here alpha is
fitted to the exact KL the extraction measured per token from each anchor step
(extract/measures/trajectory.py): for every later checkpoint t, KL(t0, t) is the mean over the
evaluation contexts of (KL(p_t || p_t0) + KL(p_t0 || p_t)) / 2, the symmetric KL, which is what
the estimator's Var/2 approximates to second order. The slope of log KL on log Delta is the
same least-squares fit as the estimator's (`loglik._loglog_slopes`).

Interval: a percentile bootstrap over evaluation windows (whole windows, since a window's
contexts share their text), one resample used for every Delta of a seed and anchor, as the
estimator's resamples texts once for every Delta. The table puts beside each exact exponent the
estimator's exponent and interval and the weight-distance exponent of the same seed and start
step, so the three read on one row.

The first part is pure numpy; `compute_table` builds the warehouse table from an open DuckDB
connection.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.loglik import MIN_POINTS, _log_positive, _loglog_slopes

TABLE = "trajectory_exponents"
COLUMNS: list[tuple[str, str]] = [
    ("suite", "varchar"),
    ("size", "varchar"),
    ("n_params", "bigint"),
    ("seed", "integer"),
    ("anchor_step", "bigint"),
    ("n_points", "integer"),
    ("exact_exponent", "double"),
    ("exact_exponent_low", "double"),
    ("exact_exponent_high", "double"),
    ("llv_exponent", "double"),
    ("llv_exponent_low", "double"),
    ("llv_exponent_high", "double"),
    ("weight_exponent", "double"),
]
# The relations the table is computed from (dbt models and the loglik analysis' table).
INPUTS = ("stg_trajectory_kl", "stg_eval_tokens", "stg_checkpoints")

# Per (suite, size, seed, anchor, later step, window): the symmetric KL summed over the window's
# contexts, and their number. Only start steps with at least MIN_POINTS later checkpoints can be
# fitted, so the others (a seed's previous checkpoint, compared with one later step) are left out.
WINDOW_SUMS_QUERY = f"""
    with starts as (
        select suite, size, seed, from_step
        from stg_trajectory_kl
        group by suite, size, seed, from_step
        having count(distinct step) >= {MIN_POINTS}
    )
    select
        trajectory.suite, trajectory.size, trajectory.seed, trajectory.from_step, trajectory.step,
        tokens.window_id,
        sum((trajectory.kl_later_earlier + trajectory.kl_earlier_later) / 2) as kl_sum,
        count(*) as n_contexts
    from stg_trajectory_kl as trajectory
    inner join starts using (suite, size, seed, from_step)
    inner join stg_eval_tokens as tokens
        on trajectory.suite = tokens.suite and trajectory.position = tokens.position
    group by all
"""
N_PARAMS_QUERY = "select suite, size, max(n_params) as n_params from stg_checkpoints group by suite, size"
ESTIMATOR_QUERY = """
    select suite, size, seed, start_step as anchor_step, kl_exponent as llv_exponent,
        kl_exponent_low as llv_exponent_low, kl_exponent_high as llv_exponent_high, weight_exponent
    from diffusion_exponents
"""


def exact_exponent(
    deltas: np.ndarray,
    kl_sums: np.ndarray,
    counts: np.ndarray,
    n_boot: int,
    level: float,
    random_state: int,
    min_points: int = MIN_POINTS,
) -> tuple[int, float, float, float]:
    """(n_points, exponent, low, high) of one seed and anchor.

    deltas: (T,) steps since the anchor; kl_sums, counts: (W, T) per window and later step, the
    summed symmetric KL and the contexts (a window missing at a step has count 0). KL(t) is
    sum_w kl_sums[w, t] / sum_w counts[w, t]; a replicate weights window w by its multinomial
    count, the same for every t.
    """
    deltas = np.asarray(deltas, dtype=float)
    kl_sums, counts = np.asarray(kl_sums, dtype=float), np.asarray(counts, dtype=float)
    log_delta = _log_positive(deltas)
    with np.errstate(invalid="ignore", divide="ignore"):
        kl = kl_sums.sum(0) / counts.sum(0)
    log_kl = _log_positive(kl)
    n_points = int((np.isfinite(log_kl) & np.isfinite(log_delta)).sum())
    exponent = float(_loglog_slopes(log_delta, log_kl, min_points)[0])
    low = high = float("nan")
    n_windows = kl_sums.shape[0]
    if n_points >= min_points and n_boot > 0 and n_windows > 1:
        rng = np.random.default_rng(random_state)
        weights = rng.multinomial(n_windows, np.full(n_windows, 1.0 / n_windows), size=n_boot).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates = (weights @ kl_sums) / (weights @ counts)  # (n_boot, T)
        slopes = _loglog_slopes(log_delta, _log_positive(replicates), min_points)
        if np.isfinite(slopes).any():
            low, high = np.nanquantile(slopes, [(1 - level) / 2, (1 + level) / 2])
    return n_points, exponent, float(low), float(high)


def exponents_frame(
    window_sums: pd.DataFrame, n_boot: int, level: float, random_state: int, min_points: int = MIN_POINTS
) -> pd.DataFrame:
    """One row per (suite, size, seed, anchor): the exact exponent and its interval."""
    rows = []
    keys = ["suite", "size", "seed", "from_step"]
    for (suite, size, seed, anchor), part in window_sums.groupby(keys, sort=True):
        kl_sums = part.pivot_table(index="window_id", columns="step", values="kl_sum", aggfunc="sum", fill_value=0.0)
        counts = part.pivot_table(index="window_id", columns="step", values="n_contexts", aggfunc="sum", fill_value=0)
        steps = kl_sums.columns.to_numpy(dtype=float)
        n_points, exponent, low, high = exact_exponent(
            steps - anchor, kl_sums.to_numpy(), counts.to_numpy(), n_boot, level, random_state, min_points
        )
        rows.append((suite, size, int(seed), int(anchor), n_points, exponent, low, high))
    return pd.DataFrame(
        rows,
        columns=[
            "suite",
            "size",
            "seed",
            "anchor_step",
            "n_points",
            "exact_exponent",
            "exact_exponent_low",
            "exact_exponent_high",
        ],
    )


def compute_table(connection, n_boot: int, level: float, random_state: int) -> pd.DataFrame:
    """trajectory_exponents from the warehouse (after loglik_analysis has written diffusion_exponents)."""
    exact = exponents_frame(connection.execute(WINDOW_SUMS_QUERY).df(), n_boot, level, random_state)
    estimator = connection.execute(ESTIMATOR_QUERY).df()
    n_params = connection.execute(N_PARAMS_QUERY).df()
    frame = exact.merge(estimator, on=["suite", "size", "seed", "anchor_step"], how="left").merge(
        n_params, on=["suite", "size"], how="left"
    )
    frame = frame.reindex(columns=[name for name, _ in COLUMNS])
    return frame.sort_values(["suite", "n_params", "size", "seed", "anchor_step"], ignore_index=True)


def write_table(connection, frame: pd.DataFrame) -> None:
    """`create or replace table trajectory_exponents`, cast to COLUMNS (an empty frame keeps them)."""
    casts = ", ".join(f'cast("{name}" as {kind}) as "{name}"' for name, kind in COLUMNS)
    connection.register("_trajectory_frame", frame.reindex(columns=[name for name, _ in COLUMNS]))
    try:
        connection.execute(f"create or replace table {TABLE} as select {casts} from _trajectory_frame")
    finally:
        connection.unregister("_trajectory_frame")
