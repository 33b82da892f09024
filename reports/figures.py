"""The report's figures: a registry of what each draws, from which query, with which caption.

A figure is data first: its query (reports/queries/<name>.sql, runnable as it is in DuckDB's
shell on the published warehouse) returns every suite's rows, `suite` first, and the report
draws one suite's (`rows_for_suite`), offering those exact numbers beside the image. The plots
are pure functions of those rows (reports/plots.py). Which warehouse relations a figure reads is
read off its SQL (`FigureSpec.reads`), and its caption is a template rendered from the settings
it depends on (`FigureSpec.caption_for`). A table of the report (`TableSpec`, the registry
`TABLES`) is the same without the plot: its query's rows are shown as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import sqlglot  # noqa: E402
from sqlglot import exp  # noqa: E402

from extract.config import BootstrapConfig, IclConfig, Settings  # noqa: E402
from reports.dbt_vars import regime_settings  # noqa: E402
from reports.plots import (  # noqa: E402
    no_data_figure,
    plot_blimp_convergence,
    plot_by_level,
    plot_coefficients,
    plot_diffusion_exponents,
    plot_fingerprint_regimes,
    plot_icl,
    plot_kl_distribution,
    plot_kl_scale,
    plot_layer_convergence,
    plot_llv_vs_exact,
    plot_masked_convergence,
    plot_model_map,
    plot_overview,
    plot_similarity_curves,
    plot_tag_groups,
    plot_top1_agreement,
    plot_trajectory_exponents,
    plot_trajectory_movement,
    plot_variance,
)
from reports.style import apply_style  # noqa: E402

QUERIES = Path(__file__).resolve().parent / "queries"


@cache
def relations_read(sql: str) -> tuple[str, ...]:
    """The tables and views a query reads (names, sorted), from its SQL; its CTEs are not among them."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return tuple(sorted({table.name for table in tree.find_all(exp.Table) if table.name} - ctes))


@dataclass(frozen=True)
class QueryFile:
    """reports/queries/<name>.sql: every suite's rows, `suite` the first column; no parameters."""

    name: str

    @property
    def path(self) -> Path:
        return QUERIES / f"{self.name}.sql"

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def reads(self) -> tuple[str, ...]:
        return relations_read(self.sql)


def caption_values(settings: Settings | None = None, suite: str | None = None) -> dict[str, object]:
    """The named values a caption template may use: the ICL settings (`settings.icl`, the defaults when
    `settings` is None), the bootstrap's level, and the fingerprint regimes' thresholds and step gap
    (the dbt vars, `suite`'s own where regime_suites sets them)."""
    icl = settings.icl if settings is not None else IclConfig()
    bootstrap = settings.bootstrap if settings is not None else BootstrapConfig()
    regimes = regime_settings(suite)
    return {
        "target_position": icl.target_position,
        # the scored token's ordinal, as the paper words it: index 499 is the 500th token
        "target_token": ordinal(icl.target_position + 1),
        "short_context": icl.short_context,
        "long_context": icl.long_context,
        "regime_tau_low": regimes.tau_low,
        "regime_tau_high": regimes.tau_high,
        "regime_gap": regimes.gap,
        "bootstrap_level": f"{bootstrap.level:.0%}".replace("%", " %"),
    }


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st, ..., 500th."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True)
class ReportSpec:
    """What a figure and a table of the report share: a name (also its query file's,
    reports/queries/<name>.sql), a title, and a caption template."""

    name: str
    title: str
    # One sentence, what it shows: a str.format template over caption_values' names.
    caption_template: str

    @property
    def query_file(self) -> QueryFile:
        return QueryFile(self.name)

    @property
    def sql(self) -> str:
        return self.query_file.sql

    @property
    def reads(self) -> tuple[str, ...]:
        """The warehouse relations (marts, seeds and Python-written tables) its query reads."""
        return self.query_file.reads

    @property
    def source(self) -> str:
        """What the report names as its source: the relations it reads."""
        return ", ".join(self.reads)

    def caption_for(self, settings: Settings | None = None, suite: str | None = None) -> str:
        """The caption with the values it names from `settings` (the defaults when None) and the dbt
        vars (`suite`'s own where it has them)."""
        return self.caption_template.format(**caption_values(settings, suite))

    def applies_to(self, objective: str) -> bool:
        return objective in self.objectives


@dataclass(frozen=True)
class FigureSpec(ReportSpec):
    plot: Callable[[pd.DataFrame], plt.Figure]
    # A source a suite may have no rows in (a lake extracted before fingerprints and log-likelihood
    # vectors existed): draw a figure saying so instead of failing the report.
    optional: bool = False
    # The suites it is drawn for, by objective (mart_suites): a masked LM has no ICL score,
    # log-likelihood vector or BLiMP score, and a causal suite has no masked positions.
    objectives: tuple[str, ...] = ("causal", "masked")


@dataclass(frozen=True)
class TableSpec(ReportSpec):
    """A table of the report: its query's rows (one suite's) shown as they are."""

    objectives: tuple[str, ...] = ("causal", "masked")
    digits: int = 4  # significant digits of its floats on the page (similarities near 1 need more)


NOUN_TAGS = ("NN", "NNS", "NNP", "NNPS")
VERB_TAGS = ("VB", "VBD", "VBG", "VBN", "VBP", "VBZ")
FEHLAUER = "Fehlauer et al. 2025"

# The report's figures, in the order of the page: the papers' figures and tables under their own
# numbers (README, "Figures and tables"), then ours. A name says whose it is: fehlauer_figN_...,
# mcentire_tableN_..., kishino_... (the KL-scale paper's figures are not numbered in our copy), and
# ours_... for analyses the papers do not have.
FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "fehlauer_fig1_convergence",
        f"Figure 1 ({FEHLAUER}): convergence over training",
        "Top: expected convergence across seeds per model size, with its {bootstrap_level} interval from a "
        "bootstrap over seeds and contexts together (convergence_intervals). Mid-top: each model's KL to the "
        "uniform (solid) and unigram (dashed) distributions. "
        "Mid-bottom: the ICL score (the {target_token} token's surprisal given {short_context} minus "
        "{long_context} tokens of context). Bottom: cross-entropy. Bands below the top: one standard deviation "
        "across seeds. Markers on the E[conv] curves are the turning points between the four phases "
        "(convergence_phases), bars where the seed pairs' own curves put them (central 80 %).",
        plot_overview,
    ),
    FigureSpec(
        "fehlauer_fig2_blimp",
        f"Figure 2, left ({FEHLAUER}): convergence on BLiMP minimal pairs",
        "Per size: the expected two-point KL between seeds restricted to each minimal pair's two sentences (minus "
        "it, E[conv]; per pair, then per paradigm, then over the paradigms), with a band of one standard "
        "deviation across seed pairs; beside it BLiMP accuracy, the share of pairs whose grammatical sentence "
        "is the more probable.",
        plot_blimp_convergence,
        optional=True,
        objectives=("causal",),
    ),
    FigureSpec(
        "fehlauer_fig2_masked",
        f"Figure 2, right ({FEHLAUER}): masked-LM convergence over training",
        "Expected convergence of masked language models across seeds per size, each target predicted from its "
        "window with that token masked, with its {bootstrap_level} interval from a bootstrap over seeds and "
        "contexts together (convergence_intervals).",
        plot_masked_convergence,
        objectives=("masked",),
    ),
    FigureSpec(
        "fehlauer_fig3_frequency",
        f"Figure 3, left ({FEHLAUER}): convergence by token frequency",
        "Expected convergence restricted to contexts whose target token falls in each log-spaced frequency bin "
        "(the token type's count in the frequency corpus), one panel per model size.",
        plot_by_level("expected_conv", "E[conv | frequency bin]  (nats)"),
    ),
    FigureSpec(
        "fehlauer_fig3_pos",
        f"Figure 3, centre ({FEHLAUER}): convergence of function and content words",
        "Expected convergence restricted to contexts whose target token is a function word the paper names (DT, "
        "PRP, IN, MD; solid) or a content word (nouns, verbs, JJ; dashed), one panel per size.",
        plot_by_level("expected_conv", "E[conv | tag]  (nats)", ordered=False),
    ),
    FigureSpec(
        "fehlauer_fig3_final_surprisal",
        f"Figure 3, right ({FEHLAUER}): convergence by final surprisal",
        "Expected convergence restricted to contexts by how surprising their target token is to the size's final "
        "checkpoint (log-spaced bins in bits); a size whose final checkpoint is not extracted yet says so.",
        plot_by_level("expected_conv", "E[conv | final surprisal]  (nats)"),
    ),
    FigureSpec(
        "fehlauer_fig4_variance",
        f"Figure 4 ({FEHLAUER}): how convergence varies across contexts",
        "conv(s<t) over training per size, averaged over contexts, with a band of one standard deviation across "
        "contexts.",
        plot_variance,
    ),
    FigureSpec(
        "fehlauer_fig7_noun_verb_tags",
        f"Figure 7 ({FEHLAUER}): convergence of noun and verb subclasses",
        "Expected convergence restricted to contexts whose target token has each noun tag (top) or verb tag "
        "(bottom), one column per size; the table holds every Penn tag with its count of contexts.",
        plot_tag_groups({"noun tags": NOUN_TAGS, "verb tags": VERB_TAGS}, "expected_conv", "E[conv | tag]  (nats)"),
    ),
    FigureSpec(
        "fehlauer_fig8_regression",
        f"Figure 8 ({FEHLAUER}): what predicts convergence",
        "Coefficients of log frequency and model size in a per-step regression of conv on log frequency, the "
        "target's and previous token's tags and model size, with 95% intervals clustered by token type.",
        plot_coefficients,
    ),
    FigureSpec(
        "fehlauer_fig9_cross_entropy_frequency",
        f"Figure 9, left ({FEHLAUER}): cross-entropy by token frequency",
        "The models' mean surprisal (over seeds) on contexts in each frequency bin of the target token, one panel "
        "per model size.",
        plot_by_level("cross_entropy", "cross-entropy  (nats)"),
    ),
    FigureSpec(
        "fehlauer_fig9_cross_entropy_pos",
        f"Figure 9, centre ({FEHLAUER}): cross-entropy of function and content words",
        "The models' mean surprisal on contexts whose target is a function word (DT, PRP, IN, MD; solid) or a "
        "content word (nouns, verbs, JJ; dashed), one panel per size.",
        plot_by_level("cross_entropy", "cross-entropy  (nats)", ordered=False),
    ),
    FigureSpec(
        "fehlauer_fig9_cross_entropy_final_surprisal",
        f"Figure 9, right ({FEHLAUER}): cross-entropy by final surprisal",
        "The models' mean surprisal over training on contexts in each final-surprisal bin (bits, at the size's "
        "final checkpoint), one panel per size.",
        plot_by_level("cross_entropy", "cross-entropy  (nats)"),
    ),
    FigureSpec(
        "fehlauer_fig10_previous_pos",
        f"Figure 10 ({FEHLAUER}): convergence by the previous token's tag",
        "Expected convergence restricted to contexts by the Penn tag of the token before the target (the eight "
        "most frequent fine tags), one panel per size (the paper shows its largest size).",
        plot_by_level("expected_conv", "E[conv | previous tag]  (nats)", ordered=False),
    ),
    FigureSpec(
        "fehlauer_fig11_previous_pos_cross_entropy",
        f"Figure 11 ({FEHLAUER}): cross-entropy by the previous token's tag",
        "The models' mean surprisal on contexts by the Penn tag of the token before the target (the eight most "
        "frequent), one panel per size.",
        plot_by_level("cross_entropy", "cross-entropy  (nats)", ordered=False),
    ),
    FigureSpec(
        "ours_kl_distribution",
        "Ours: the distribution of KL between seeds over training",
        "Per size, KL(p_a || p_b) over every evaluation context and ordered seed pair, following llama.cpp's "
        "KL-divergence statistics: the median (line), bands between its 10th and 90th, 1st and 99th, and 0.1th "
        "and 99.9th percentiles, and the mean (dashed), on a log scale. A mean far above the median means seeds "
        "disagree a lot on a few contexts rather than a little everywhere.",
        plot_kl_distribution,
    ),
    FigureSpec(
        "ours_top1_agreement",
        "Ours: top-1 agreement between seeds over training",
        "Per size, the share of contexts where two seeds' most probable next token is the same (llama.cpp's "
        '"same top p" of its KL-divergence statistics), over every ordered seed pair, with ± 1 standard error '
        "across contexts as error bars and the range across seed pairs as a band.",
        plot_top1_agreement,
    ),
    FigureSpec(
        "ours_icl_over_training",
        "Ours: in-context learning per seed",
        "Surprisal of the {target_token} token given {short_context} tokens of context minus given "
        "{long_context} (the ICL score of Figure 1), per size, with a band of one standard deviation across seeds.",
        plot_icl,
        objectives=("causal",),
    ),
    FigureSpec(
        "ours_word_class",
        "Ours: function against content words",
        "Expected convergence restricted to contexts whose target token is a function word or a content word "
        "(penn_tags.word_class; modals count as function words, as in the paper), one panel per size.",
        plot_by_level("expected_conv", "E[conv | word class]  (nats)", ordered=False),
    ),
    FigureSpec(
        "ours_pos_group",
        "Ours: convergence by part-of-speech group",
        "Expected convergence restricted to contexts whose target token's Penn tag falls in each coarse group.",
        plot_by_level("expected_conv", "E[conv | PoS group]  (nats)", ordered=False),
    ),
    FigureSpec(
        "ours_fingerprint_regimes",
        "Ours: fingerprint regimes over training (McEntire 2026's measure)",
        "How far each seed's activation fingerprint moves (1 minus the cosine similarity s_t, log scale), one "
        "column per size: above, from the same seed's checkpoint {regime_gap} steps earlier, McEntire's (2026) "
        "measure, where the suite has it; below (dashed), from its previous log-spaced checkpoint. Shaded: "
        "chaotic if s_t < {regime_tau_low}, stable if s_t > {regime_tau_high}, transition between.",
        plot_fingerprint_regimes,
        optional=True,
    ),
    FigureSpec(
        "ours_fingerprint_similarity",
        "Ours: fingerprint similarity within and across seeds",
        "Per size: the fingerprint distance (1 minus cosine similarity) to the previous log-spaced checkpoint, "
        "averaged over seeds, beside the distance between different seeds at the same step (mean and least "
        "similar pair) and 1 minus their linear CKA. The cross-seed cosine compares raw hidden coordinates, "
        "which each seed lays out in its own basis, so near 0 means unaligned bases; CKA does not depend on the "
        "basis.",
        plot_similarity_curves,
        optional=True,
    ),
    FigureSpec(
        "kishino_model_map",
        "After Kishino et al. 2026: every model in one space",
        "Each checkpoint of each seed and size placed by its log-likelihood vector (double-centred, first two "
        "principal coordinates), scaled so that squared distance is the KL estimate in bits per byte; lines follow "
        "one seed through training.",
        plot_model_map,
        optional=True,
        objectives=("causal",),
    ),
    FigureSpec(
        "kishino_diffusion_exponents",
        "After Kishino et al. 2026: diffusion exponents over training",
        "For each start checkpoint, the slope of log KL(t0, t0+Δ) against log Δ over every later checkpoint (95% "
        "bootstrap interval over texts), beside the same slope for the squared distance between weights; "
        "1 is diffusive, below 1 subdiffusive.",
        plot_diffusion_exponents,
        optional=True,
        objectives=("causal",),
    ),
    FigureSpec(
        "ours_loglik_vs_exact",
        "Ours: log-likelihood-vector KL against exact KL",
        "For pairs of seeds at the same step: the KL estimated from log-likelihood vectors against the exact "
        "per-token KL (symmetrised, mean over contexts), both in bits per byte, with the line of equality.",
        plot_llv_vs_exact,
        optional=True,
        objectives=("causal",),
    ),
    FigureSpec(
        "kishino_kl_scale",
        "After Kishino et al. 2026: the KL scale",
        "Log-likelihood-vector KL (bits per byte) between consecutive checkpoints of one seed, between seeds at one "
        "step and between sizes of one seed at one step, over training (median over seeds or seed pairs, band: "
        "their range), on one log scale; the grey bands are the paper's own figures for Pythia on the Pile "
        "(consecutive 410M checkpoints after step 10k about 0.02-0.07, seeds about 0.1, sizes 0.3-2), a "
        "different corpus and far larger models than a mini suite.",
        plot_kl_scale,
        optional=True,
        objectives=("causal",),
    ),
    FigureSpec(
        "ours_trajectory_movement",
        "Ours: how far each seed moves between checkpoints",
        "Per size, the exact KL(p_t || p_previous) between each seed's next-token distributions at a checkpoint "
        "and at its previous one, averaged over contexts and seeds (band: ± 1 standard deviation across seeds), "
        "beside the mean KL between seeds at the same step (dashed); log-spaced checkpoints lie ever further "
        "apart, so late points span more training.",
        plot_trajectory_movement,
        optional=True,
    ),
    FigureSpec(
        "ours_trajectory_exponents",
        "Ours: diffusion exponents from the exact KL, beside Kishino et al.'s estimator",
        "Per size and anchor step t₀: the slope of log KL(t₀, t₀+Δ) on log Δ over every later checkpoint, with KL "
        "the exact symmetric per-token KL (circles, {bootstrap_level} bootstrap interval over evaluation windows), "
        "estimated from log-likelihood vectors as Kishino et al. 2026 do (squares, interval over texts), and the "
        "same slope for the squared weight distance (triangles), one point per seed; 1 is diffusive.",
        plot_trajectory_exponents,
        optional=True,
    ),
    FigureSpec(
        "ours_layer_convergence",
        "Ours: seed convergence layer by layer",
        "Per size, the logit lens (the model's final norm and output embedding applied after each layer; 0 is the "
        "embeddings): above, E[conv] between seeds at each layer and step; below, how far each layer's "
        "distribution still is from the seed's own output, KL(p_final || p_layer), on a log colour scale.",
        plot_layer_convergence,
        optional=True,
    ),
    FigureSpec(
        "ours_blimp_fields",
        "Ours: BLiMP convergence by linguistic field",
        "BLiMP E[conv] averaged over the paradigms of each linguistic field (morphology, syntax, semantics, "
        "their interfaces), one panel per size, with the field's accuracy in the table.",
        plot_by_level("expected_conv", "BLiMP E[conv | field]  (nats)", ordered=False),
        optional=True,
        objectives=("causal",),
    ),
)

# Fehlauer et al. 2025, Table 1 (the report's token rankings): a query file like the figures'.
TOKEN_RANKINGS = QueryFile("fehlauer_table1_token_rankings")
# The contexts where the seeds disagree most, with each seed's top predictions: a query file too.
DIVERGENT_CONTEXTS = QueryFile("ours_divergent_contexts")

# Which measure a regime table's rows use, and its thresholds (dbt vars; a suite's own where set).
REGIME_MEASURES = (
    " Rows `fixed_gap` compare each checkpoint with the same seed's {regime_gap} steps earlier (the paper's "
    "measure, its Δ = 50), where the suite has both; rows `log_spaced` with its previous log-spaced checkpoint. "
    "Chaotic if s_t < {regime_tau_low}, stable if s_t > {regime_tau_high}, transition between."
)

# McEntire (2026)'s tables, after the figures; each a query file like a figure's.
TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "mcentire_table1_final_loss",
        "McEntire (2026), Table 1: final loss across seeds",
        "Per size: each seed's cross-entropy on the evaluation tokens (nats per token; the paper's is "
        "WikiText-103 validation loss) at the size's last step, with the mean, sample standard deviation and "
        "range across seeds, and their coefficient of variation (100 × std / mean).",
    ),
    TableSpec(
        "mcentire_table2_regime_entry",
        "McEntire (2026), Table 2: when the seeds enter each regime",
        "Per size and measure: the first step at which each seed is in each fingerprint regime, with the mean, "
        "sample standard deviation (the paper's ± steps of synchronisation) and range across the seeds that "
        "enter it." + REGIME_MEASURES,
    ),
    TableSpec(
        "mcentire_table3_regime_share",
        "McEntire (2026), Table 3: training spent in each regime",
        "Per size and measure: the percentage of each seed's checkpoints in each regime, averaged across seeds, "
        "and the cross-seed regime agreement, the percentage of checkpoints where every seed is in the same "
        "regime. As in the paper, the measure's first checkpoint (nothing to compare it with) counts in every "
        "denominator, so the three shares sum to less than 100 %." + REGIME_MEASURES,
    ),
    TableSpec(
        "mcentire_table4_regime_similarity",
        "McEntire (2026), Table 4: fingerprint similarity by regime",
        "Per size and measure: the mean similarity s_t of the checkpoints in each regime, taken per seed and then "
        "averaged across seeds (n_seeds: the seeds ever in the regime)." + REGIME_MEASURES,
        digits=6,
    ),
)


def suite_objectives(database: Path) -> dict[str, str]:
    """Every suite with convergence rows, with its objective (`causal` or `masked`), in name order."""
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            "select suite, objective from mart_suites "
            "where suite in (select suite from mart_expected_convergence) order by suite"
        ).fetchall()
    return dict(rows)


def rows_for_suite(frame: pd.DataFrame, suite: str) -> pd.DataFrame:
    """One suite's rows of a query file's result, in its order, without the `suite` column.

    DuckDB returns an integer (or boolean) column holding NULLs as a nullable dtype; where this
    suite's rows hold none, the column is the plain dtype a query for this suite alone returns.
    """
    rows = frame[frame["suite"] == suite].drop(columns="suite").reset_index(drop=True)
    for column, dtype in rows.dtypes.items():
        masked = hasattr(dtype, "numpy_dtype") and dtype.kind in "iub" and dtype != dtype.numpy_dtype
        if masked and not rows[column].isna().any():
            rows[column] = rows[column].to_numpy(dtype=dtype.numpy_dtype)
    return rows


def query(database: Path, sql: str, suite: str | None = None) -> pd.DataFrame:
    """Runs a query file's SQL on the warehouse: every suite's rows, or with `suite` that suite's
    (`rows_for_suite`)."""
    with duckdb.connect(str(database), read_only=True) as connection:
        frame = connection.execute(sql).df()
    return frame if suite is None else rows_for_suite(frame, suite)


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


def table_by_name(name: str) -> TableSpec:
    for spec in TABLES:
        if spec.name == name:
            return spec
    raise KeyError(name)
