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

from extract.config import IclConfig, Settings  # noqa: E402
from reports.dbt_vars import regime_settings  # noqa: E402
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
    `settings` is None) and the fingerprint regimes' thresholds and step gap (the dbt vars, `suite`'s own
    where regime_suites sets them)."""
    icl = settings.icl if settings is not None else IclConfig()
    regimes = regime_settings(suite)
    return {
        "target_position": icl.target_position,
        "short_context": icl.short_context,
        "long_context": icl.long_context,
        "regime_tau_low": regimes.tau_low,
        "regime_tau_high": regimes.tau_high,
        "regime_gap": regimes.gap,
    }


@dataclass(frozen=True)
class FigureSpec:
    name: str  # also its query file's: reports/queries/<name>.sql
    title: str
    # One sentence, what the figure shows: a str.format template over caption_values' names.
    caption_template: str
    plot: Callable[[pd.DataFrame], plt.Figure]
    # A source a suite may have no rows in (a lake extracted before fingerprints and log-likelihood
    # vectors existed): draw a figure saying so instead of failing the report.
    optional: bool = False
    # The suites it is drawn for, by objective (mart_suites): a masked LM has no ICL score,
    # log-likelihood vector or BLiMP score, and a causal suite has no masked positions.
    objectives: tuple[str, ...] = ("causal", "masked")

    @property
    def query_file(self) -> QueryFile:
        return QueryFile(self.name)

    @property
    def sql(self) -> str:
        return self.query_file.sql

    @property
    def reads(self) -> tuple[str, ...]:
        """The warehouse relations (marts and Python-written tables) its query reads."""
        return self.query_file.reads

    @property
    def source(self) -> str:
        """What the report names as the figure's source: the relations it reads."""
        return ", ".join(self.reads)

    def caption_for(self, settings: Settings | None = None, suite: str | None = None) -> str:
        """The caption with the values it names from `settings` (the defaults when None) and the dbt
        vars (`suite`'s own where it has them)."""
        return self.caption_template.format(**caption_values(settings, suite))

    def applies_to(self, objective: str) -> bool:
        return objective in self.objectives


@dataclass(frozen=True)
class TableSpec:
    """A table of the report: its query's rows (one suite's) shown as they are, with a title and a
    caption template as a figure's."""

    name: str  # also its query file's: reports/queries/<name>.sql
    title: str
    caption_template: str
    objectives: tuple[str, ...] = ("causal", "masked")
    digits: int = 4  # significant digits of its floats on the page (similarities near 1 need more)

    @property
    def query_file(self) -> QueryFile:
        return QueryFile(self.name)

    @property
    def sql(self) -> str:
        return self.query_file.sql

    @property
    def reads(self) -> tuple[str, ...]:
        return self.query_file.reads

    @property
    def source(self) -> str:
        return ", ".join(self.reads)

    def caption_for(self, settings: Settings | None = None, suite: str | None = None) -> str:
        return self.caption_template.format(**caption_values(settings, suite))

    def applies_to(self, objective: str) -> bool:
        return objective in self.objectives


NOUN_AND_VERB_TAGS = ("NN", "NNS", "NNP", "NNPS", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ")


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "figure1_convergence",
        "Convergence over training",
        "Expected convergence across seeds per model size, with a band of one standard deviation across seed "
        "pairs, beside each model's KL to the uniform and to the unigram distribution and its cross-entropy.",
        plot_overview,
    ),
    FigureSpec(
        "figure3_frequency",
        "Convergence by token frequency",
        "Expected convergence restricted to contexts whose target token falls in each frequency bin "
        "(the token type's count in the evaluation data), one panel per model size.",
        plot_by_level("expected_conv", "E[conv | frequency bin]  (nats)"),
    ),
    FigureSpec(
        "figure4_word_class",
        "Convergence by word class",
        "Expected convergence restricted to contexts whose target token's Penn tag falls in each word class.",
        plot_by_level("expected_conv", "E[conv | word class]  (nats)", ordered=False),
    ),
    FigureSpec(
        "figure4_pos",
        "Convergence of noun and verb subclasses",
        "Expected convergence restricted to contexts whose target token has each noun or verb tag; the table "
        "holds every Penn tag with its count of contexts.",
        plot_by_level("expected_conv", "E[conv | tag]  (nats)", only=NOUN_AND_VERB_TAGS, ordered=False),
    ),
    FigureSpec(
        "figure7_final_surprisal",
        "Convergence by final surprisal",
        "Expected convergence restricted to contexts by how surprising their target token still is to the "
        "fully trained models of that size (2-nat bins).",
        plot_by_level("expected_conv", "E[conv | final surprisal]  (nats)"),
    ),
    FigureSpec(
        "figure8_variance",
        "Variance of convergence",
        "How much convergence varies from context to context at each step, per model size.",
        plot_variance,
    ),
    FigureSpec(
        "figure9_previous_pos",
        "Convergence by the previous token's part of speech",
        "Expected convergence restricted to contexts by the word class of the token before the target.",
        plot_by_level("expected_conv", "E[conv | previous word class]  (nats)", ordered=False),
    ),
    FigureSpec(
        "figure10_cross_entropy",
        "Cross-entropy by token frequency",
        "The models' mean surprisal (over seeds) on contexts in each frequency bin of the target token, "
        "one panel per model size.",
        plot_by_level("cross_entropy", "cross-entropy  (nats)"),
    ),
    FigureSpec(
        "figure11_regression",
        "What predicts convergence",
        "Coefficients of log frequency and model size in a per-step regression of conv on log frequency, the "
        "target's and previous token's tags and model size, with 95% intervals clustered by token type.",
        plot_coefficients,
    ),
    FigureSpec(
        "icl_score",
        "In-context learning",
        "Surprisal of the token at position {target_position} given {short_context} tokens of context minus given "
        "{long_context}: how much the models gain from long context, per size, with a band of one standard "
        "deviation across seeds.",
        plot_icl,
        objectives=("causal",),
    ),
    FigureSpec(
        "fingerprint_regimes",
        "Fingerprint regimes over training",
        "How far each seed's activation fingerprint moves (1 minus the cosine similarity s_t, log scale), one "
        "column per size: above, from the same seed's checkpoint {regime_gap} steps earlier, McEntire's (2026) "
        "measure, where the suite has it; below (dashed), from its previous log-spaced checkpoint. Shaded: "
        "chaotic if s_t < {regime_tau_low}, stable if s_t > {regime_tau_high}, transition between.",
        plot_fingerprint_regimes,
        optional=True,
    ),
    FigureSpec(
        "fingerprint_similarity",
        "Fingerprint similarity within and across seeds",
        "Per size: the fingerprint distance (1 minus cosine similarity) to the previous log-spaced checkpoint, "
        "averaged over seeds, beside the distance between different seeds at the same step (mean and least "
        "similar pair) and 1 minus their linear CKA. The cross-seed cosine compares raw hidden coordinates, "
        "which each seed lays out in its own basis, so near 0 means unaligned bases; CKA does not depend on the "
        "basis.",
        plot_similarity_curves,
        optional=True,
    ),
    FigureSpec(
        "loglik_map",
        "Every model in one space",
        "Each checkpoint of each seed and size placed by its log-likelihood vector (double-centred, first two "
        "principal coordinates), scaled so that squared distance is the KL estimate in bits per byte; lines follow "
        "one seed through training.",
        plot_model_map,
        optional=True,
        objectives=("causal",),
    ),
    FigureSpec(
        "diffusion_over_training",
        "Diffusion exponents over training",
        "For each start checkpoint, the slope of log KL(t0, t0+Δ) against log Δ over every later checkpoint (95% "
        "bootstrap interval over texts), beside the same slope for the squared distance between weights; "
        "1 is diffusive, below 1 subdiffusive.",
        plot_diffusion_exponents,
        optional=True,
        objectives=("causal",),
    ),
    FigureSpec(
        "loglik_vs_exact",
        "Log-likelihood-vector KL against exact KL",
        "For pairs of seeds at the same step: the KL estimated from log-likelihood vectors against the exact "
        "per-token KL (symmetrised, mean over contexts), both in bits per byte, with the line of equality.",
        plot_llv_vs_exact,
        optional=True,
        objectives=("causal",),
    ),
    FigureSpec(
        "blimp_convergence",
        "Convergence on BLiMP minimal pairs",
        "Per size: the expected two-point KL between seeds restricted to each minimal pair's two sentences (minus "
        "it, E[conv]; per pair, then per paradigm, then over the paradigms), with a band of one standard "
        "deviation across seed pairs; beside it BLiMP accuracy, the share of pairs whose grammatical sentence "
        "is the more probable (Fehlauer et al. 2025, fig. 2 left).",
        plot_blimp_convergence,
        optional=True,
        objectives=("causal",),
    ),
    FigureSpec(
        "blimp_fields",
        "BLiMP convergence by linguistic field",
        "BLiMP E[conv] averaged over the paradigms of each linguistic field (morphology, syntax, semantics, "
        "their interfaces), one panel per size, with the field's accuracy in the table.",
        plot_by_level("expected_conv", "BLiMP E[conv | field]  (nats)", ordered=False),
        optional=True,
        objectives=("causal",),
    ),
    FigureSpec(
        "masked_convergence",
        "Masked-LM convergence over training",
        "Expected convergence of masked language models across seeds per size, each target predicted from its "
        "window with that token masked, with a band of one standard deviation across seed pairs (Fehlauer et al. "
        "2025, fig. 2 right).",
        plot_masked_convergence,
        objectives=("masked",),
    ),
)

# Table 1 (the report's token rankings): a query file like the figures'.
TOKEN_RANKINGS = QueryFile("table1_token_rankings")

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
