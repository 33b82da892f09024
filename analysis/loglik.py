"""Log-likelihood vectors (Oyama et al. 2025; Kishino et al. 2026): KL between models from their
log-probabilities of fixed texts.

A model's log-likelihood vector is l(x_i) = log p(x_i), the natural-log probability of each text
x_i of a fixed set (summed over its tokens). For two models a and b,

    KL(p_a || p_b)  ~=  Var_i( l_a(x_i) - l_b(x_i) ) / 2        (nats per text)

(population variance over texts x_i ~ p_a). For close models the log ratio r = log p_a - log p_b
of a text has E_a[r] = KL and E_a[exp(-r)] = sum p_b = 1; expanding the exponential gives
E_a[r] = E_a[r^2]/2 + O(r^3), and E_a[r^2] = Var_a[r] + KL^2 with KL^2 of fourth order, so
KL = Var_a[r]/2 up to terms of third order in r.
A constant offset between the vectors (the same amount on every text) does not count. Per byte
in bits: KL / (ln 2 * mean UTF-8 bytes per text).

Double-centring the models x texts matrix (each model's vector minus its mean over texts, then
each text's column minus its mean over models) puts every model in one Euclidean space where
the squared distance between two models' rows, once the matrix is scaled by
1 / sqrt(2 * n_texts * ln 2 * mean_bytes), is their KL estimate in bits per byte; its principal
coordinates are the "model map".

Trajectories: for a start checkpoint t0 of one seed, the slope of log KL(t0, t0 + Delta) on
log Delta over every later checkpoint is the diffusion exponent (1: diffusive, like a random
walk; below 1: subdiffusive), beside the same slope for the squared distance between weights.

The first part of this module is pure numpy; the second builds the warehouse tables
(`loglik_model_map`, `diffusion_exponents`, `loglik_exact_agreement`) from an open DuckDB
connection, so the Dagster asset is a thin wrapper and the tables are testable without it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import rankdata

LN2 = math.log(2.0)
MIN_POINTS = 3
N_BOOT = 200
CI = 0.95
RANDOM_STATE = 0


# --------------------------------------------------------------------------------------------
# The estimators (pure numpy)
# --------------------------------------------------------------------------------------------


def kl_estimate(l_a, l_b) -> float | np.ndarray:
    """KL(p_a || p_b) in nats per text, estimated as Var_i(l_a(x_i) - l_b(x_i)) / 2.

    Var is the population variance (divide by the number of texts) over the last axis, so
    stacked vectors give one estimate per row. Texts where either value is NaN are left out;
    with no text left the estimate is NaN.
    """
    difference = np.asarray(l_a, dtype=float) - np.asarray(l_b, dtype=float)
    valid = ~np.isnan(difference)
    n = valid.sum(axis=-1)
    centred = np.where(valid, difference, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = centred.sum(axis=-1) / n
        centred = np.where(valid, difference - np.expand_dims(mean, -1), 0.0)
        variance = (centred**2).sum(axis=-1) / n
    estimate = np.where(n > 0, variance / 2.0, np.nan)
    return float(estimate) if estimate.ndim == 0 else estimate


def to_bits_per_byte(kl_nats_per_text, mean_bytes):
    """KL in bits per byte = KL (nats per text) / (ln 2 * mean UTF-8 bytes per text)."""
    return np.asarray(kl_nats_per_text, dtype=float) / (LN2 * np.asarray(mean_bytes, dtype=float))


def complete_texts(L) -> np.ndarray:
    """The columns (texts) of a models x texts matrix that are finite for every model."""
    return np.isfinite(np.asarray(L, dtype=float)).all(axis=0)


def double_centre(L) -> np.ndarray:
    """L - row means - column means + grand mean, for a models x texts matrix L.

    Row centring removes each model's constant offset (which the KL estimate ignores); column
    centring moves the origin to the models' centroid and changes no distance between rows.
    Then |row_a - row_b|^2 = n_texts * Var_i(l_a - l_b) = 2 * n_texts * KL_ab (nats per text).
    """
    L = np.asarray(L, dtype=float)
    if L.ndim != 2:
        raise ValueError(f"expected a models x texts matrix, got shape {L.shape}")
    return L - L.mean(axis=1, keepdims=True) - L.mean(axis=0, keepdims=True) + L.mean()


def model_coordinates(L, mean_bytes: float) -> tuple[np.ndarray, np.ndarray]:
    """Every principal coordinate of each model, and each component's share of the variance.

    Q = double_centre(L) / sqrt(2 * n_texts * ln 2 * mean_bytes) = U S V^T (thin SVD); the
    coordinates are U S, so |coords_a - coords_b|^2 = |Q_a - Q_b|^2 = KL_ab in bits per byte.
    Shares are S^2 / sum S^2 (NaN when every model coincides). Each component's sign is fixed
    so its largest coordinate in absolute value is positive, so reruns draw the same map.
    L must be finite (select texts with `complete_texts` first).
    """
    L = np.asarray(L, dtype=float)
    if not np.isfinite(L).all():
        raise ValueError("the log-likelihood matrix has non-finite values; keep complete_texts(L) only")
    n_models, n_texts = L.shape
    if n_texts == 0 or n_models == 0:
        return np.zeros((n_models, 0)), np.zeros(0)
    Q = double_centre(L) / math.sqrt(2.0 * n_texts * LN2 * mean_bytes)
    U, S, _ = np.linalg.svd(Q, full_matrices=False)
    coords = U * S
    largest = np.abs(coords).argmax(axis=0)
    signs = np.sign(coords[largest, np.arange(coords.shape[1])])
    coords = coords * np.where(signs == 0, 1.0, signs)
    total = float((S**2).sum())
    shares = S**2 / total if total > 0 else np.full(S.shape, np.nan)
    return coords, shares


def model_map(L, mean_bytes: float) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal coordinates (models x 2) and their variance shares (2,).

    See `model_coordinates`; with fewer than two components the missing ones are 0 (shares NaN).
    """
    coords, shares = model_coordinates(L, mean_bytes)
    padded = np.zeros((coords.shape[0], 2))
    padded[:, : min(2, coords.shape[1])] = coords[:, :2]
    padded_shares = np.full(2, np.nan)
    padded_shares[: min(2, shares.size)] = shares[:2]
    return padded, padded_shares


def _loglog_slopes(log_x: np.ndarray, log_y: np.ndarray, min_points: int) -> np.ndarray:
    """Least-squares slope of each row of log_y (replicates x points) on log_x (points,).

    NaN entries of log_y are left out of their row; a row with fewer than `min_points` points,
    or whose points share one x, has slope NaN.
    """
    log_y = np.atleast_2d(log_y)
    valid = np.isfinite(log_y) & np.isfinite(log_x)
    n = valid.sum(axis=1)
    x = np.where(valid, log_x, 0.0)
    y = np.where(valid, log_y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_bar = x.sum(axis=1) / n
        y_bar = y.sum(axis=1) / n
        dx = np.where(valid, log_x - x_bar[:, None], 0.0)
        dy = np.where(valid, log_y - y_bar[:, None], 0.0)
        sxx = (dx**2).sum(axis=1)
        slope = (dx * dy).sum(axis=1) / sxx
    return np.where((n >= max(min_points, 2)) & (sxx > 0), slope, np.nan)


def _log_positive(values) -> np.ndarray:
    """log(values), NaN where a value is not finite and positive (a log-log fit drops those)."""
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(values) & (values > 0), np.log(np.where(values > 0, values, 1.0)), np.nan)


def loglog_slope(deltas, values, min_points: int = MIN_POINTS) -> float:
    """Least-squares slope b of log(values) = a + b log(deltas).

    Points whose value or delta is not finite and positive are dropped; with fewer than
    `min_points` points left (or all at one delta) the slope is NaN.
    """
    log_x = _log_positive(deltas)
    log_y = np.where(np.isfinite(log_x), _log_positive(values), np.nan)
    return float(_loglog_slopes(log_x, log_y, min_points)[0])


# Elements of the pair-difference matrix handled at once (32 MiB of float64).
PAIR_CHUNK_ELEMENTS = 1 << 22


def _pair_kls(
    L: np.ndarray, has_vectors: np.ndarray, counts: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """KL of every pair of checkpoints (i < j, in np.triu_indices order): full sample and per replicate.

    kl[p] = Var_n(L[j] - L[i]) / scale; boot[p, b] the same variance with text n weighted by
    counts[n, b] / N. The differences of many pairs go through one matrix product (one BLAS
    call per chunk, not one per start step, which matters on a busy machine). NaN for pairs
    with a checkpoint without vectors.
    """
    n_steps, n_texts = L.shape
    first, second = np.triu_indices(n_steps, k=1)
    kl = np.full(first.size, np.nan)
    boot = np.full((first.size, counts.shape[1]), np.nan)
    if n_texts == 0:
        return kl, boot
    pairs = np.flatnonzero(has_vectors[first] & has_vectors[second])
    chunk = max(1, PAIR_CHUNK_ELEMENTS // n_texts)
    for begin in range(0, pairs.size, chunk):
        rows = pairs[begin : begin + chunk]
        differences = L[second[rows]] - L[first[rows]]
        # Centred first: the variance ignores the shift, and m2 - m1^2 then cancels nothing.
        differences -= differences.mean(axis=1, keepdims=True)
        squares = differences**2
        kl[rows] = squares.mean(axis=1) / scale
        if counts.shape[1]:
            m1 = differences @ counts / n_texts
            m2 = squares @ counts / n_texts
            boot[rows] = np.maximum(m2 - m1**2, 0.0) / scale
    return kl, boot


def diffusion_exponents(
    steps,
    L_seed,
    mean_bytes: float,
    sq_weight_dist=None,
    n_boot: int = N_BOOT,
    random_state: int = RANDOM_STATE,
    ci: float = CI,
    min_points: int = MIN_POINTS,
) -> pd.DataFrame:
    """Per start checkpoint t0 of one seed: the slope of log KL(t0, t0 + Delta) on log Delta.

    steps: (T,) training steps; L_seed: (T, N) log-likelihood vectors of the seed's checkpoints
    at those steps. A row that is all NaN is a checkpoint without vectors (it can still have
    weight distances); of the others, texts not finite at every step are left out.
    KL(t0, t) = Var_i(l_t0 - l_t) / 2 / (ln 2 * mean_bytes) in bits per byte, for every later
    checkpoint t; Delta = t - t0. The slope is fitted over every later checkpoint (`loglog_slope`).

    Interval: percentile bootstrap over texts. A replicate resamples the texts with replacement
    once (multinomial counts w_i, sum w_i = N) and uses that one resample for every Delta (and
    every t0), so the KLs of one replicate are as correlated as the real ones are; the weighted
    variance sum_i w_i d_i^2 / N - (sum_i w_i d_i / N)^2 of every pair and replicate is a matrix
    product (`_pair_kls`). Replicates whose slope cannot be fitted are left out of the quantiles.

    sq_weight_dist: (T, T) squared L2 distances between the seed's weights, [i, j] for i < j
    (NaN where unknown), whose slope on log Delta is `weight_exponent`; None for none.

    One row per start step with at least one later checkpoint: start_step, n_points,
    kl_exponent, kl_exponent_low, kl_exponent_high, weight_exponent, weight_n_points.
    """
    steps = np.asarray(steps, dtype=float)
    L = np.asarray(L_seed, dtype=float)
    if L.shape[0] != steps.size:
        raise ValueError(f"{steps.size} steps but {L.shape[0]} log-likelihood vectors")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be between 0 and 1, got {ci}")
    has_vectors = ~np.isnan(L).all(axis=1)
    texts = np.isfinite(L[has_vectors]).all(axis=0) if has_vectors.any() else np.zeros(L.shape[1], bool)
    L = L[:, texts]
    n_texts = L.shape[1]
    weights = None
    if sq_weight_dist is not None:
        weights = np.asarray(sq_weight_dist, dtype=float)
        if weights.shape != (steps.size, steps.size):
            raise ValueError(f"sq_weight_dist must be {steps.size} x {steps.size}, got {weights.shape}")
    rng = np.random.default_rng(random_state)
    # Bootstrap replicates as multinomial counts of each text (texts x replicates).
    counts = np.zeros((0, n_boot))
    if n_texts > 0:
        counts = rng.multinomial(n_texts, np.full(n_texts, 1.0 / n_texts), size=n_boot).T.astype(float)
    kl, boot = _pair_kls(L, has_vectors, counts, 2.0 * LN2 * mean_bytes)
    quantiles = [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0]

    rows = []
    offset = 0
    for i in range(steps.size - 1):
        block = slice(offset, offset + steps.size - 1 - i)  # the pairs (i, j > i), in order of j
        offset = block.stop
        log_delta = np.log(steps[i + 1 :] - steps[i])
        log_kl = _log_positive(kl[block])
        n_points = int(np.isfinite(log_kl).sum())
        kl_exponent = float(_loglog_slopes(log_delta, log_kl, min_points)[0])
        low = high = np.nan
        if n_points >= min_points and n_boot > 0:
            slopes = _loglog_slopes(log_delta, _log_positive(boot[block].T), min_points)
            if np.isfinite(slopes).any():
                low, high = np.nanquantile(slopes, quantiles)
        weight_exponent, weight_n_points = np.nan, 0
        if weights is not None:
            log_w = _log_positive(weights[i, i + 1 :])
            weight_n_points = int(np.isfinite(log_w).sum())
            weight_exponent = float(_loglog_slopes(log_delta, log_w, min_points)[0])
        rows.append((steps[i], n_points, kl_exponent, low, high, weight_exponent, weight_n_points))
    frame = pd.DataFrame(
        rows,
        columns=[
            "start_step",
            "n_points",
            "kl_exponent",
            "kl_exponent_low",
            "kl_exponent_high",
            "weight_exponent",
            "weight_n_points",
        ],
    )
    return frame.astype({"start_step": "int64", "n_points": "int64", "weight_n_points": "int64"})


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((dx**2).sum() * (dy**2).sum()))
    return float((dx * dy).sum() / denominator) if denominator > 0 else float("nan")


def agreement(llv, exact) -> dict[str, float | int]:
    """How well the log-likelihood-vector KL tracks the exact per-token KL on the same pairs.

    Over pairs where both are finite and positive: pearson_log = Pearson correlation of
    log(llv) and log(exact); spearman = Pearson correlation of their ranks (ties averaged);
    median_ratio = median of llv / exact (both in bits per byte: 1 when they agree in scale);
    n = the number of such pairs. Correlations are NaN with fewer than 3 pairs or no spread.
    """
    llv, exact = np.asarray(llv, dtype=float), np.asarray(exact, dtype=float)
    keep = np.isfinite(llv) & np.isfinite(exact) & (llv > 0) & (exact > 0)
    llv, exact = llv[keep], exact[keep]
    n = int(keep.sum())
    if n < 3:
        pearson_log = spearman = float("nan")
    else:
        pearson_log = _pearson(np.log(llv), np.log(exact))
        spearman = _pearson(rankdata(llv), rankdata(exact))
    median_ratio = float(np.median(llv / exact)) if n else float("nan")
    return {"pearson_log": pearson_log, "spearman": spearman, "median_ratio": median_ratio, "n": n}


# --------------------------------------------------------------------------------------------
# The warehouse tables
# --------------------------------------------------------------------------------------------

# (column, DuckDB type): the tables are written with these casts, so an empty one has them too.
TABLES: dict[str, list[tuple[str, str]]] = {
    "loglik_model_map": [
        ("suite", "varchar"),
        ("size", "varchar"),
        ("step", "bigint"),
        ("seed", "integer"),
        ("n_params", "bigint"),
        ("x", "double"),
        ("y", "double"),
        ("explained_x", "double"),
        ("explained_y", "double"),
    ],
    "diffusion_exponents": [
        ("suite", "varchar"),
        ("size", "varchar"),
        ("seed", "integer"),
        ("n_params", "bigint"),
        ("start_step", "bigint"),
        ("n_points", "integer"),
        ("kl_exponent", "double"),
        ("kl_exponent_low", "double"),
        ("kl_exponent_high", "double"),
        ("weight_exponent", "double"),
        ("weight_n_points", "integer"),
    ],
    "loglik_exact_agreement": [
        ("suite", "varchar"),
        ("size", "varchar"),
        ("n_pairs", "integer"),
        ("pearson_log", "double"),
        ("spearman", "double"),
        ("median_ratio", "double"),
    ],
}
# The relations the tables are computed from (dbt models: the asset's deps).
INPUTS = ("stg_loglik", "stg_loglik_texts", "stg_checkpoints", "mart_weight_distances", "mart_loglik_vs_exact")

VECTORS_QUERY = """
    select l.suite, l.size, l.step, l.seed, l.text_id, l.logprob, t.n_bytes
    from stg_loglik l join stg_loglik_texts t using (suite, text_id)
"""
N_PARAMS_QUERY = "select suite, size, max(n_params) as n_params from stg_checkpoints group by suite, size"
WEIGHTS_QUERY = "select suite, size, seed, step_a, step_b, sq_dist_sketch from mart_weight_distances"
VS_EXACT_QUERY = "select suite, size, kl_llv_bits_per_byte, kl_exact_bits_per_byte from mart_loglik_vs_exact"


def _empty(table: str) -> pd.DataFrame:
    return pd.DataFrame(columns=[name for name, _ in TABLES[table]])


def map_frame(vectors: pd.DataFrame, n_params: pd.DataFrame) -> pd.DataFrame:
    """loglik_model_map: one map per suite, over every (size, step, seed) model of it.

    `vectors`: suite, size, step, seed, text_id, logprob, n_bytes. Only texts every model of
    the suite scored are used, and mean_bytes is their mean.
    """
    parts = []
    for suite, rows in vectors.groupby("suite", sort=True):
        matrix = rows.groupby(["size", "step", "seed", "text_id"])["logprob"].first().unstack("text_id")
        keep = complete_texts(matrix.to_numpy())
        if not keep.any():
            continue
        n_bytes = rows.drop_duplicates("text_id").set_index("text_id")["n_bytes"]
        mean_bytes = float(n_bytes.loc[matrix.columns[keep]].mean())
        coords, shares = model_map(matrix.to_numpy()[:, keep], mean_bytes)
        part = matrix.index.to_frame(index=False).assign(
            suite=suite, x=coords[:, 0], y=coords[:, 1], explained_x=shares[0], explained_y=shares[1]
        )
        parts.append(part)
    if not parts:
        return _empty("loglik_model_map")
    frame = pd.concat(parts, ignore_index=True).merge(n_params, on=["suite", "size"], how="left")
    return frame[[name for name, _ in TABLES["loglik_model_map"]]].sort_values(
        ["suite", "n_params", "size", "seed", "step"], ignore_index=True
    )


def _weight_matrix(distances: pd.DataFrame, steps: np.ndarray) -> np.ndarray:
    matrix = np.full((steps.size, steps.size), np.nan)
    index = {step: i for i, step in enumerate(steps)}
    for step_a, step_b, value in distances[["step_a", "step_b", "sq_dist_sketch"]].itertuples(index=False):
        if step_a in index and step_b in index:
            matrix[index[step_a], index[step_b]] = value
    return matrix


def diffusion_frame(
    vectors: pd.DataFrame,
    distances: pd.DataFrame,
    n_params: pd.DataFrame,
    n_boot: int = N_BOOT,
    random_state: int = RANDOM_STATE,
) -> pd.DataFrame:
    """diffusion_exponents: `diffusion_exponents` per (suite, size, seed).

    A seed's checkpoints are those with log-likelihood vectors or weight distances (from the
    count sketch, which covers every pair of checkpoints); mean_bytes is the suite's mean over
    its texts (it scales every KL alike, so no slope depends on it).
    """
    keys = ["suite", "size", "seed"]
    distances = distances.dropna(subset=["step_a", "step_b"]).astype({"step_a": "int64", "step_b": "int64"})
    groups = pd.concat([vectors[keys], distances[keys]]).drop_duplicates()
    vector_groups = dict(tuple(vectors.groupby(keys, sort=False))) if len(vectors) else {}
    distance_groups = dict(tuple(distances.groupby(keys, sort=False))) if len(distances) else {}
    mean_bytes = vectors.drop_duplicates(["suite", "text_id"]).groupby("suite")["n_bytes"].mean()
    parts = []
    for key in sorted(groups.itertuples(index=False, name=None)):
        seed_vectors = vector_groups.get(key, vectors.iloc[0:0])
        seed_distances = distance_groups.get(key)
        steps = set(seed_vectors["step"].astype("int64"))
        if seed_distances is not None:
            steps |= set(seed_distances["step_a"]) | set(seed_distances["step_b"])
        steps = np.array(sorted(steps), dtype=np.int64)
        if len(seed_vectors):
            matrix = seed_vectors.groupby(["step", "text_id"])["logprob"].first().unstack("text_id")
            matrix = matrix.reindex(steps).to_numpy(dtype=float)
        else:
            matrix = np.full((steps.size, 0), np.nan)
        weights = _weight_matrix(seed_distances, steps) if seed_distances is not None else None
        exponents = diffusion_exponents(
            steps, matrix, float(mean_bytes.get(key[0], 1.0)), weights, n_boot=n_boot, random_state=random_state
        )
        parts.append(exponents.assign(suite=key[0], size=key[1], seed=key[2]))
    parts = [part for part in parts if len(part)]
    if not parts:
        return _empty("diffusion_exponents")
    frame = pd.concat(parts, ignore_index=True).merge(n_params, on=["suite", "size"], how="left")
    return frame[[name for name, _ in TABLES["diffusion_exponents"]]].sort_values(
        ["suite", "n_params", "size", "seed", "start_step"], ignore_index=True
    )


def agreement_frame(vs_exact: pd.DataFrame) -> pd.DataFrame:
    """loglik_exact_agreement: `agreement` per (suite, size) and per suite over all sizes ('all')."""
    rows = []
    for suite, suite_rows in vs_exact.groupby("suite", sort=True):
        groups = [(size, part) for size, part in suite_rows.groupby("size", sort=True)] + [("all", suite_rows)]
        for size, part in groups:
            result = agreement(part["kl_llv_bits_per_byte"], part["kl_exact_bits_per_byte"])
            rows.append(
                {
                    "suite": suite,
                    "size": size,
                    "n_pairs": result["n"],
                    "pearson_log": result["pearson_log"],
                    "spearman": result["spearman"],
                    "median_ratio": result["median_ratio"],
                }
            )
    return pd.DataFrame(rows, columns=[name for name, _ in TABLES["loglik_exact_agreement"]])


def compute_tables(connection, n_boot: int = N_BOOT, random_state: int = RANDOM_STATE) -> dict[str, pd.DataFrame]:
    """The three tables from the warehouse's staging and marts (`INPUTS`) over a DuckDB connection."""
    vectors = connection.execute(VECTORS_QUERY).df()
    n_params = connection.execute(N_PARAMS_QUERY).df()
    distances = connection.execute(WEIGHTS_QUERY).df()
    vs_exact = connection.execute(VS_EXACT_QUERY).df()
    return {
        "loglik_model_map": map_frame(vectors, n_params),
        "diffusion_exponents": diffusion_frame(vectors, distances, n_params, n_boot, random_state),
        "loglik_exact_agreement": agreement_frame(vs_exact),
    }


def write_tables(connection, tables: dict[str, pd.DataFrame]) -> None:
    """`create or replace table` each, cast to the types in TABLES (so empty tables keep them)."""
    for table, frame in tables.items():
        columns = TABLES[table]
        frame = frame.reindex(columns=[name for name, _ in columns])
        casts = ", ".join(f'cast("{name}" as {kind}) as "{name}"' for name, kind in columns)
        view = f"_{table}_frame"
        connection.register(view, frame)
        try:
            connection.execute(f"create or replace table {table} as select {casts} from {view}")
        finally:
            connection.unregister(view)
