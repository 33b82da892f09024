"""The report's plots: pure functions of the rows a figure's query returns (one suite's).

Each takes a DataFrame and returns a matplotlib Figure, so a test can draw it from a hand-made
frame. The training-step axis is symmetric-log everywhere, so step 0 shows. The fingerprint
regime plots draw the thresholds the rows were classified by (the marts' tau_low and tau_high),
or the dbt project's defaults (reports.dbt_vars) for rows without them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import SymLogNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from analysis.loglik import agreement  # noqa: E402
from reports.dbt_vars import RegimeSettings, regime_settings  # noqa: E402
from reports.style import (  # noqa: E402
    REGIME_COLORS,
    category_colors,
    level_colors,
    size_colors,
    step_colormap,
)


def _step_axis(axis) -> None:
    """Called after plotting: symmetric-log steps from 0, so step 0 shows and no negative ticks do."""
    axis.set_xscale("symlog", linthresh=1)
    axis.set_xlim(left=0)
    axis.set_xlabel("training step")


def _sizes(data: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(data.sort_values("n_params")["size"]))


# A ring around a point: the step is compared without some seed, which has no checkpoint there.
MISSING_SEED_MARKER = {"marker": "o", "markersize": 7, "markerfacecolor": "none", "markeredgewidth": 1.0}


def _mark_missing_seeds(axis, rows: pd.DataFrame, value: str, color) -> bool:
    """Rings the steps compared without some seed of the suite (it has no checkpoint there, so
    fewer seed pairs); whether there are any. Rows without `n_seeds_missing` have none."""
    if "n_seeds_missing" not in rows:
        return False
    short = rows[rows["n_seeds_missing"] > 0]
    if short.empty:
        return False
    axis.plot(short["step"], short[value], linestyle="none", **MISSING_SEED_MARKER, markeredgecolor=color)
    return True


def _size_legend(axis, marked: bool) -> None:
    """The sizes' legend, with the ring's meaning when a step is ringed."""
    handles, labels = axis.get_legend_handles_labels()
    if marked:
        handles.append(Line2D([], [], linestyle="none", **MISSING_SEED_MARKER, markeredgecolor="0.35"))
        labels.append("a seed missing")
    axis.legend(handles, labels, title="size", frameon=False)


# The turning points between Fehlauer et al.'s four phases (analysis/phases.py, the table
# convergence_phases): marker and legend label of each, in the order they come in training. The
# reconvergence often starts at the divergence's bottom: its diamond is larger and drawn beneath.
PHASE_MARKERS = {
    "uniform_end": ("s", "uniform phase ends"),
    "convergence_peak": ("^", "convergence peaks"),
    "divergence_bottom": ("v", "divergence bottoms out"),
    "reconvergence_start": ("D", "reconvergence starts"),
}
BENEATH = {"reconvergence_start": {"markersize": 9, "zorder": 2.9}}


def mark_phases(axis, rows: pd.DataFrame, value: str, color) -> set[str]:
    """Marks one size's located turning points on its curve of `value`, each with the interval
    of the seed pairs' own turning points as a horizontal bar; the names of those it marked.

    `rows` are the size's rows of the figure's query, each carrying the size's turning points as
    columns `<name>`, `<name>_low`, `<name>_high` (steps; NULL where not located). Rows without
    those columns mark nothing."""
    at_step = dict(zip(rows["step"], rows[value]))
    marked = set()
    for name, (marker, _) in PHASE_MARKERS.items():
        if name not in rows or rows.empty or pd.isna(rows[name].iloc[0]):
            continue
        step, low, high = (rows[column].iloc[0] for column in (name, f"{name}_low", f"{name}_high"))
        if step not in at_step:
            continue
        xerr = None if pd.isna(low) or pd.isna(high) else [[step - low], [high - step]]
        axis.errorbar(
            [step],
            [at_step[step]],
            xerr=xerr,
            fmt=marker,
            color=color,
            markerfacecolor="white",
            elinewidth=1.2,
            capsize=2.5,
            **BENEATH.get(name, {"markersize": 6, "zorder": 3}),
        )
        marked.add(name)
    return marked


def _phase_legend(figure: plt.Figure, marked: set[str]) -> None:
    """One legend below the panels for the turning points' markers, when any is marked."""
    if not marked:
        return
    handles = [
        Line2D([], [], linestyle="none", marker=marker, markerfacecolor="white", markeredgecolor="0.2", color="0.2")
        for name, (marker, _) in PHASE_MARKERS.items()
        if name in marked
    ]
    labels = [label for name, (_, label) in PHASE_MARKERS.items() if name in marked]
    figure.legend(handles, labels, loc="outside lower left", ncol=len(handles), frameon=False, fontsize=8)


def plot_overview(data: pd.DataFrame) -> plt.Figure:
    """Fehlauer et al. 2025, Figure 1: four rows over training as the paper stacks them. E[conv] with its
    bootstrap interval (top); KL to the uniform (solid) and unigram (dashed) distributions
    (mid-top); the ICL score (mid-bottom; none for a masked suite); cross-entropy (bottom). Bands of
    the last three: one standard deviation across seeds. The turning points between the four phases are
    marked on E[conv] (`mark_phases`)."""
    panels = (
        ("Expected convergence", "E[conv]  (nats)", (("expected_conv", None, "-"),)),
        (
            "KL to uniform (solid) and to unigram (dashed)",
            "KL  (nats)",
            (("kl_uniform", "kl_uniform_seed_std", "-"), ("kl_unigram", "kl_unigram_seed_std", "--")),
        ),
        ("In-context learning", "ICL score  (nats)", (("icl_score", "icl_score_seed_std", "-"),)),
        ("Cross-entropy", "nats per token", (("cross_entropy", "cross_entropy_seed_std", "-"),)),
    )
    sizes = _sizes(data)
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 11), sharex=True, constrained_layout=True)
    marked, phases = False, set()
    for axis, (title, label, curves) in zip(axes, panels):
        drawn = False
        for size, color in zip(sizes, size_colors(len(sizes))):
            rows = data[data["size"] == size].sort_values("step")
            for column, spread, linestyle in curves:
                if column not in rows or rows[column].isna().all():
                    continue
                rows_with = rows.dropna(subset=[column])
                low, high = (
                    (rows_with["band_low"], rows_with["band_high"])
                    if spread is None
                    else (rows_with[column] - rows_with[spread], rows_with[column] + rows_with[spread])
                )
                axis.fill_between(rows_with["step"], low, high, color=color, alpha=0.18, linewidth=0)
                axis.plot(
                    rows_with["step"],
                    rows_with[column],
                    color=color,
                    linestyle=linestyle,
                    marker="o",
                    markersize=2.5,
                    label=size if linestyle == "-" else None,
                )
                marked |= _mark_missing_seeds(axis, rows_with, column, color)
                if column == "expected_conv":
                    phases |= mark_phases(axis, rows_with, column, color)
                drawn = True
        if not drawn:
            _panel_note(axis, "No ICL score: a masked LM predicts no next token.")
        _step_axis(axis)
        axis.set_title(title, loc="left", fontsize=10)
        axis.set_ylabel(label)
    _size_legend(axes[0], marked)
    _phase_legend(figure, phases)
    return figure


def plot_by_level(
    value: str, ylabel: str, only: tuple[str, ...] | None = None, ordered: bool = True
) -> Callable[[pd.DataFrame], plt.Figure]:
    """Small multiples, one panel per size, one line per level (frequency bin, tag, ...).

    `only` draws just those levels (in that order) while the data keeps all of them; ordered
    levels (bins) get a sequential palette, unordered ones (tags) distinct hues. With a
    `word_class` column, content words are dashed and function words solid; with a `status`
    column, a size whose rows have no level shows its status instead (a final checkpoint not
    extracted yet).
    """

    def plot(data: pd.DataFrame) -> plt.Figure:
        if only is not None:
            data = data[data["level"].isin(only)].assign(level_order=lambda d: d["level"].map(only.index))
        sizes = _sizes(data)
        figure, axes = plt.subplots(
            1, len(sizes), figsize=(4.4 * len(sizes), 3.6), sharey=True, constrained_layout=True, squeeze=False
        )
        with_level = data.dropna(subset=["level"])
        levels = list(dict.fromkeys(with_level.sort_values("level_order")["level"]))
        colors = dict(zip(levels, (level_colors if ordered else category_colors)(len(levels))))
        for axis, size in zip(axes[0], sizes):
            for level in levels:
                rows = with_level[(with_level["size"] == size) & (with_level["level"] == level)].sort_values("step")
                content = "word_class" in rows and (rows["word_class"] == "content").any()
                axis.plot(
                    rows["step"],
                    rows[value],
                    color=colors[level],
                    linestyle="--" if content else "-",
                    marker="o",
                    markersize=2,
                    label=level,
                )
            waiting = data[(data["size"] == size) & data["level"].isna()]
            if "status" in data and len(waiting) and not (with_level["size"] == size).any():
                _panel_note(axis, "\n".join(textwrap.wrap(str(waiting["status"].iloc[0]), 40)))
            _step_axis(axis)
            axis.set_title(f"size {size}")
        axes[0][0].set_ylabel(ylabel)
        axes[0][-1].legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        return figure

    return plot


def plot_tag_groups(
    groups: dict[str, tuple[str, ...]], value: str, ylabel: str
) -> Callable[[pd.DataFrame], plt.Figure]:
    """One row per group of tags (Fehlauer et al. 2025, Figure 7: noun tags, verb tags), one column per
    size, one line per tag of the group."""

    def plot(data: pd.DataFrame) -> plt.Figure:
        sizes = _sizes(data)
        figure, axes = plt.subplots(
            len(groups),
            len(sizes),
            figsize=(4.4 * len(sizes), 3.2 * len(groups)),
            sharex=True,
            sharey="row",
            constrained_layout=True,
            squeeze=False,
        )
        for row_axes, (group, tags) in zip(axes, groups.items()):
            colors = dict(zip(tags, category_colors(len(tags))))
            for axis, size in zip(row_axes, sizes):
                for tag in tags:
                    rows = data[(data["size"] == size) & (data["level"] == tag)].sort_values("step")
                    if len(rows):
                        axis.plot(rows["step"], rows[value], color=colors[tag], marker="o", markersize=2, label=tag)
                _step_axis(axis)
                axis.set_title(f"{group}, size {size}", fontsize=10)
            row_axes[0].set_ylabel(ylabel)
            row_axes[-1].legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        return figure

    return plot


def _convergence_panel(axis, data: pd.DataFrame, value: str, low: str, high: str) -> None:
    """One line per size over training, with its band [low, high]."""
    sizes = _sizes(data)
    marked = False
    for size, color in zip(sizes, size_colors(len(sizes))):
        rows = data[data["size"] == size].sort_values("step")
        axis.fill_between(rows["step"], rows[low], rows[high], color=color, alpha=0.18, linewidth=0)
        axis.plot(rows["step"], rows[value], color=color, marker="o", markersize=2.5, label=size)
        marked |= _mark_missing_seeds(axis, rows, value, color)
    _step_axis(axis)
    _size_legend(axis, marked)


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
    right.text(
        0.99, 0.5, "chance", transform=right.get_yaxis_transform(), ha="right", va="bottom", fontsize=8, color="#888888"
    )
    right.set_title("Accuracy (mean over seeds, band: worst to best seed)")
    right.set_ylabel("BLiMP accuracy")
    return figure


def plot_variance(data: pd.DataFrame) -> plt.Figure:
    """Fehlauer et al. 2025, Figure 4: conv(s_<t) over training per size, averaged over contexts, with a
    band of one standard deviation across contexts (how much convergence varies from context to context)."""
    sizes = _sizes(data)
    figure, axis = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    for size, color in zip(sizes, size_colors(len(sizes))):
        rows = data[data["size"] == size].sort_values("step")
        axis.fill_between(
            rows["step"],
            rows["expected_conv"] - rows["conv_std"],
            rows["expected_conv"] + rows["conv_std"],
            color=color,
            alpha=0.18,
            linewidth=0,
        )
        axis.plot(rows["step"], rows["expected_conv"], color=color, marker="o", markersize=2.5, label=size)
    _step_axis(axis)
    axis.set_ylabel("conv(s<t)  (nats; band ± 1 sd across contexts)")
    axis.legend(title="size", frameon=False)
    return figure


def plot_coefficients(data: pd.DataFrame) -> plt.Figure:
    """Regression coefficients with 95% intervals over training: log frequency and size."""
    terms = sorted(t for t in data["term"].unique() if t == "log_frequency" or t.startswith("size="))
    figure, axes = plt.subplots(
        1, max(len(terms), 1), figsize=(4.8 * max(len(terms), 1), 3.6), constrained_layout=True, squeeze=False
    )
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
        axis.fill_between(
            rows["step"],
            rows["icl_score"] - rows["icl_score_seed_std"],
            rows["icl_score"] + rows["icl_score_seed_std"],
            color=color,
            alpha=0.18,
            linewidth=0,
        )
        axis.plot(rows["step"], rows["icl_score"], color=color, marker="o", markersize=2.5, label=size)
    axis.axhline(0, color="#999999", linewidth=0.8)
    _step_axis(axis)
    axis.set_ylabel("ICL score  (nats)")
    axis.legend(title="size", frameon=False)
    return figure


# The KL distribution's bands, widest first (drawn beneath), as (low, high, label, opacity): the
# percentiles llama.cpp's KL-divergence statistics print, in mart_kl_distribution's columns.
KL_BANDS = (
    ("kl_p0_1", "kl_p99_9", "0.1-99.9 %", 0.12),
    ("kl_p1", "kl_p99", "1-99 %", 0.22),
    ("kl_p10", "kl_p90", "10-90 %", 0.38),
)
# A KL of 0 (or an fp32 hair below it) has no place on a log axis: bands are drawn from here up.
KL_LOG_FLOOR = 1e-6


def plot_kl_distribution(data: pd.DataFrame) -> plt.Figure:
    """The distribution of KL(p_a || p_b) over contexts and seed pairs over training, one panel
    per size on one log scale: the median, bands between percentiles (10-90, 1-99, 0.1-99.9) and
    the mean (dashed), which a heavy tail pulls above the median."""
    sizes = _sizes(data)
    figure, axes = plt.subplots(
        1,
        max(len(sizes), 1),
        figsize=(max(3.6 * len(sizes), 7.2), 3.4),
        sharey=True,
        squeeze=False,
        constrained_layout=True,
    )
    for axis, size, color in zip(axes[0], sizes, size_colors(len(sizes))):
        rows = data[data["size"] == size].sort_values("step")
        for low, high, label, alpha in KL_BANDS:
            axis.fill_between(
                rows["step"],
                rows[low].clip(lower=KL_LOG_FLOOR),
                rows[high].clip(lower=KL_LOG_FLOOR),
                color=color,
                alpha=alpha,
                linewidth=0,
                label=label,
            )
        axis.plot(
            rows["step"],
            rows["kl_p50"].clip(lower=KL_LOG_FLOOR),
            color=color,
            marker="o",
            markersize=2.5,
            label="median",
        )
        axis.plot(
            rows["step"],
            rows["kl_mean"].clip(lower=KL_LOG_FLOOR),
            color="0.25",
            linestyle="--",
            linewidth=1.0,
            label="mean",
        )
        axis.set_yscale("log")
        _step_axis(axis)
        axis.set_title(size)
    axes[0][0].set_ylabel("KL(p_a || p_b)  (nats, log scale)")
    # below the panels, where no band runs under it (the last panel's colours stand for every size's)
    figure.legend(*axes[0][-1].get_legend_handles_labels(), loc="outside lower center", ncol=5, frameon=False)
    return figure


def plot_top1_agreement(data: pd.DataFrame) -> plt.Figure:
    """The share of contexts where two seeds' most probable token is the same, over training per
    size: over every ordered pair, with ± 1 standard error (across contexts) as error bars and the
    range across seed pairs as a band."""
    sizes = _sizes(data)
    figure, axis = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    marked = False
    for size, color in zip(sizes, size_colors(len(sizes))):
        rows = data[data["size"] == size].sort_values("step")
        axis.fill_between(
            rows["step"],
            rows["top1_agreement_pair_min"],
            rows["top1_agreement_pair_max"],
            color=color,
            alpha=0.18,
            linewidth=0,
        )
        axis.errorbar(
            rows["step"],
            rows["top1_agreement"],
            yerr=rows["top1_agreement_se"],
            color=color,
            marker="o",
            markersize=2.5,
            elinewidth=0.8,
            label=size,
        )
        marked = _mark_missing_seeds(axis, rows, "top1_agreement", color) or marked
    _step_axis(axis)
    axis.set_ylim(0, 1)
    axis.set_ylabel("top-1 agreement  (band: range over pairs)")
    _size_legend(axis, marked)
    return figure


# ------------------------------------------------------------------------------------------------
# Fingerprints (McEntire) and log-likelihood vectors (Kishino et al. 2026)
# ------------------------------------------------------------------------------------------------

# The regime thresholds are the dbt vars regime_tau_low and regime_tau_high (or a suite's own in
# regime_suites); mart_fingerprint_similarity carries, per row, the ones its regime was set by, so
# the lines drawn are those of the build the rows come from, whatever --vars it ran with.
# 1 - similarity is drawn on a log axis so that 0.99, 0.999 and 0.9999 are equally far apart;
# checkpoints with identical fingerprints (distance 0) sit on this floor.
DISTANCE_FLOOR = 1e-7
SIZE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# The two measures of the regimes (mart_fingerprint_similarity.comparison), the paper's first.
COMPARISONS = ("fixed_gap", "log_spaced")


def no_data_figure(message: str = "No data for this suite.") -> plt.Figure:
    figure, axis = plt.subplots(figsize=(7, 2.4), constrained_layout=True)
    axis.axis("off")
    axis.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#666666", transform=axis.transAxes)
    return figure


def _panel_note(axis, message: str) -> None:
    axis.text(0.5, 0.5, message, ha="center", va="center", fontsize=9, color="#888888", transform=axis.transAxes)


def regime_of(similarity: pd.Series, thresholds: RegimeSettings | None = None) -> pd.Series:
    """McEntire's eq. 2 as the dbt macro fingerprint_regime applies it, strict on both sides:
    stable above tau_high, chaotic below tau_low (the dbt vars' defaults unless given); None
    where the similarity is."""
    thresholds = thresholds or regime_settings()
    regime = np.where(
        similarity > thresholds.tau_high,
        "stable",
        np.where(similarity < thresholds.tau_low, "chaotic", "transition"),
    )
    return pd.Series(regime, index=similarity.index).where(similarity.notna())


def rows_thresholds(data: pd.DataFrame) -> tuple[float, float]:
    """(tau_low, tau_high) the rows were classified by (their tau_low and tau_high, one suite's),
    or the dbt vars' defaults for rows without them."""
    if {"tau_low", "tau_high"} <= set(data.columns) and data["tau_low"].notna().any():
        return float(data["tau_low"].dropna().iloc[0]), float(data["tau_high"].dropna().iloc[0])
    defaults = regime_settings()
    return defaults.tau_low, defaults.tau_high


def _distance(similarity: pd.Series) -> pd.Series:
    return (1.0 - similarity.astype(float)).clip(lower=DISTANCE_FLOOR)


def _regime_axis(axis, distances: pd.Series, tau_low: float, tau_high: float, shade: bool = True) -> None:
    """Log y axis of 1 - similarity with the thresholds drawn and (`shade`) the three regimes shaded."""
    chaotic_from, stable_below = 1.0 - tau_low, 1.0 - tau_high
    finite = distances[np.isfinite(distances)]
    low = min(finite.min() if len(finite) else stable_below, stable_below / 10) / 2
    high = max(finite.max() if len(finite) else chaotic_from, chaotic_from * 10) * 2
    axis.set_yscale("log")
    axis.set_ylim(low, high)
    bands = (
        ("stable", (low, stable_below)),
        ("transition", (stable_below, chaotic_from)),
        ("chaotic", (chaotic_from, high)),
    )
    for regime, (bottom, top) in bands if shade else ():
        axis.axhspan(bottom, top, color=REGIME_COLORS[regime], alpha=0.12, linewidth=0, zorder=0)
        axis.text(
            0.99,
            np.sqrt(bottom * top),
            regime,
            transform=axis.get_yaxis_transform(),
            ha="right",
            va="center",
            fontsize=7,
            color=REGIME_COLORS[regime],
            fontweight="bold",
            zorder=1.5,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.7, "linewidth": 0},
        )
    for threshold in (tau_low, tau_high):
        axis.axhline(1.0 - threshold, color="#777777", linewidth=0.8, linestyle="--", zorder=1, gid="threshold")


def _measure_title(size: str, comparison: str, rows: pd.DataFrame) -> str:
    if comparison == "log_spaced":
        return f"size {size}: to the previous log-spaced checkpoint"
    gaps = (rows["step"] - rows["prev_step"]).dropna().unique()
    return f"size {size}: to {int(gaps[0])} steps earlier" if len(gaps) == 1 else f"size {size}: a fixed gap earlier"


def plot_fingerprint_regimes(data: pd.DataFrame) -> plt.Figure:
    """Per size, each seed's fingerprint distance (1 - s_t) over training on the three regimes:
    the top row the fixed-gap measure (McEntire's s_t, to the seed's checkpoint a gap earlier),
    the bottom row the log-spaced one (to its previous log-spaced checkpoint), with the thresholds
    the rows were classified by (`rows_thresholds`)."""
    data = data.dropna(subset=["similarity_prev"])
    if data.empty:
        return no_data_figure("No fingerprint similarities for this suite.")
    tau_low, tau_high = rows_thresholds(data)
    sizes = _sizes(data)
    seeds = sorted(data["seed"].unique())
    colors = dict(zip(seeds, category_colors(len(seeds))))
    figure, axes = plt.subplots(
        len(COMPARISONS),
        len(sizes),
        figsize=(4.4 * len(sizes), 3.2 * len(COMPARISONS)),
        sharey=True,
        constrained_layout=True,
        squeeze=False,
    )
    distances = _distance(data["similarity_prev"])
    for row, comparison in enumerate(COMPARISONS):
        measured = data[data["comparison"] == comparison]
        for axis, size in zip(axes[row], sizes):
            rows = measured[measured["size"] == size]
            for seed in seeds:
                line = rows[rows["seed"] == seed].sort_values("step")
                if len(line):
                    axis.plot(
                        line["step"],
                        _distance(line["similarity_prev"]),
                        color=colors[seed],
                        marker="o",
                        markersize=2,
                        linewidth=1,
                        linestyle="-" if comparison == "fixed_gap" else "--",
                        label=f"seed {seed}",
                    )
            if rows.empty:
                message = (
                    "no two checkpoints a fixed gap apart" if comparison == "fixed_gap" else "no log-spaced neighbours"
                )
                _panel_note(axis, message)
            _regime_axis(axis, distances, tau_low, tau_high)
            _step_axis(axis)
            axis.set_title(_measure_title(size, comparison, rows), fontsize=9)
        axes[row][0].set_ylabel("1 − s_t (fixed gap)" if comparison == "fixed_gap" else "1 − s_t (log-spaced)")
    handles = [Line2D([], [], color=colors[seed], marker="o", markersize=2, label=f"seed {seed}") for seed in seeds]
    handles.append(Line2D([], [], color="#777777", linestyle="--", linewidth=0.8, label=f"τ_low = {tau_low:g}"))
    handles.append(Line2D([], [], color="#777777", linestyle="--", linewidth=0.8, label=f"τ_high = {tau_high:g}"))
    axes[0][-1].legend(handles=handles, frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure


def plot_similarity_curves(data: pd.DataFrame) -> plt.Figure:
    """Per size: the similarity to the previous log-spaced checkpoint (mean over seeds) beside the
    cross-seed cosine (mean and minimum) and the cross-seed linear CKA (mean), with the regime
    thresholds (`rows_thresholds`)."""
    tau_low, tau_high = rows_thresholds(data)
    values = ["consecutive_mean", "cross_seed_mean", "cross_seed_min", "cross_seed_cka"]
    data = data.dropna(subset=values, how="all")
    if data.empty:
        return no_data_figure("No fingerprint similarities for this suite.")
    sizes = _sizes(data)
    consecutive, cross, cka = category_colors(3)
    figure, axes = plt.subplots(
        1, len(sizes), figsize=(4.4 * len(sizes), 3.6), sharey=True, constrained_layout=True, squeeze=False
    )
    everything = pd.concat([_distance(data[column].dropna()) for column in values])
    for axis, size in zip(axes[0], sizes):
        rows = data[data["size"] == size].sort_values("step")
        axis.fill_between(
            rows["step"],
            _distance(rows["cross_seed_mean"]),
            _distance(rows["cross_seed_min"]),
            color=cross,
            alpha=0.15,
            linewidth=0,
        )
        # The checkpoints that only the fixed gap compares have no log-spaced similarity: skipped,
        # so the line joins the log-spaced ones.
        log_spaced = rows.dropna(subset=["consecutive_mean"])
        axis.plot(
            log_spaced["step"],
            _distance(log_spaced["consecutive_mean"]),
            color=consecutive,
            marker="o",
            markersize=2,
            label="to the previous log-spaced checkpoint (mean over seeds)",
        )
        axis.plot(
            rows["step"],
            _distance(rows["cross_seed_mean"]),
            color=cross,
            marker="o",
            markersize=2,
            label="across seeds, same step (mean over pairs)",
        )
        axis.plot(
            rows["step"],
            _distance(rows["cross_seed_min"]),
            color=cross,
            linestyle="--",
            linewidth=1,
            label="across seeds (least similar pair)",
        )
        axis.plot(
            rows["step"],
            _distance(rows["cross_seed_cka"]),
            color=cka,
            marker="o",
            markersize=2,
            label="across seeds, 1 − linear CKA (mean over pairs)",
        )
        # The regimes are defined on one seed's similarity over time: thresholds drawn for reference, bands not.
        _regime_axis(axis, everything, tau_low, tau_high, shade=False)
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
        points = axis.scatter(
            rows["x"],
            rows["y"],
            c=rows["step"],
            cmap=step_colormap(),
            norm=norm,
            s=16,
            marker=markers[size],
            edgecolors="white",
            linewidths=0.3,
            zorder=2,
        )
    figure.colorbar(points, ax=axis, label="training step", shrink=0.85)
    axis.set_aspect("equal", adjustable="datalim")
    first = data.iloc[0]
    axis.set_xlabel(
        f"coordinate 1 ({first['explained_x']:.0%} of the variance)"
        if pd.notna(first["explained_x"])
        else "coordinate 1"
    )
    axis.set_ylabel(
        f"coordinate 2 ({first['explained_y']:.0%} of the variance)"
        if pd.notna(first["explained_y"])
        else "coordinate 2"
    )
    handles = [
        Line2D([], [], marker=markers[size], color="#555555", linestyle="", label=f"size {size}") for size in sizes
    ]
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
    figure, axes = plt.subplots(
        2,
        len(sizes),
        figsize=(4.4 * len(sizes), 6.4),
        sharey="row",
        sharex="col",
        constrained_layout=True,
        squeeze=False,
    )
    panels = (("kl_exponent", "KL exponent (log-likelihood vectors)"), ("weight_exponent", "squared weight distance"))
    for column, size in enumerate(sizes):
        for row, (value, label) in enumerate(panels):
            axis = axes[row][column]
            for seed in seeds:
                rows = data[(data["size"] == size) & (data["seed"] == seed)].sort_values("start_step")
                if value == "kl_exponent":
                    axis.fill_between(
                        rows["start_step"],
                        rows["kl_exponent_low"].astype(float),
                        rows["kl_exponent_high"].astype(float),
                        color=colors[seed],
                        alpha=0.15,
                        linewidth=0,
                    )
                axis.plot(
                    rows["start_step"],
                    rows[value].astype(float),
                    color=colors[seed],
                    marker="o",
                    markersize=2,
                    linewidth=1,
                    label=f"seed {seed}",
                )
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
        axis.scatter(
            rows["kl_exact_bits_per_byte"],
            rows["kl_llv_bits_per_byte"],
            color=color,
            s=14,
            alpha=0.8,
            edgecolors="white",
            linewidths=0.3,
            label=f"{size} ({rho}, {fit['n']} pairs)",
        )
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
    axis.set_title(
        f"Spearman ρ = {spearman} over {overall['n']} seed pairs; median ratio {overall['median_ratio']:.2g}",
        fontsize=9,
        fontweight="normal",
    )
    axis.legend(title="size", frameon=False, fontsize=7, loc="upper left")
    return figure


KL_SCALE_COMPARISONS = ("consecutive checkpoints", "seeds", "sizes")
# log-likelihood-vector KL of identical models is 0, which a log axis cannot show: drawn on this floor
KL_FLOOR_BITS = 1e-6


def plot_kl_scale(data: pd.DataFrame) -> plt.Figure:
    """After Kishino et al. 2026: our log-likelihood-vector KL for consecutive checkpoints, seeds and
    sizes over training (median over seeds or seed pairs, with their range), one panel each, on a
    shared log scale, beside the paper's figures for Pythia on the Pile (grey band, labelled)."""
    figure, axes = plt.subplots(1, 3, figsize=(15, 3.8), sharey=True, constrained_layout=True)
    for axis, comparison in zip(axes, KL_SCALE_COMPARISONS):
        rows = data[data["comparison"] == comparison]
        labels = list(dict.fromkeys(rows["label"]))
        for label, color in zip(labels, category_colors(len(labels))):
            series = rows[rows["label"] == label].sort_values("step")
            axis.fill_between(
                series["step"],
                series["kl_min"].clip(lower=KL_FLOOR_BITS),
                series["kl_max"].clip(lower=KL_FLOOR_BITS),
                color=color,
                alpha=0.15,
                linewidth=0,
            )
            axis.plot(
                series["step"],
                series["kl_bits_per_byte"].clip(lower=KL_FLOOR_BITS),
                color=color,
                marker="o",
                markersize=2.5,
                label=label,
            )
        paper = rows.dropna(subset=["paper_low"]).head(1)
        for _, ref in paper.iterrows():
            low, high = ref["paper_low"], ref["paper_high"]
            if high > low:
                axis.axhspan(low, high, color="#888888", alpha=0.22, linewidth=0, zorder=0)
            else:
                axis.axhline(low, color="#888888", linewidth=2.0, alpha=0.6, zorder=0)
            axis.text(
                0.01,
                high,
                "Kishino et al. 2026: " + str(ref["paper_note"]),
                transform=axis.get_yaxis_transform(),
                fontsize=7,
                color="#555555",
                va="bottom",
            )
        if not labels:
            _panel_note(axis, f"No {comparison} pairs in this suite.")
        axis.set_yscale("log")
        _step_axis(axis)
        axis.set_title(comparison)
        if labels:
            axis.legend(frameon=False, fontsize=7, loc="lower right")
    axes[0].set_ylabel("log-likelihood-vector KL  (bits per byte)")
    return figure


# ------------------------------------------------------------------------------------------------
# Trajectories and layers (ours)
# ------------------------------------------------------------------------------------------------


def plot_trajectory_movement(data: pd.DataFrame) -> plt.Figure:
    """Per size: the seeds' mean KL(p_t || p_previous) over training (band: ± 1 sd across seeds),
    beside the mean KL between seeds at the same step (dashed), on one log scale."""
    if data.empty:
        return no_data_figure("No trajectory KL for this suite (a lake extracted before it).")
    sizes = _sizes(data)
    figure, axis = plt.subplots(figsize=(7.2, 3.8), constrained_layout=True)
    for size, color in zip(sizes, size_colors(len(sizes))):
        rows = data[data["size"] == size].sort_values("step")
        spread = rows["kl_seed_std"].fillna(0.0)
        axis.fill_between(
            rows["step"],
            (rows["kl_mean"] - spread).clip(lower=KL_LOG_FLOOR),
            (rows["kl_mean"] + spread).clip(lower=KL_LOG_FLOOR),
            color=color,
            alpha=0.18,
            linewidth=0,
        )
        axis.plot(
            rows["step"], rows["kl_mean"].clip(lower=KL_LOG_FLOOR), color=color, marker="o", markersize=2.5, label=size
        )
        axis.plot(
            rows["step"], rows["seed_pair_kl"].clip(lower=KL_LOG_FLOOR), color=color, linestyle="--", linewidth=1.0
        )
    axis.set_yscale("log")
    _step_axis(axis)
    axis.set_ylabel("KL  (nats, log scale)")
    handles, labels = axis.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="0.35", marker="o", markersize=2.5, label="seed vs its previous checkpoint"),
        Line2D([], [], color="0.35", linestyle="--", label="between seeds, same step"),
    ]
    axis.legend(handles=handles, frameon=False, fontsize=7)
    return figure


def exponent_agreement(data: pd.DataFrame) -> str:
    """One sentence: how the exact exponents and the estimator's compare over the rows that have both."""
    both = data[np.isfinite(data["exact_exponent"].astype(float)) & np.isfinite(data["llv_exponent"].astype(float))]
    if both.empty:
        return "No start step has both an exact and an estimated exponent."
    difference = both["llv_exponent"].astype(float) - both["exact_exponent"].astype(float)
    low, high = both["exact_exponent_low"].astype(float), both["exact_exponent_high"].astype(float)
    inside = int(((both["llv_exponent"] >= low) & (both["llv_exponent"] <= high)).sum())
    return (
        f"Over {len(both)} (seed, anchor) fits: the estimator's exponent minus the exact one has median "
        f"{np.median(difference):+.3f} (range {difference.min():+.3f} to {difference.max():+.3f}); "
        f"{inside} of {len(both)} estimator exponents fall inside the exact exponent's interval."
    )


def plot_trajectory_exponents(data: pd.DataFrame) -> plt.Figure:
    """Per size (columns), per anchor step: each seed's exact exponent with its bootstrap interval, the
    log-likelihood-vector estimator's with its interval, and the weight-distance exponent."""
    data = data[np.isfinite(data["exact_exponent"].astype(float))] if not data.empty else data
    if data.empty:
        return no_data_figure("No exact diffusion exponents for this suite (too few checkpoints after an anchor).")
    sizes = _sizes(data)
    figure, axes = plt.subplots(
        1, len(sizes), figsize=(max(4.0 * len(sizes), 7.2), 3.9), sharey=True, squeeze=False, constrained_layout=True
    )
    measures = (
        ("exact_exponent", "exact_exponent_low", "exact_exponent_high", "exact KL", "o", "#2a6f97"),
        ("llv_exponent", "llv_exponent_low", "llv_exponent_high", "log-likelihood vectors", "s", "#d08c3c"),
        ("weight_exponent", None, None, "squared weight distance", "^", "#6c6c6c"),
    )
    for axis, size in zip(axes[0], sizes):
        rows = data[data["size"] == size]
        anchors = sorted(rows["anchor_step"].unique())
        seeds = sorted(rows["seed"].unique())
        for position, anchor in enumerate(anchors):
            for offset, (value, low, high, label, marker, color) in zip((-0.22, 0.0, 0.22), measures):
                at = rows[rows["anchor_step"] == anchor].sort_values("seed")
                x = position + offset + np.linspace(-0.06, 0.06, len(seeds))[: len(at)]
                y = at[value].astype(float)
                if low is not None:
                    error = np.vstack([y - at[low].astype(float), at[high].astype(float) - y]).clip(min=0)
                    axis.errorbar(
                        x, y, yerr=error, fmt=marker, color=color, markersize=3.5, elinewidth=0.8, label=label
                    )
                else:
                    axis.plot(x, y, marker, color=color, markersize=3.5, label=label)
        axis.axhline(1.0, color="#555555", linewidth=0.9, linestyle="--")
        axis.set_xticks(range(len(anchors)), [str(anchor) for anchor in anchors])
        axis.set_xlabel("anchor step t₀")
        axis.set_title(size)
    axes[0][0].set_ylabel("slope of log KL(t₀, t₀+Δ) on log Δ")
    handles, labels = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    unique["1 = diffusive"] = Line2D([], [], color="#555555", linestyle="--")
    # The agreement in words heads the legend (the figure's own title is the report's).
    figure.legend(
        unique.values(),
        unique.keys(),
        loc="outside lower center",
        ncol=4,
        frameon=False,
        title=textwrap.fill(exponent_agreement(data), 120),
        title_fontsize=8,
    )
    return figure


def plot_layer_convergence(data: pd.DataFrame) -> plt.Figure:
    """Per size: a layer x step heatmap of E[conv] between seeds through the logit lens (top), and of
    the seeds' KL from their own output (bottom), steps in order (not to scale)."""
    if data.empty:
        return no_data_figure("No layer-wise convergence for this suite (a lake extracted before it).")
    sizes = list(dict.fromkeys(data.sort_values(["n_layers", "size"])["size"]))
    figure, axes = plt.subplots(
        2, len(sizes), figsize=(max(4.2 * len(sizes), 7.2), 5.6), squeeze=False, constrained_layout=True
    )
    conv_range = (float(data["expected_conv"].min()), float(data["expected_conv"].max()))
    final = data["kl_to_final"].astype(float).clip(lower=KL_LOG_FLOOR)
    final_range = (float(final.min()), float(max(final.max(), final.min() * 10)))
    for column, size in enumerate(sizes):
        rows = data[data["size"] == size]
        steps = sorted(rows["step"].unique())
        layers = sorted(rows["layer"].unique())
        for row, (value, cmap, norm, label) in enumerate(
            (
                ("expected_conv", "viridis", matplotlib.colors.Normalize(*conv_range), "E[conv] between seeds (nats)"),
                ("kl_to_final", "magma_r", matplotlib.colors.LogNorm(*final_range), "KL(p_final || p_layer) (nats)"),
            )
        ):
            grid = rows.pivot_table(index="layer", columns="step", values=value).reindex(index=layers, columns=steps)
            values = grid.to_numpy(dtype=float)
            if value == "kl_to_final":
                values = np.clip(values, KL_LOG_FLOOR, None)
            axis = axes[row][column]
            image = axis.imshow(values, aspect="auto", origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
            axis.grid(False)
            shown = range(0, len(steps), max(1, len(steps) // 8))
            axis.set_xticks(list(shown), [str(steps[i]) for i in shown], rotation=45)
            axis.set_yticks(range(len(layers)), [str(layer) for layer in layers])
            axis.set_title(f"{size}: {'across seeds' if row == 0 else 'to the own output'}", fontsize=9)
            if column == 0:
                axis.set_ylabel("layer (0: embeddings)")
            if row == 1:
                axis.set_xlabel("training step (in order, not to scale)")
            if column == len(sizes) - 1:
                figure.colorbar(image, ax=axes[row, :].tolist(), label=label, shrink=0.9)
    return figure
