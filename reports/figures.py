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
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import SymLogNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from analysis.loglik import agreement  # noqa: E402
from reports.style import (  # noqa: E402
    REGIME_COLORS,
    apply_style,
    category_colors,
    level_colors,
    size_colors,
    step_colormap,
)


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


def _convergence_panel(axis, data: pd.DataFrame, value: str, low: str, high: str) -> None:
    """One line per size over training, with its band [low, high]."""
    sizes = _sizes(data)
    for size, color in zip(sizes, size_colors(len(sizes))):
        rows = data[data["size"] == size].sort_values("step")
        axis.fill_between(rows["step"], rows[low], rows[high], color=color, alpha=0.18, linewidth=0)
        axis.plot(rows["step"], rows[value], color=color, marker="o", markersize=2.5, label=size)
    _step_axis(axis)
    axis.legend(title="size", frameon=False)


def plot_masked_convergence(data: pd.DataFrame) -> plt.Figure:
    """Fehlauer et al. 2025, fig. 2 (right): E[conv] of masked LMs over training, per size."""
    figure, axis = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    _convergence_panel(axis, data, "expected_conv", "band_low", "band_high")
    axis.set_ylabel("E[conv] at masked positions  (nats)")
    return figure


def plot_blimp_convergence(data: pd.DataFrame) -> plt.Figure:
    """Fehlauer et al. 2025, fig. 2 (left): BLiMP E[conv] over training per size, beside accuracy."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.6), constrained_layout=True)
    _convergence_panel(left, data, "expected_conv", "band_low", "band_high")
    left.set_title("Convergence on minimal pairs")
    left.set_ylabel("BLiMP E[conv]  (nats)")
    _convergence_panel(right, data, "accuracy", "accuracy_min", "accuracy_max")
    right.axhline(0.5, color="#999999", linewidth=0.8, linestyle="--")
    right.text(0.99, 0.5, "chance", transform=right.get_yaxis_transform(), ha="right", va="bottom",
               fontsize=8, color="#888888")
    right.set_title("Accuracy (mean over seeds, band: worst to best seed)")
    right.set_ylabel("BLiMP accuracy")
    return figure


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


# ------------------------------------------------------------------------------------------------
# Fingerprints (McEntire) and log-likelihood vectors (Oyama et al.)
# ------------------------------------------------------------------------------------------------

# The regime thresholds, as module constants equal to the dbt defaults (dbt_project.yml vars
# regime_chaotic_below and regime_stable_from). The marts' regime labels only bound the
# thresholds, so the lines are drawn from these; a warehouse built with other --vars is detected
# (its labels disagree with these lines) and the figure says so rather than draw wrong bands.
REGIME_CHAOTIC_BELOW = 0.9
REGIME_STABLE_FROM = 0.99
# 1 - similarity is drawn on a log axis so that 0.9, 0.99 and 0.999 are equally far apart;
# checkpoints with identical fingerprints (distance 0) sit on this floor.
DISTANCE_FLOOR = 1e-7
SIZE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def no_data_figure(message: str = "No data for this suite.") -> plt.Figure:
    figure, axis = plt.subplots(figsize=(7, 2.4), constrained_layout=True)
    axis.axis("off")
    axis.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#666666", transform=axis.transAxes)
    return figure


def _panel_note(axis, message: str) -> None:
    axis.text(0.5, 0.5, message, ha="center", va="center", fontsize=9, color="#888888", transform=axis.transAxes)


def regime_of(similarity: pd.Series) -> pd.Series:
    """The dbt macro fingerprint_regime with the module's thresholds (None where similarity is)."""
    regime = np.where(similarity < REGIME_CHAOTIC_BELOW, "chaotic",
                      np.where(similarity >= REGIME_STABLE_FROM, "stable", "transition"))
    return pd.Series(regime, index=similarity.index).where(similarity.notna())


def thresholds_match(data: pd.DataFrame) -> bool:
    """True when every labelled checkpoint's regime is the one these thresholds give."""
    labelled = data.dropna(subset=["similarity_prev", "regime"])
    return bool((regime_of(labelled["similarity_prev"]) == labelled["regime"]).all())


def _distance(similarity: pd.Series) -> pd.Series:
    return (1.0 - similarity.astype(float)).clip(lower=DISTANCE_FLOOR)


def _regime_axis(axis, distances: pd.Series, shade: bool = True) -> None:
    """Log y axis of 1 - similarity with the thresholds drawn and (`shade`) the three regimes shaded."""
    chaotic_from, stable_below = 1.0 - REGIME_CHAOTIC_BELOW, 1.0 - REGIME_STABLE_FROM
    finite = distances[np.isfinite(distances)]
    low = min(finite.min() if len(finite) else stable_below, stable_below / 10) / 2
    high = max(finite.max() if len(finite) else chaotic_from, chaotic_from * 10) * 2
    axis.set_yscale("log")
    axis.set_ylim(low, high)
    bands = (("stable", (low, stable_below)), ("transition", (stable_below, chaotic_from)),
             ("chaotic", (chaotic_from, high)))
    for regime, (bottom, top) in bands if shade else ():
        axis.axhspan(bottom, top, color=REGIME_COLORS[regime], alpha=0.12, linewidth=0, zorder=0)
        axis.text(0.99, np.sqrt(bottom * top), regime, transform=axis.get_yaxis_transform(), ha="right",
                  va="center", fontsize=7, color=REGIME_COLORS[regime], fontweight="bold", zorder=1.5,
                  bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.7, "linewidth": 0})
    for threshold in (REGIME_CHAOTIC_BELOW, REGIME_STABLE_FROM):
        axis.axhline(1.0 - threshold, color="#777777", linewidth=0.8, linestyle="--", zorder=1)


def plot_fingerprint_regimes(data: pd.DataFrame) -> plt.Figure:
    """Per size, each seed's fingerprint distance to its previous checkpoint over training, on the regimes."""
    data = data.dropna(subset=["similarity_prev"])
    if data.empty:
        return no_data_figure("No consecutive fingerprint similarities for this suite.")
    sizes = _sizes(data)
    seeds = sorted(data["seed"].unique())
    colors = dict(zip(seeds, category_colors(len(seeds))))
    figure, axes = plt.subplots(1, len(sizes), figsize=(4.4 * len(sizes), 3.6), sharey=True,
                                constrained_layout=True, squeeze=False)
    distances = _distance(data["similarity_prev"])
    for axis, size in zip(axes[0], sizes):
        for seed in seeds:
            rows = data[(data["size"] == size) & (data["seed"] == seed)].sort_values("step")
            if len(rows):
                axis.plot(rows["step"], _distance(rows["similarity_prev"]), color=colors[seed], marker="o",
                          markersize=2, linewidth=1, label=f"seed {seed}")
        _regime_axis(axis, distances)
        _step_axis(axis)
        axis.set_title(f"size {size}")
    axes[0][0].set_ylabel("1 − cosine similarity to the previous checkpoint")
    axes[0][-1].legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if not thresholds_match(data):
        figure.text(0.01, 0.0, "The marts' regime labels disagree with the thresholds drawn "
                    f"({REGIME_CHAOTIC_BELOW}, {REGIME_STABLE_FROM}): the warehouse was built with other dbt vars.",
                    fontsize=8, color="#b03a2e", va="bottom")
    return figure


def plot_similarity_curves(data: pd.DataFrame) -> plt.Figure:
    """Per size: consecutive similarity (mean over seeds) beside the cross-seed cosine (mean and
    minimum) and the cross-seed linear CKA (mean)."""
    values = ["consecutive_mean", "cross_seed_mean", "cross_seed_min", "cross_seed_cka"]
    data = data.dropna(subset=values, how="all")
    if data.empty:
        return no_data_figure("No fingerprint similarities for this suite.")
    sizes = _sizes(data)
    consecutive, cross, cka = category_colors(3)
    figure, axes = plt.subplots(1, len(sizes), figsize=(4.4 * len(sizes), 3.6), sharey=True,
                                constrained_layout=True, squeeze=False)
    everything = pd.concat([_distance(data[column].dropna()) for column in values])
    for axis, size in zip(axes[0], sizes):
        rows = data[data["size"] == size].sort_values("step")
        axis.fill_between(rows["step"], _distance(rows["cross_seed_mean"]), _distance(rows["cross_seed_min"]),
                          color=cross, alpha=0.15, linewidth=0)
        axis.plot(rows["step"], _distance(rows["consecutive_mean"]), color=consecutive, marker="o", markersize=2,
                  label="consecutive checkpoints (mean over seeds)")
        axis.plot(rows["step"], _distance(rows["cross_seed_mean"]), color=cross, marker="o", markersize=2,
                  label="across seeds, same step (mean over pairs)")
        axis.plot(rows["step"], _distance(rows["cross_seed_min"]), color=cross, linestyle="--", linewidth=1,
                  label="across seeds (least similar pair)")
        axis.plot(rows["step"], _distance(rows["cross_seed_cka"]), color=cka, marker="o", markersize=2,
                  label="across seeds, 1 − linear CKA (mean over pairs)")
        # The regimes are defined on consecutive similarity: thresholds drawn for reference, bands not.
        _regime_axis(axis, everything, shade=False)
        _step_axis(axis)
        axis.set_title(f"size {size}")
    axes[0][0].set_ylabel("1 − similarity of fingerprints")
    axes[0][-1].legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure


def plot_model_map(data: pd.DataFrame) -> plt.Figure:
    """Every model of the suite in one plane: a point per checkpoint coloured by step, a line per seed."""
    data = data.dropna(subset=["x", "y"])
    if data.empty:
        return no_data_figure("No log-likelihood vectors for this suite.")
    sizes = _sizes(data)
    markers = dict(zip(sizes, SIZE_MARKERS * (len(sizes) // len(SIZE_MARKERS) + 1)))
    norm = SymLogNorm(linthresh=1, vmin=0, vmax=max(float(data["step"].max()), 1.0))
    figure, axis = plt.subplots(figsize=(7.5, 6), constrained_layout=True)
    for (size, _seed), rows in data.groupby(["size", "seed"], sort=False):
        rows = rows.sort_values("step")
        axis.plot(rows["x"], rows["y"], color="#9a9a9a", linewidth=0.7, alpha=0.7, zorder=1)
    for size in sizes:
        rows = data[data["size"] == size]
        points = axis.scatter(rows["x"], rows["y"], c=rows["step"], cmap=step_colormap(), norm=norm, s=16,
                              marker=markers[size], edgecolors="white", linewidths=0.3, zorder=2)
    figure.colorbar(points, ax=axis, label="training step", shrink=0.85)
    axis.set_aspect("equal", adjustable="datalim")
    first = data.iloc[0]
    axis.set_xlabel(f"coordinate 1 ({first['explained_x']:.0%} of the variance)"
                    if pd.notna(first["explained_x"]) else "coordinate 1")
    axis.set_ylabel(f"coordinate 2 ({first['explained_y']:.0%} of the variance)"
                    if pd.notna(first["explained_y"]) else "coordinate 2")
    handles = [Line2D([], [], marker=markers[size], color="#555555", linestyle="", label=f"size {size}")
               for size in sizes]
    handles.append(Line2D([], [], color="#9a9a9a", linewidth=0.7, label="one seed over training"))
    axis.legend(handles=handles, frameon=False, fontsize=7, loc="best")
    axis.set_title("squared distance = KL estimate (bits per byte)", fontsize=9, fontweight="normal")
    return figure


def plot_diffusion_exponents(data: pd.DataFrame) -> plt.Figure:
    """Per size (columns): each seed's KL exponent with its bootstrap interval, and the weights' exponent."""
    if data.empty:
        return no_data_figure("No diffusion exponents for this suite.")
    sizes = _sizes(data)
    seeds = sorted(data["seed"].unique())
    colors = dict(zip(seeds, category_colors(len(seeds))))
    figure, axes = plt.subplots(2, len(sizes), figsize=(4.4 * len(sizes), 6.4), sharey="row", sharex="col",
                                constrained_layout=True, squeeze=False)
    panels = (("kl_exponent", "KL exponent (log-likelihood vectors)"), ("weight_exponent", "squared weight distance"))
    for column, size in enumerate(sizes):
        for row, (value, label) in enumerate(panels):
            axis = axes[row][column]
            for seed in seeds:
                rows = data[(data["size"] == size) & (data["seed"] == seed)].sort_values("start_step")
                if value == "kl_exponent":
                    axis.fill_between(rows["start_step"], rows["kl_exponent_low"].astype(float),
                                      rows["kl_exponent_high"].astype(float), color=colors[seed], alpha=0.15,
                                      linewidth=0)
                axis.plot(rows["start_step"], rows[value].astype(float), color=colors[seed], marker="o",
                          markersize=2, linewidth=1, label=f"seed {seed}")
            axis.axhline(1.0, color="#555555", linewidth=0.9, linestyle="--")
            if not np.isfinite(data.loc[data["size"] == size, value].astype(float)).any():
                _panel_note(axis, "no exponent (too few later checkpoints)")
            _step_axis(axis)
            # Every start step on the axis, even where no slope could be fitted (all NaN).
            axis.set_xlim(0, max(float(data.loc[data["size"] == size, "start_step"].max()), 1.0))
            axis.set_title(f"size {size}: {label}", fontsize=9)
            if row == 0:
                axis.set_xlabel("")
        axes[1][column].set_xlabel("start checkpoint t₀ (training step)")
    axes[0][0].set_ylabel("slope of log KL(t₀, t₀+Δ) on log Δ")
    axes[1][0].set_ylabel("slope of log |w(t₀+Δ) − w(t₀)|² on log Δ")
    handles = [Line2D([], [], color=colors[seed], label=f"seed {seed}") for seed in seeds]
    handles.append(Line2D([], [], color="#555555", linestyle="--", label="1 = diffusive"))
    axes[0][-1].legend(handles=handles, frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure


def plot_llv_vs_exact(data: pd.DataFrame) -> plt.Figure:
    """Log-likelihood-vector KL against the exact per-token KL of the same seed pairs, log-log, with y = x."""
    columns = ["kl_exact_bits_per_byte", "kl_llv_bits_per_byte"]
    positive = data[columns].apply(pd.to_numeric, errors="coerce")
    data = data[(positive > 0).all(axis=1) & np.isfinite(positive).all(axis=1)]
    if data.empty:
        return no_data_figure("No seed pairs with both KL estimates positive for this suite.")
    sizes = _sizes(data)
    figure, axis = plt.subplots(figsize=(6.8, 5.6), constrained_layout=True)
    for size, color in zip(sizes, size_colors(len(sizes))):
        rows = data[data["size"] == size]
        fit = agreement(rows["kl_llv_bits_per_byte"], rows["kl_exact_bits_per_byte"])
        rho = f"ρ = {fit['spearman']:.2f}" if np.isfinite(fit["spearman"]) else "ρ = –"
        axis.scatter(rows["kl_exact_bits_per_byte"], rows["kl_llv_bits_per_byte"], color=color, s=14, alpha=0.8,
                     edgecolors="white", linewidths=0.3, label=f"{size} ({rho}, {fit['n']} pairs)")
    low = float(data[columns].min().min()) / 1.5
    high = float(data[columns].max().max()) * 1.5
    axis.plot([low, high], [low, high], color="#555555", linewidth=0.9, linestyle="--", label="y = x")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlim(low, high)
    axis.set_ylim(low, high)
    axis.set_xlabel("exact KL, mean over contexts, symmetrised  (bits per byte)")
    axis.set_ylabel("log-likelihood-vector KL estimate  (bits per byte)")
    overall = agreement(data["kl_llv_bits_per_byte"], data["kl_exact_bits_per_byte"])
    spearman = f"{overall['spearman']:.2f}" if np.isfinite(overall["spearman"]) else "–"
    axis.set_title(f"Spearman ρ = {spearman} over {overall['n']} seed pairs; median ratio "
                   f"{overall['median_ratio']:.2g}", fontsize=9, fontweight="normal")
    axis.legend(title="size", frameon=False, fontsize=7, loc="upper left")
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
        plot_icl, objectives=("causal",),
    ),
    FigureSpec(
        "fingerprint_regimes", "Fingerprint regimes over training",
        "How far each seed's activation fingerprint moves between consecutive checkpoints (1 minus their cosine "
        "similarity, log scale), one panel per size, on the chaotic, transition and stable regimes set by the "
        f"thresholds {REGIME_CHAOTIC_BELOW} and {REGIME_STABLE_FROM} on the similarity.",
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

