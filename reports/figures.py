"""The report's figures: each a SQL query over the published warehouse and a plot of its rows.

A figure is data first: `FigureSpec.query` returns the exact numbers drawn, which the report
page offers beside the image. Plots (reports/plots.py) are pure functions of those rows, so a
test can draw them from a hand-made frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from reports.dbt_vars import regime_thresholds  # noqa: E402
from reports.plots import (  # noqa: E402
    no_data_figure,
    plot_blimp_convergence,
    plot_by_level,
    plot_coefficients,
    plot_diffusion_exponents,
    plot_fingerprint_regimes,
    plot_icl,
    plot_llv_vs_exact,
    plot_masked_convergence,
    plot_model_map,
    plot_overview,
    plot_similarity_curves,
    plot_variance,
)
from reports.style import apply_style  # noqa: E402


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    caption: str  # one sentence: what the figure shows
    source: str  # the mart it is drawn from
    query: str  # one parameter: the suite
    plot: Callable[[pd.DataFrame], plt.Figure]
    # A source a suite may have no rows in (a lake extracted before fingerprints and log-likelihood
    # vectors existed): draw a figure saying so instead of failing the report.
    optional: bool = False
    # The suites it is drawn for, by objective (mart_suites): a masked LM has no ICL score,
    # log-likelihood vector or BLiMP score, and a causal suite has no masked positions.
    objectives: tuple[str, ...] = ("causal", "masked")

    def applies_to(self, objective: str) -> bool:
        return objective in self.objectives


NOUN_AND_VERB_TAGS = ("NN", "NNS", "NNP", "NNPS", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ")


def _conditional(condition: str, value: str = "expected_conv") -> str:
    return f"""
        select size, n_params, step, level, level_order, n_contexts, {value}
        from mart_conditional_convergence
        where suite = ? and condition = '{condition}'
        order by n_params, level_order, step
    """


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "figure1_convergence", "Convergence over training",
        "Expected convergence across seeds per model size, with a band of one standard deviation across seed "
        "pairs, beside each model's KL to the uniform and to the unigram distribution and its cross-entropy.",
        "mart_expected_convergence, mart_model_stats",
        """
        select e.size, e.step, e.n_params, e.expected_conv, e.band_low, e.band_high,
               m.kl_uniform, m.kl_uniform_seed_std, m.kl_unigram, m.kl_unigram_seed_std,
               m.cross_entropy, m.cross_entropy_seed_std
        from mart_expected_convergence e join mart_model_stats m using (suite, size, step)
        where e.suite = ? order by e.n_params, e.step
        """,
        plot_overview,
    ),
    FigureSpec(
        "figure3_frequency", "Convergence by token frequency",
        "Expected convergence restricted to contexts whose target token falls in each frequency bin "
        "(the token type's count in the evaluation data), one panel per model size.",
        "mart_conditional_convergence (condition = frequency_bin)",
        _conditional("frequency_bin"), plot_by_level("expected_conv", "E[conv | frequency bin]  (nats)"),
    ),
    FigureSpec(
        "figure4_word_class", "Convergence by word class",
        "Expected convergence restricted to contexts whose target token's Penn tag falls in each word class.",
        "mart_conditional_convergence (condition = pos_group)",
        _conditional("pos_group"), plot_by_level("expected_conv", "E[conv | word class]  (nats)", ordered=False),
    ),
    FigureSpec(
        "figure4_pos", "Convergence of noun and verb subclasses",
        "Expected convergence restricted to contexts whose target token has each noun or verb tag; the table "
        "holds every Penn tag with its count of contexts.",
        "mart_conditional_convergence (condition = pos)",
        _conditional("pos"),
        plot_by_level("expected_conv", "E[conv | tag]  (nats)", only=NOUN_AND_VERB_TAGS, ordered=False),
    ),
    FigureSpec(
        "figure7_final_surprisal", "Convergence by final surprisal",
        "Expected convergence restricted to contexts by how surprising their target token still is to the "
        "fully trained models of that size (2-nat bins).",
        "mart_conditional_convergence (condition = final_surprisal_bin)",
        _conditional("final_surprisal_bin"), plot_by_level("expected_conv", "E[conv | final surprisal]  (nats)"),
    ),
    FigureSpec(
        "figure8_variance", "Variance of convergence",
        "How much convergence varies from context to context at each step, per model size.",
        "mart_expected_convergence",
        "select size, n_params, step, conv_variance, conv_std from mart_expected_convergence "
        "where suite = ? order by n_params, step",
        plot_variance,
    ),
    FigureSpec(
        "figure9_previous_pos", "Convergence by the previous token's part of speech",
        "Expected convergence restricted to contexts by the word class of the token before the target.",
        "mart_conditional_convergence (condition = prev_pos_group)",
        _conditional("prev_pos_group"),
        plot_by_level("expected_conv", "E[conv | previous word class]  (nats)", ordered=False),
    ),
    FigureSpec(
        "figure10_cross_entropy", "Cross-entropy by token frequency",
        "The models' mean surprisal (over seeds) on contexts in each frequency bin of the target token, "
        "one panel per model size.",
        "mart_conditional_convergence (condition = frequency_bin)",
        _conditional("frequency_bin", "cross_entropy"), plot_by_level("cross_entropy", "cross-entropy  (nats)"),
    ),
    FigureSpec(
        "figure11_regression", "What predicts convergence",
        "Coefficients of log frequency and model size in a per-step regression of conv on log frequency, the "
        "target's and previous token's tags and model size, with 95% intervals clustered by token type.",
        "regression_coefficients",
        "select step, term, estimate, std_error, ci_low, ci_high, n_obs, r_squared, reference "
        "from regression_coefficients where suite = ? order by term, step",
        plot_coefficients,
    ),
    FigureSpec(
        "icl_score", "In-context learning",
        "Surprisal of the token at position 500 given 50 tokens of context minus given 400: how much the "
        "models gain from long context, per size, with a band of one standard deviation across seeds.",
        "mart_icl_summary",
        "select size, n_params, step, icl_score, icl_score_seed_std from mart_icl_summary "
        "where suite = ? order by n_params, step",
        plot_icl, objectives=("causal",),
    ),
    FigureSpec(
        "fingerprint_regimes", "Fingerprint regimes over training",
        "How far each seed's activation fingerprint moves between consecutive checkpoints (1 minus their cosine "
        "similarity, log scale), one panel per size, on the chaotic, transition and stable regimes set by the "
        f"thresholds {regime_thresholds().chaotic_below} and {regime_thresholds().stable_from} on the similarity.",
        "mart_fingerprint_similarity",
        "select size, n_params, step, seed, prev_step, similarity_prev, regime from mart_fingerprint_similarity "
        "where suite = ? order by n_params, seed, step",
        plot_fingerprint_regimes, optional=True,
    ),
    FigureSpec(
        "fingerprint_similarity", "Fingerprint similarity within and across seeds",
        "Per size: the fingerprint distance (1 minus cosine similarity) between consecutive checkpoints, averaged "
        "over seeds, beside the distance between different seeds at the same step (mean and least similar pair) "
        "and 1 minus their linear CKA. The cross-seed cosine compares raw hidden coordinates, which each seed lays "
        "out in its own basis, so near 0 means unaligned bases; CKA does not depend on the basis.",
        "mart_fingerprint_similarity, mart_fingerprint_cross_seed",
        """
        with consecutive as (
            select size, n_params, step, count(similarity_prev) as n_seeds_consecutive,
                   avg(similarity_prev) as consecutive_mean
            from mart_fingerprint_similarity where suite = $1 group by size, n_params, step
        ),
        cross_seed as (
            select size, n_params, step, n_seeds, n_pairs, mean_similarity as cross_seed_mean,
                   min_similarity as cross_seed_min, mean_cka as cross_seed_cka
            from mart_fingerprint_cross_seed where suite = $1
        )
        select coalesce(c.size, x.size) as size, coalesce(c.n_params, x.n_params) as n_params,
               coalesce(c.step, x.step) as step, c.n_seeds_consecutive, x.n_seeds, x.n_pairs,
               c.consecutive_mean, x.cross_seed_mean, x.cross_seed_min, x.cross_seed_cka
        from consecutive c full outer join cross_seed x on c.size = x.size and c.step = x.step
        order by 2, 1, 3
        """,
        plot_similarity_curves, optional=True,
    ),
    FigureSpec(
        "loglik_map", "Every model in one space",
        "Each checkpoint of each seed and size placed by its log-likelihood vector (double-centred, first two "
        "principal coordinates), scaled so that squared distance is the KL estimate in bits per byte; lines follow "
        "one seed through training.",
        "loglik_model_map",
        "select size, n_params, step, seed, x, y, explained_x, explained_y from loglik_model_map "
        "where suite = ? order by n_params, seed, step",
        plot_model_map, optional=True, objectives=("causal",),
    ),
    FigureSpec(
        "diffusion_over_training", "Diffusion exponents over training",
        "For each start checkpoint, the slope of log KL(t0, t0+Δ) against log Δ over every later checkpoint (95% "
        "bootstrap interval over texts), beside the same slope for the squared distance between weights; "
        "1 is diffusive, below 1 subdiffusive.",
        "diffusion_exponents",
        "select size, n_params, seed, start_step, n_points, kl_exponent, kl_exponent_low, kl_exponent_high, "
        "weight_exponent, weight_n_points from diffusion_exponents where suite = ? order by n_params, seed, start_step",
        plot_diffusion_exponents, optional=True, objectives=("causal",),
    ),
    FigureSpec(
        "loglik_vs_exact", "Log-likelihood-vector KL against exact KL",
        "For pairs of seeds at the same step: the KL estimated from log-likelihood vectors against the exact "
        "per-token KL (symmetrised, mean over contexts), both in bits per byte, with the line of equality.",
        "mart_loglik_vs_exact",
        "select size, n_params, step, seed_a, seed_b, kl_llv_bits_per_byte, kl_exact_bits_per_byte, ratio "
        "from mart_loglik_vs_exact where suite = ? order by n_params, step, seed_a, seed_b",
        plot_llv_vs_exact, optional=True, objectives=("causal",),
    ),
    FigureSpec(
        "blimp_convergence", "Convergence on BLiMP minimal pairs",
        "Per size: the expected two-point KL between seeds restricted to each minimal pair's two sentences (minus "
        "it, E[conv]; per pair, then per paradigm, then over the paradigms), with a band of one standard "
        "deviation across seed pairs; beside it BLiMP accuracy, the share of pairs whose grammatical sentence "
        "is the more probable (Fehlauer et al. 2025, fig. 2 left).",
        "mart_blimp_convergence",
        "select size, n_params, step, n_paradigms, n_pairs, n_seeds, expected_conv, band_low, band_high, "
        "accuracy, accuracy_min, accuracy_max from mart_blimp_convergence where suite = ? order by n_params, step",
        plot_blimp_convergence, optional=True, objectives=("causal",),
    ),
    FigureSpec(
        "blimp_fields", "BLiMP convergence by linguistic field",
        "BLiMP E[conv] averaged over the paradigms of each linguistic field (morphology, syntax, semantics, "
        "their interfaces), one panel per size, with the field's accuracy in the table.",
        "mart_blimp_field",
        "select size, n_params, step, field as level, dense_rank() over (order by field) as level_order, "
        "n_paradigms, expected_conv, accuracy from mart_blimp_field where suite = ? order by n_params, field, step",
        plot_by_level("expected_conv", "BLiMP E[conv | field]  (nats)", ordered=False),
        optional=True, objectives=("causal",),
    ),
    FigureSpec(
        "masked_convergence", "Masked-LM convergence over training",
        "Expected convergence of masked language models across seeds per size, each target predicted from its "
        "window with that token masked, with a band of one standard deviation across seed pairs (Fehlauer et al. "
        "2025, fig. 2 right).",
        "mart_expected_convergence",
        "select size, n_params, step, n_seeds, n_contexts, expected_conv, band_low, band_high "
        "from mart_expected_convergence where suite = ? order by n_params, step",
        plot_masked_convergence, objectives=("masked",),
    ),
)

TOKEN_RANKINGS_QUERY = """
    select size, step, rank_group, rank, token_text, n_occurrences, mean_kl
    from mart_token_rankings where suite = ?
    order by n_params, case rank_group when 'lowest' then 0 when 'middle' then 1 else 2 end, rank
"""


def suite_objectives(database: Path) -> dict[str, str]:
    """Every suite with convergence rows, with its objective (`causal` or `masked`), in name order."""
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            "select suite, objective from mart_suites "
            "where suite in (select suite from mart_expected_convergence) order by suite"
        ).fetchall()
    return dict(rows)


def query(database: Path, sql: str, suite: str) -> pd.DataFrame:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql, [suite]).df()


def render(spec: FigureSpec, data: pd.DataFrame, out_path: Path) -> Path:
    """Draws `data` with the spec's plot and writes a PNG (staged, then renamed)."""
    if data.empty and not spec.optional:
        raise ValueError(f"{spec.name}: no rows in {spec.source}; extract and build the warehouse first")
    apply_style()
    figure = spec.plot(data) if not data.empty else no_data_figure(f"No rows in {spec.source} for this suite.")
    figure.suptitle(spec.title, x=0.01, ha="left", fontsize=12)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    staging = out_path.with_name(f".{out_path.name}")
    figure.savefig(staging, dpi=150, format="png")
    plt.close(figure)
    staging.replace(out_path)
    return out_path


def figure_by_name(name: str) -> FigureSpec:
    for spec in FIGURES:
        if spec.name == name:
            return spec
    raise KeyError(name)

