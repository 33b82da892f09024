"""Log-likelihood-vector KL, the model map and diffusion exponents against known answers."""

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.loglik import (
    LN2,
    TABLES,
    agreement,
    complete_texts,
    compute_tables,
    diffusion_exponents,
    double_centre,
    kl_estimate,
    loglog_slope,
    model_coordinates,
    model_map,
    to_bits_per_byte,
    write_tables,
)

# PolyPythia's 154 checkpoints: step 0, powers of two to 512, then every 1000 to 143000.
POLYPYTHIA_STEPS = np.array([0] + [2**k for k in range(10)] + list(range(1000, 143001, 1000)))


# ------------------------------------------------------------------------------- kl_estimate


def test_identical_vectors_have_zero_kl():
    l_a = np.random.default_rng(0).normal(-300, 40, 200)
    assert kl_estimate(l_a, l_a) == 0.0


def test_a_constant_offset_is_ignored():
    l_a = np.random.default_rng(1).normal(-300, 40, 200)
    assert kl_estimate(l_a, l_a + 7.5) == pytest.approx(0.0, abs=1e-12)
    l_b = l_a + np.random.default_rng(2).normal(0, 1, 200)
    assert kl_estimate(l_a, l_b - 100.0) == pytest.approx(kl_estimate(l_a, l_b), rel=1e-12)


def test_estimate_is_half_the_population_variance_of_the_difference():
    l_a, l_b = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0, 0.0])
    # differences 0,1,2,3: mean 1.5, population variance 1.25
    assert kl_estimate(l_a, l_b) == pytest.approx(0.625)
    assert to_bits_per_byte(0.625, 10.0) == pytest.approx(0.625 / (math.log(2) * 10.0))


def test_known_kl_of_a_unigram_model_and_its_shifted_copy():
    """Texts of n i.i.d. tokens from p_a; p_b = softmax(log p_a + s) with a small known shift s.

    With r = log p_a - log p_b, l_a - l_b of a text is a sum of n i.i.d. r's, so
    Var(l_a - l_b) = n Var_a(r). Since E_a[exp(-r)] = sum p_b = 1, expanding the exponential gives
    E_a[r] = E_a[r^2]/2 + O(r^3), i.e. KL(p_a || p_b) = Var_a(r)/2 + O(s^3): the estimate is
    n KL to second order in the shift. For shifts of sd 0.05 the third-order gap is about 1% (checked
    below in closed form: within 2%); with 20,000 texts the sample variance's relative error is about
    sqrt(2 / 20,000) = 1%, so 5% is a tolerance of several standard errors, not a fudge.
    """
    rng = np.random.default_rng(3)
    n_symbols, n_tokens, n_texts = 50, 40, 20_000
    log_p_a = rng.normal(0, 1, n_symbols)
    log_p_a -= np.log(np.exp(log_p_a).sum())
    log_p_b = log_p_a + rng.normal(0, 0.05, n_symbols)
    log_p_b -= np.log(np.exp(log_p_b).sum())
    p_a = np.exp(log_p_a)
    exact_kl = float((p_a * (log_p_a - log_p_b)).sum())
    r = log_p_a - log_p_b
    half_variance = float((p_a * r**2).sum() - exact_kl**2) / 2
    assert half_variance == pytest.approx(exact_kl, rel=0.02), "the second-order approximation holds here"

    tokens = rng.choice(n_symbols, size=(n_texts, n_tokens), p=p_a)
    l_a, l_b = log_p_a[tokens].sum(axis=1), log_p_b[tokens].sum(axis=1)
    assert kl_estimate(l_a, l_b) == pytest.approx(n_tokens * exact_kl, rel=0.05)
    # A much larger shift is a much larger KL: the estimate is not just close to anything.
    log_p_c = log_p_a + rng.normal(0, 0.3, n_symbols)
    log_p_c -= np.log(np.exp(log_p_c).sum())
    assert kl_estimate(l_a, log_p_c[tokens].sum(axis=1)) > 5 * kl_estimate(l_a, l_b)


def test_texts_missing_from_either_vector_are_left_out():
    l_a = np.array([0.0, 1.0, np.nan, 3.0, 10.0])
    l_b = np.array([0.0, 0.0, 0.0, 0.0, np.nan])
    assert kl_estimate(l_a, l_b) == pytest.approx(kl_estimate([0.0, 1.0, 3.0], [0.0, 0.0, 0.0]))
    assert math.isnan(kl_estimate([np.nan], [1.0]))


def test_stacked_vectors_give_one_estimate_per_row():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    np.testing.assert_allclose(kl_estimate(a, b), [kl_estimate(a[i], b[i]) for i in range(3)])


# ------------------------------------------------------------------------------- model map


def test_double_centring_zeroes_row_and_column_means():
    L = np.random.default_rng(5).normal(-200, 30, (6, 40))
    centred = double_centre(L)
    np.testing.assert_allclose(centred.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(centred.mean(axis=1), 0, atol=1e-10)


def test_squared_map_distance_is_the_kl_estimate_in_bits_per_byte():
    rng = np.random.default_rng(6)
    n_models, n_texts, mean_bytes = 7, 60, 123.4
    # Models with their own constant offsets (text lengths shared) and their own deviations.
    L = rng.normal(-500, 80, n_texts) + rng.normal(0, 20, (n_models, 1)) + rng.normal(0, 2, (n_models, n_texts))
    coords, shares = model_coordinates(L, mean_bytes)
    for a in range(n_models):
        for b in range(n_models):
            expected = to_bits_per_byte(kl_estimate(L[a], L[b]), mean_bytes)
            assert ((coords[a] - coords[b]) ** 2).sum() == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert shares.sum() == pytest.approx(1.0)
    assert np.all(np.diff(shares) <= 1e-12), "components in order of variance"


def test_map_of_models_on_a_line_is_one_dimensional():
    rng = np.random.default_rng(7)
    direction = rng.normal(0, 1, 80)
    positions = np.array([0.0, 1.0, 3.0, 6.0])
    L = rng.normal(-100, 10, 80) + positions[:, None] * direction
    coords, shares = model_map(L, 50.0)
    assert coords.shape == (4, 2) and shares == pytest.approx([1.0, 0.0], abs=1e-12)
    np.testing.assert_allclose(coords[:, 1], 0, atol=1e-9)
    gaps = np.abs(np.diff(coords[:, 0]))
    np.testing.assert_allclose(gaps / gaps[0], [1.0, 2.0, 3.0], rtol=1e-9)
    # Its sign is fixed: the largest coordinate is positive.
    assert coords[np.abs(coords[:, 0]).argmax(), 0] > 0


def test_map_needs_finite_vectors_and_handles_degenerate_sets():
    L = np.array([[1.0, 2.0, np.nan], [0.0, 4.0, 5.0]])
    assert complete_texts(L).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="complete_texts"):
        model_map(L, 1.0)
    coords, shares = model_map(L[:, complete_texts(L)], 1.0)
    # Two models span one dimension: all the variance on the first component.
    assert coords.shape == (2, 2) and shares == pytest.approx([1.0, 0.0], abs=1e-12)
    one, one_shares = model_map(np.array([[1.0, 2.0, 3.0]]), 1.0)
    assert one.tolist() == [[0.0, 0.0]] and np.isnan(one_shares).all()


# ------------------------------------------------------------------------------- slopes


def test_loglog_slope_recovers_a_power_law_and_drops_non_positive_values():
    deltas = np.array([1, 2, 4, 8, 16, 1000], dtype=float)
    values = 3.0 * deltas**0.7
    assert loglog_slope(deltas, values) == pytest.approx(0.7)
    with_bad = values.copy()
    with_bad[[1, 4]] = [0.0, np.nan]
    assert loglog_slope(deltas, with_bad) == pytest.approx(0.7)
    assert math.isnan(loglog_slope(deltas[:2], values[:2]))
    assert loglog_slope(deltas[:2], values[:2], min_points=2) == pytest.approx(0.7)
    assert math.isnan(loglog_slope([1, 2, 3], [0.0, -1.0, 5.0]))


def power_law_vectors(steps, n_texts, alpha, rng, c=1e-3):
    """Log-likelihood vectors with Var_i(l_t - l_s) = c |t - s|^alpha in expectation, any s < t.

    Each text follows fractional Brownian motion over the steps (covariance
    c/2 (s^alpha + t^alpha - |t - s|^alpha)), on top of a large offset of its own, the same at
    every step (texts differ in length), which no KL may see.
    """
    steps = np.asarray(steps, dtype=float)
    s, t = np.meshgrid(steps, steps, indexing="ij")
    covariance = c / 2 * (s**alpha + t**alpha - np.abs(t - s) ** alpha)
    values, vectors = np.linalg.eigh(covariance)
    root = vectors * np.sqrt(np.clip(values, 0, None))
    walk = root @ rng.normal(size=(steps.size, n_texts))
    return rng.normal(-400, 60, n_texts) + walk


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_diffusion_exponent_recovers_a_known_power_law(alpha):
    rng = np.random.default_rng(8)
    steps = POLYPYTHIA_STEPS
    L = power_law_vectors(steps, 300, alpha, rng)
    result = diffusion_exponents(steps, L, 150.0, n_boot=200)
    assert len(result) == steps.size - 1 and result["start_step"].tolist() == steps[:-1].tolist()
    fitted = result[result["n_points"] >= 10]
    assert (fitted["n_points"] == steps.size - 1 - fitted.index).all()
    covered = (fitted["kl_exponent_low"] <= alpha) & (alpha <= fitted["kl_exponent_high"])
    # Starts share their texts, so their intervals miss together: over seeds 0-5 this fraction was 0.79-1.0.
    assert covered.mean() >= 0.75, "the 95% intervals cover the true exponent at most starts"
    assert fitted["kl_exponent"].median() == pytest.approx(alpha, abs=0.05)
    assert (fitted["kl_exponent_low"] <= fitted["kl_exponent_high"]).all()
    assert ((fitted["kl_exponent_high"] - fitted["kl_exponent_low"]) < 0.5).all()


def test_one_resample_serves_every_delta_of_a_replicate():
    """Differences l_t - l_0 = Delta^(alpha/2) * z (one pattern z over texts): any resample of the
    texts scales every KL(0, Delta) by the same factor, so every replicate has slope alpha exactly
    and the interval collapses. Independent resamples per Delta would scatter the slopes."""
    rng = np.random.default_rng(9)
    steps = np.array([0, 1, 2, 4, 8, 16, 32])
    z = rng.normal(size=100)
    L = rng.normal(-50, 5, 100) + ((steps - steps[0]) ** 0.35)[:, None] * z
    first = diffusion_exponents(steps, L, 10.0, n_boot=50).iloc[0]
    assert first["kl_exponent"] == pytest.approx(0.7)
    assert first["kl_exponent_low"] == pytest.approx(0.7) and first["kl_exponent_high"] == pytest.approx(0.7)


def test_weight_exponent_and_short_tails():
    steps = np.array([0, 1, 2, 4, 8, 16])
    deltas = steps[None, :] - steps[:, None]
    weights = np.where(deltas > 0, 5.0 * np.abs(deltas) ** 1.3, np.nan)
    weights[0, 3] = np.nan  # a pair the sketch does not have
    L = power_law_vectors(steps, 50, 0.8, np.random.default_rng(10))
    result = diffusion_exponents(steps, L, 1.0, weights, n_boot=20).set_index("start_step")
    assert result.loc[0, "weight_exponent"] == pytest.approx(1.3)
    assert result.loc[0, "weight_n_points"] == 4 and result.loc[1, "weight_n_points"] == 4
    # Two later checkpoints are too few for a slope (min_points = 3): NaN, not an error.
    assert (
        result.loc[4, "n_points"] == 2
        and np.isnan(result.loc[4, ["kl_exponent", "kl_exponent_low", "weight_exponent"]].astype(float)).all()
    )
    assert 8 in result.index and 16 not in result.index


def test_missing_checkpoints_and_texts():
    steps = np.array([0, 1, 2, 4, 8, 16])
    rng = np.random.default_rng(11)
    L = power_law_vectors(steps, 80, 1.0, rng)
    full = diffusion_exponents(steps, L, 1.0, n_boot=30)
    with_gaps = L.copy()
    with_gaps[:, 5] = np.nan  # a text one checkpoint lacks: dropped everywhere
    with_gaps[2, 5:9] = np.nan
    with_gaps[3] = np.nan  # a checkpoint without vectors (weights only, say)
    result = diffusion_exponents(steps, with_gaps, 1.0, n_boot=30).set_index("start_step")
    assert result.loc[0, "n_points"] == 4
    assert np.isnan(result.loc[4, "kl_exponent"]) and result.loc[4, "n_points"] == 0
    expected = diffusion_exponents(
        np.delete(steps, 3), np.delete(np.delete(L, [5, 6, 7, 8], axis=1), 3, axis=0), 1.0, n_boot=30
    )
    assert result.loc[0, "kl_exponent"] == pytest.approx(expected.iloc[0]["kl_exponent"])
    assert full.iloc[0]["kl_exponent"] != pytest.approx(result.loc[0, "kl_exponent"])
    with pytest.raises(ValueError, match="increasing"):
        diffusion_exponents(steps[::-1], L, 1.0)


def test_bootstrap_is_reproducible():
    steps = np.array([0, 1, 2, 4, 8, 16])
    L = power_law_vectors(steps, 40, 0.8, np.random.default_rng(12))
    pd.testing.assert_frame_equal(diffusion_exponents(steps, L, 1.0), diffusion_exponents(steps, L, 1.0))


# ------------------------------------------------------------------------------- agreement


def test_agreement_of_proportional_estimates():
    rng = np.random.default_rng(13)
    exact = np.exp(rng.normal(-6, 1, 30))
    result = agreement(2.0 * exact, exact)
    assert result == pytest.approx({"pearson_log": 1.0, "spearman": 1.0, "median_ratio": 2.0, "n": 30})


def test_agreement_drops_unusable_pairs_and_ranks_monotone_transforms():
    exact = np.array([1e-4, 1e-3, 1e-2, 1e-1, 1.0, np.nan, 0.5])
    llv = np.array([1e-4, 4e-3, 5e-3, 3e-1, 2.0, 1.0, 0.0])
    result = agreement(llv, exact)
    assert result["n"] == 5
    assert result["spearman"] == pytest.approx(1.0)
    assert result["pearson_log"] < 1.0
    assert result["median_ratio"] == pytest.approx(2.0)
    assert math.isnan(agreement([1.0, 2.0], [1.0, 2.0])["spearman"])


# ------------------------------------------------------------------------------- warehouse tables


def warehouse(
    connection,
    suites=("s",),
    sizes=(("a", 10), ("b", 100)),
    seeds=(1, 2),
    steps=(0, 1, 2, 4, 8, 16),
    n_texts=40,
    alpha=0.8,
):
    rng = np.random.default_rng(14)
    vectors, checkpoints, distances, vs_exact = [], [], [], []
    for suite in suites:
        for size, n_params in sizes:
            for step in steps:
                checkpoints.append((suite, size, step, n_params))
            for seed in seeds:
                L = power_law_vectors(np.array(steps), n_texts, alpha, rng)
                for i, step in enumerate(steps):
                    vectors += [(suite, size, step, seed, text, L[i, text]) for text in range(n_texts)]
                for i, step_a in enumerate(steps):
                    for step_b in steps[i + 1 :]:
                        distances.append((suite, size, seed, step_a, step_b, 2.0 * (step_b - step_a) ** 1.5))
            for k in range(6):
                exact = 10.0 ** (-k)
                vs_exact.append((suite, size, 1.5 * exact, exact))
    frames = {
        "stg_loglik": pd.DataFrame(vectors, columns=["suite", "size", "step", "seed", "text_id", "logprob"]),
        "stg_loglik_texts": pd.DataFrame(
            [(s, t, 100 + t) for s in suites for t in range(n_texts)], columns=["suite", "text_id", "n_bytes"]
        ),
        "stg_checkpoints": pd.DataFrame(checkpoints, columns=["suite", "size", "step", "n_params"]),
        "mart_weight_distances": pd.DataFrame(
            distances, columns=["suite", "size", "seed", "step_a", "step_b", "sq_dist_sketch"]
        ),
        "mart_loglik_vs_exact": pd.DataFrame(
            vs_exact, columns=["suite", "size", "kl_llv_bits_per_byte", "kl_exact_bits_per_byte"]
        ),
    }
    for name, frame in frames.items():
        connection.register("frame", frame)
        connection.execute(f"create table {name} as select * from frame")
        connection.unregister("frame")
    return frames


def test_tables_from_a_warehouse(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        frames = warehouse(connection)
        write_tables(connection, compute_tables(connection, n_boot=50))
        for table, columns in TABLES.items():
            described = connection.execute(f"describe {table}").fetchall()
            assert [(row[0], row[1]) for row in described] == [(name, kind.upper()) for name, kind in columns]
        model_map_rows = connection.execute("select * from loglik_model_map").df()
        exponents = connection.execute("select * from diffusion_exponents").df()
        agreement_rows = connection.execute("select * from loglik_exact_agreement order by size").df()

    # One map for the suite: 2 sizes x 2 seeds x 6 steps, and its distances are the KL estimates.
    assert len(model_map_rows) == 24 and set(model_map_rows["n_params"]) == {10, 100}
    vectors = frames["stg_loglik"].set_index(["size", "seed", "step", "text_id"])["logprob"]
    mean_bytes = frames["stg_loglik_texts"]["n_bytes"].mean()
    a = model_map_rows.set_index(["size", "seed", "step"])
    one, other = ("a", 1, 16), ("b", 2, 16)
    kl = to_bits_per_byte(kl_estimate(vectors.loc[one].to_numpy(), vectors.loc[other].to_numpy()), mean_bytes)
    planar = (a.loc[one, "x"] - a.loc[other, "x"]) ** 2 + (a.loc[one, "y"] - a.loc[other, "y"]) ** 2
    assert planar <= kl * (1 + 1e-9)
    assert planar >= kl * (a["explained_x"].iloc[0] + a["explained_y"].iloc[0]) * 0.1

    # Per seed: every start step but the last, the weight slope exact, the KL slope near alpha.
    assert len(exponents) == 2 * 2 * 5
    assert exponents["weight_exponent"].dropna().to_numpy() == pytest.approx(1.5)
    first = exponents[exponents["start_step"] == 0]
    assert (first["n_points"] == 5).all() and (first["weight_n_points"] == 5).all()
    assert first["kl_exponent"].to_numpy() == pytest.approx(0.8, abs=0.35)

    assert agreement_rows["size"].tolist() == ["a", "all", "b"]
    assert agreement_rows["n_pairs"].tolist() == [6, 12, 6]
    assert agreement_rows["median_ratio"].to_numpy() == pytest.approx(1.5)
    assert agreement_rows["spearman"].to_numpy() == pytest.approx(1.0)


def test_an_empty_lake_gives_empty_tables_with_their_columns(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        frames = warehouse(connection)
        for name in frames:
            connection.execute(f"delete from {name}")
        tables = compute_tables(connection)
        assert all(frame.empty for frame in tables.values())
        write_tables(connection, tables)
        for table, columns in TABLES.items():
            assert connection.execute(f"select count(*) from {table}").fetchone() == (0,)
            described = connection.execute(f"describe {table}").fetchall()
            assert [(row[0], row[1]) for row in described] == [(name, kind.upper()) for name, kind in columns]


def test_weights_without_vectors_still_give_weight_exponents(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        warehouse(connection)
        connection.execute("delete from stg_loglik where size = 'b'")
        exponents = compute_tables(connection, n_boot=10)["diffusion_exponents"]
    b = exponents[exponents["size"] == "b"]
    assert len(b) == 10 and (b["n_points"] == 0).all() and b["kl_exponent"].isna().all()
    assert b["weight_exponent"].dropna().to_numpy() == pytest.approx(1.5)
    assert LN2 == pytest.approx(math.log(2))


def test_the_dagster_asset_writes_the_tables_into_the_warehouse(tmp_path):
    import dagster as dg

    from orchestration.defs.analysis_tables import loglik_analysis
    from orchestration.defs.resources import SeedconvSettings

    settings = SeedconvSettings(warehouse_root=str(tmp_path))
    with duckdb.connect(str(settings.load().paths.duckdb)) as connection:
        warehouse(connection, steps=(0, 1, 2, 4))
    result = dg.materialize([loglik_analysis], resources={"seedconv": settings})
    assert result.success
    metadata = result.asset_materializations_for_node("loglik_analysis")[0].metadata
    assert metadata["loglik_model_map_rows"].value == 16 and metadata["diffusion_exponents_rows"].value == 12
    with duckdb.connect(str(settings.load().paths.duckdb), read_only=True) as connection:
        assert connection.execute("select count(*) from loglik_exact_agreement").fetchone() == (3,)
    assert {key.to_user_string() for key in loglik_analysis.dependency_keys} == {
        "stg_loglik",
        "stg_loglik_texts",
        "stg_checkpoints",
        "mart_weight_distances",
        "mart_loglik_vs_exact",
    }
