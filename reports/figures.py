"""The report's figures: each a SQL query over the published warehouse and a plot of its rows.

A figure is data first: `FigureSpec.query` returns the exact numbers drawn, which the report
page offers beside the image. Plots are pure functions of those rows, so a test can draw them
from a hand-made frame. The training-step axis is symmetric-log everywhere, so step 0 shows.
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

from reports.style import apply_style, category_colors, level_colors, size_colors  # noqa: E402


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    caption: str  # one sentence: what the figure shows
    source: str  # the mart it is drawn from
    query: str  # one parameter: the suite
    plot: Callable[[pd.DataFrame], plt.Figure]


def _step_axis(axis) -> None:
    """Called after plotting: symmetric-log steps from 0, so step 0 shows and no negative ticks do."""
    axis.set_xscale("symlog", linthresh=1)
    axis.set_xlim(left=0)
    axis.set_xlabel("training step")


def _sizes(data: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(data.sort_values("n_params")["size"]))


def plot_overview(data: pd.DataFrame) -> plt.Figure:
    """Figure 1: E[conv] with its band across seed pairs, beside the reference KLs and CE."""
    panels = (
        ("expected_conv", None, "Expected convergence", "E[conv]  (nats)"),
        ("kl_uniform", "kl_uniform_seed_std", "KL to uniform", "KL(p ‖ uniform)  (nats)"),
        ("kl_unigram", "kl_unigram_seed_std", "KL to unigram", "KL(p ‖ unigram)  (nats)"),
        ("cross_entropy", "cross_entropy_seed_std", "Cross-entropy", "nats per token"),
    )
    sizes = _sizes(data)
    figure, axes = plt.subplots(1, len(panels), figsize=(16, 3.6), constrained_layout=True)
    for axis, (column, spread, title, label) in zip(axes, panels):
        for size, color in zip(sizes, size_colors(len(sizes))):
            rows = data[data["size"] == size].sort_values("step")
            low, high = (
                (rows["band_low"], rows["band_high"])
                if spread is None
                else (rows[column] - rows[spread], rows[column] + rows[spread])
            )
            axis.fill_between(rows["step"], low, high, color=color, alpha=0.18, linewidth=0)
            axis.plot(rows["step"], rows[column], color=color, marker="o", markersize=2.5, label=size)
        _step_axis(axis)
        axis.set_title(title)
        axis.set_ylabel(label)
    axes[0].legend(title="size", frameon=False)
    return figure


def plot_by_level(
    value: str, ylabel: str, only: tuple[str, ...] | None = None, ordered: bool = True
) -> Callable[[pd.DataFrame], plt.Figure]:
    """Small multiples, one panel per size, one line per level (frequency bin, tag, ...).

    `only` draws just those levels (in that order) while the data keeps all of them; ordered
    levels (bins) get a sequential palette, unordered ones (tags) distinct hues.
    """

    def plot(data: pd.DataFrame) -> plt.Figure:
        if only is not None:
            data = data[data["level"].isin(only)].assign(level_order=lambda d: d["level"].map(only.index))
        sizes = _sizes(data)
        figure, axes = plt.subplots(
            1, len(sizes), figsize=(4.4 * len(sizes), 3.6), sharey=True, constrained_layout=True, squeeze=False
        )
        levels = list(dict.fromkeys(data.sort_values("level_order")["level"]))
        colors = dict(zip(levels, (level_colors if ordered else category_colors)(len(levels))))
        for axis, size in zip(axes[0], sizes):
            for level in levels:
                rows = data[(data["size"] == size) & (data["level"] == level)].sort_values("step")
                axis.plot(rows["step"], rows[value], color=colors[level], marker="o", markersize=2, label=level)
            _step_axis(axis)
            axis.set_title(f"size {size}")
        axes[0][0].set_ylabel(ylabel)
        axes[0][-1].legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        return figure

    return plot


def plot_variance(data: pd.DataFrame) -> plt.Figure:
    sizes = _sizes(data)
    figure, axis = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    for size, color in zip(sizes, size_colors(len(sizes))):
        rows = data[data["size"] == size].sort_values("step")
        axis.plot(rows["step"], rows["conv_variance"], color=color, marker="o", markersize=2.5, label=size)
    _step_axis(axis)
    axis.set_ylabel("Var[conv] across contexts  (nats²)")
    axis.legend(title="size", frameon=False)
    return figure


def plot_coefficients(data: pd.DataFrame) -> plt.Figure:
    """Regression coefficients with 95% intervals over training: log frequency and size."""
    terms = sorted(t for t in data["term"].unique() if t == "log_frequency" or t.startswith("size="))
    figure, axes = plt.subplots(1, max(len(terms), 1), figsize=(4.8 * max(len(terms), 1), 3.6),
                                constrained_layout=True, squeeze=False)
    for axis, term in zip(axes[0], terms):
        rows = data[data["term"] == term].sort_values("step")
        axis.fill_between(rows["step"], rows["ci_low"], rows["ci_high"], color="#4c72b0", alpha=0.18, linewidth=0)
        axis.plot(rows["step"], rows["estimate"], color="#4c72b0", marker="o", markersize=2.5)
        axis.axhline(0, color="#999999", linewidth=0.8)
        _step_axis(axis)
        axis.set_title(term)
    axes[0][0].set_ylabel("coefficient on conv  (nats)")
    return figure


def plot_icl(data: pd.DataFrame) -> plt.Figure:
    sizes = _sizes(data)
    figure, axis = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    for size, color in zip(sizes, size_colors(len(sizes))):
        rows = data[data["size"] == size].sort_values("step")
        axis.fill_between(rows["step"], rows["icl_score"] - rows["icl_score_seed_std"],
                          rows["icl_score"] + rows["icl_score_seed_std"], color=color, alpha=0.18, linewidth=0)
        axis.plot(rows["step"], rows["icl_score"], color=color, marker="o", markersize=2.5, label=size)
    axis.axhline(0, color="#999999", linewidth=0.8)
    _step_axis(axis)
    axis.set_ylabel("ICL score  (nats)")
    axis.legend(title="size", frameon=False)
    return figure


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
        plot_icl,
    ),
)

TOKEN_RANKINGS_QUERY = """
    select size, step, rank_group, rank, token_text, n_occurrences, mean_kl
    from mart_token_rankings where suite = ?
    order by n_params, case rank_group when 'lowest' then 0 when 'middle' then 1 else 2 end, rank
"""


def suites_in(database: Path) -> list[str]:
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute("select distinct suite from mart_expected_convergence order by suite").fetchall()
    return [row[0] for row in rows]


def query(database: Path, sql: str, suite: str) -> pd.DataFrame:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql, [suite]).df()


def render(spec: FigureSpec, data: pd.DataFrame, out_path: Path) -> Path:
    """Draws `data` with the spec's plot and writes a PNG (staged, then renamed)."""
    if data.empty:
        raise ValueError(f"{spec.name}: no rows in {spec.source}; extract and build the warehouse first")
    apply_style()
    figure = spec.plot(data)
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

