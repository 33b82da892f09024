"""Figure 1 of Fehlauer et al.: expected convergence over training, beside the reference KLs.

Four panels share the training-step axis (symmetric log, so step 0 is drawn): E[conv] with its
1-sigma band across seed pairs, KL to the uniform distribution, KL to the unigram distribution,
and cross-entropy, each with a band of one standard deviation across seeds. One line per size.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from reports.style import apply_style, size_colors  # noqa: E402

PANELS = (
    # (column, band half-width column, title, y label)
    ("expected_conv", None, "Expected convergence", "E[conv]  (nats)"),
    ("kl_uniform", "kl_uniform_seed_std", "KL to uniform", "KL(p ‖ uniform)  (nats)"),
    ("kl_unigram", "kl_unigram_seed_std", "KL to unigram", "KL(p ‖ unigram)  (nats)"),
    ("cross_entropy", "cross_entropy_seed_std", "Cross-entropy", "nats per token"),
)


def load_figure1_data(database: Path, suite: str) -> pd.DataFrame:
    """One row per (size, step): the convergence mart joined to the model-statistics mart."""
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(
            """
            select e.size, e.step, e.n_params, e.expected_conv, e.band_low, e.band_high,
                   m.kl_uniform, m.kl_uniform_seed_std, m.kl_unigram, m.kl_unigram_seed_std,
                   m.cross_entropy, m.cross_entropy_seed_std
            from mart_expected_convergence e
            join mart_model_stats m using (suite, size, step)
            where e.suite = ?
            order by e.n_params, e.step
            """,
            [suite],
        ).df()


def suites_in(database: Path) -> list[str]:
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute("select distinct suite from mart_expected_convergence order by suite").fetchall()
    return [row[0] for row in rows]


def figure1(data: pd.DataFrame, suite: str) -> plt.Figure:
    apply_style()
    if data.empty:
        raise ValueError(f"no convergence rows for suite {suite!r}: extract and build the warehouse first")
    sizes = list(dict.fromkeys(data.sort_values("n_params")["size"]))
    colors = size_colors(len(sizes))
    figure, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6), constrained_layout=True)
    for axis, (column, spread, title, label) in zip(axes, PANELS):
        for size, color in zip(sizes, colors):
            rows = data[data["size"] == size].sort_values("step")
            if spread is None:
                low, high = rows["band_low"], rows["band_high"]
            else:
                low, high = rows[column] - rows[spread], rows[column] + rows[spread]
            axis.fill_between(rows["step"], low, high, color=color, alpha=0.18, linewidth=0)
            axis.plot(rows["step"], rows[column], color=color, marker="o", markersize=2.5, label=size)
        axis.set_xscale("symlog", linthresh=1)
        axis.set_title(title)
        axis.set_xlabel("training step")
        axis.set_ylabel(label)
    axes[0].legend(title="size", frameon=False)
    figure.suptitle(f"{suite}: convergence across seeds over training", x=0.01, ha="left")
    return figure


def render_figure1(database: Path, suite: str, out_path: Path) -> Path:
    figure = figure1(load_figure1_data(database, suite), suite)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    staging = out_path.with_name(f".{out_path.name}")
    figure.savefig(staging, dpi=150, format="png")
    plt.close(figure)
    staging.replace(out_path)
    return out_path
