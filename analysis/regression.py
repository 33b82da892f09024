"""Which features of a context predict its convergence: one OLS per training step.

    conv(s_<t) ~ log frequency of s_t + PoS of s_t + PoS of s_{t-1} + model size

fitted on every context of every size at one step (Fehlauer et al.). The published
fit had no reference levels, so its one-hot blocks were collinear with the intercept and the
coefficients not identifiable. Here each categorical drops a stated reference level (the most
frequent tag; the smallest model), and standard errors are clustered by token type, since
contexts sharing a target token are not independent draws. Tags too rare to estimate are pooled
as "other", and a step whose design is still singular is marked `identifiable = false`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.tools.sm_exceptions import SingularMatrixWarning

COLUMNS = [
    "suite",
    "step",
    "term",
    "estimate",
    "std_error",
    "t_value",
    "p_value",
    "ci_low",
    "ci_high",
    "n_obs",
    "n_clusters",
    "r_squared",
    "reference",
    "identifiable",
]
# Tags seen fewer times than this at a step are pooled as "other": a tag seen twice is often
# collinear with another dummy (TO always after the same tag), which makes the design singular.
MIN_LEVEL_COUNT = 20
OTHER = "other"
REQUIRED = ["suite", "size", "n_params", "step", "token_id", "conv", "log_frequency", "pos", "prev_pos"]


def _reference(values: pd.Series) -> str:
    """The most frequent level, ties broken alphabetically, so the choice is reproducible."""
    counts = values.value_counts()
    return sorted(counts[counts == counts.max()].index)[0]


def pool_rare_levels(values: pd.Series, min_count: int = MIN_LEVEL_COUNT) -> pd.Series:
    counts = values.value_counts()
    rare = counts[counts < min_count].index
    return values.where(~values.isin(rare), OTHER)


def fit_step(data: pd.DataFrame) -> pd.DataFrame:
    """The regression of one (suite, step); `data` has one row per (size, context)."""
    data = data.dropna(subset=["conv", "log_frequency", "pos", "prev_pos"])
    if data.empty:
        return pd.DataFrame(columns=COLUMNS)
    data = data.assign(pos=pool_rare_levels(data["pos"]), prev_pos=pool_rare_levels(data["prev_pos"]))
    pos_ref, prev_ref = _reference(data["pos"]), _reference(data["prev_pos"])
    size_ref = data.sort_values("n_params")["size"].iloc[0]
    terms = ["log_frequency", f"C(pos, Treatment({pos_ref!r}))", f"C(prev_pos, Treatment({prev_ref!r}))"]
    if data["size"].nunique() > 1:
        terms.append(f"C(size, Treatment({size_ref!r}))")
    groups = pd.factorize(data["token_id"])[0]
    model = smf.ols("conv ~ " + " + ".join(terms), data=data)
    # Flagged rather than fitted silently: with a singular design the estimates are arbitrary.
    identifiable = bool(np.linalg.matrix_rank(model.exog) == model.exog.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularMatrixWarning)
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
    ci = fit.conf_int()
    return pd.DataFrame(
        {
            "suite": data["suite"].iloc[0],
            "step": int(data["step"].iloc[0]),
            "term": [_readable(name) for name in fit.params.index],
            "estimate": fit.params.values,
            "std_error": fit.bse.values,
            "t_value": fit.tvalues.values,
            "p_value": fit.pvalues.values,
            "ci_low": ci[0].values,
            "ci_high": ci[1].values,
            "n_obs": int(fit.nobs),
            "n_clusters": int(np.unique(groups).size),
            "r_squared": fit.rsquared,
            "reference": f"pos={pos_ref}; prev_pos={prev_ref}; size={size_ref}",
            "identifiable": identifiable,
        },
        columns=COLUMNS,
    )


def _readable(term: str) -> str:
    """'C(pos, Treatment('NN'))[T.VB]' -> 'pos=VB'; other terms unchanged."""
    if term.startswith("C("):
        variable = term[2 : term.index(",")]
        level = term[term.index("[T.") + 3 : -1]
        return f"{variable}={level}"
    return term


def fit_all_steps(features: pd.DataFrame) -> pd.DataFrame:
    """One regression per (suite, step), stacked."""
    missing = set(REQUIRED) - set(features.columns)
    if missing:
        raise ValueError(f"regression features lack columns {sorted(missing)}")
    fits = [fit_step(group) for _, group in features.groupby(["suite", "step"], sort=True)]
    fits = [fit for fit in fits if not fit.empty]
    return pd.concat(fits, ignore_index=True) if fits else pd.DataFrame(columns=COLUMNS)
