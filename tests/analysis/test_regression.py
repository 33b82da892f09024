import numpy as np
import pandas as pd
import pytest

from analysis.regression import fit_all_steps, fit_step


def synthetic(n_types=300, per_type=8, seed=0):
    """Contexts whose conv follows known coefficients, with a shared effect per token type."""
    rng = np.random.default_rng(seed)
    token_id = np.repeat(np.arange(n_types), per_type)
    log_frequency = np.repeat(rng.uniform(0, 6, n_types), per_type)
    pos = np.repeat(rng.choice(["NN", "NN", "NN", "VB", "DT"], n_types), per_type)
    prev_pos = rng.choice(["DT", "DT", "IN", "JJ"], n_types * per_type)
    size = rng.choice(["s", "l"], n_types * per_type)
    type_effect = np.repeat(rng.normal(0, 0.05, n_types), per_type)
    conv = (
        -1.0
        + 0.2 * log_frequency
        + np.select([pos == "VB", pos == "DT"], [-0.3, 0.4], 0.0)
        + np.select([prev_pos == "IN", prev_pos == "JJ"], [0.1, -0.2], 0.0)
        + np.where(size == "l", 0.5, 0.0)
        + type_effect
        + rng.normal(0, 0.1, n_types * per_type)
    )
    return pd.DataFrame(
        {
            "suite": "synthetic",
            "step": 64,
            "size": size,
            "n_params": np.where(size == "l", 1000, 100),
            "token_id": token_id,
            "conv": conv,
            "log_frequency": log_frequency,
            "pos": pos,
            "prev_pos": prev_pos,
        }
    )


def test_recovers_known_coefficients_with_reference_levels():
    fit = fit_step(synthetic()).set_index("term")
    expected = {
        "Intercept": -1.0,
        "log_frequency": 0.2,
        "pos=VB": -0.3,
        "pos=DT": 0.4,
        "prev_pos=IN": 0.1,
        "prev_pos=JJ": -0.2,
        "size=l": 0.5,
    }
    assert set(fit.index) == set(expected), "one level of each categorical is the reference"
    for term, value in expected.items():
        assert fit.loc[term, "estimate"] == pytest.approx(value, abs=4 * fit.loc[term, "std_error"])
    assert fit["reference"].iloc[0] == "pos=NN; prev_pos=DT; size=s"
    assert fit["n_clusters"].iloc[0] == 300
    assert fit["identifiable"].all()


def test_rare_tags_are_pooled_so_the_design_stays_identifiable():
    data = synthetic()
    data.loc[:1, "pos"] = "TO"  # a tag seen twice
    fit = fit_step(data).set_index("term")
    assert "pos=other" in fit.index and "pos=TO" not in fit.index
    assert fit["identifiable"].all()


def test_a_singular_design_is_flagged():
    data = synthetic()
    # The only "other" contexts on both sides are the same rows: their two dummies coincide.
    data.loc[:1, ["pos", "prev_pos"]] = ["TO", "VB"]
    assert not fit_step(data)["identifiable"].any()


def test_standard_errors_are_clustered_by_token_type():
    data = synthetic()
    clustered = fit_step(data).set_index("term")
    # Each type's rows duplicated 4x: naive errors would shrink by half, clustered ones barely move.
    repeated = fit_step(pd.concat([data] * 4)).set_index("term")
    ratio = repeated.loc["log_frequency", "std_error"] / clustered.loc["log_frequency", "std_error"]
    assert 0.8 < ratio < 1.2


def test_rows_without_tags_are_dropped_and_steps_fitted_separately():
    data = synthetic()
    data.loc[:49, "pos"] = None
    later = synthetic(seed=1).assign(step=128)
    fits = fit_all_steps(pd.concat([data, later]))
    assert sorted(fits["step"].unique()) == [64, 128]
    assert fits[fits.step == 64]["n_obs"].iloc[0] == len(data) - 50


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="prev_pos"):
        fit_all_steps(synthetic().drop(columns="prev_pos"))
