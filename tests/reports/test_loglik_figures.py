"""The fingerprint and log-likelihood-vector figures from small hand-made frames, and their queries."""

import duckdb
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from reports.dbt_vars import RegimeSettings, regime_settings
from reports.figures import figure_by_name, query, render
from reports.plots import (
    DISTANCE_FLOOR,
    plot_diffusion_exponents,
    plot_fingerprint_regimes,
    plot_llv_vs_exact,
    plot_model_map,
    plot_similarity_curves,
)
from tests.helpers.report_frames import (
    CONTRACT_TABLES,
    SEEDS,
    SIZES,
    STEPS,
    exponents_frame,
    map_frame,
    regimes_frame,
    similarity_frame,
    vs_exact_frame,
)

BUILDERS = {
    "ours_fingerprint_regimes": regimes_frame,
    "ours_fingerprint_similarity": similarity_frame,
    "kishino_model_map": map_frame,
    "kishino_diffusion_exponents": exponents_frame,
    "ours_loglik_vs_exact": vs_exact_frame,
}


def texts(figure) -> str:
    return " ".join(
        [t.get_text() for t in figure.texts]
        + [t.get_text() for axis in figure.axes for t in axis.texts]
        + [axis.get_title() for axis in figure.axes]
    )


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_single_size_draws_one_panel_per_row(name):
    data = BUILDERS[name](sizes=(("s", 10),))
    figure = figure_by_name(name).plot(data)
    panels = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
    # the regimes have a row per measure (fixed gap, log-spaced); the diffusion figure two panels a size
    assert len(panels) == (2 if name in ("kishino_diffusion_exponents", "ours_fingerprint_regimes") else 1)
    plt.close(figure)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_suite_without_rows_gets_a_no_data_figure(name, tmp_path):
    spec = figure_by_name(name)
    empty = BUILDERS[name]().iloc[0:0]
    out = render(spec, empty, tmp_path / f"{name}.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure = spec.plot(empty)
    assert "No " in texts(figure) and "for this suite" in texts(figure)
    plt.close(figure)


def test_nan_exponents_leave_gaps_and_say_so():
    data = exponents_frame(nan_sizes=("l",))
    figure = plot_diffusion_exponents(data)
    assert texts(figure).count("no exponent") == 2, "both panels of size l, none of size s"
    kl_panel = figure.axes[0]
    drawn = np.concatenate([line.get_ydata() for line in kl_panel.lines if len(line.get_xdata()) == 4])
    # Start steps 4 (one later checkpoint) and 2 (two) have no slope: NaN gaps, not zeros.
    assert np.isnan(drawn).sum() == 2 * len(SEEDS) and 0 not in drawn
    dashed = [line for line in kl_panel.lines if line.get_linestyle() == "--"]
    assert dashed and dashed[0].get_ydata()[0] == 1.0, "the diffusive reference at 1"
    plt.close(figure)


def threshold_lines(axis) -> list[float]:
    """The y of the threshold lines across an axis (1 - each threshold), ascending."""
    return sorted(line.get_ydata()[0] for line in axis.lines if line.get_gid() == "threshold")


def test_regime_figure_draws_both_measures_on_the_thresholds_and_keeps_identical_checkpoints():
    figure = plot_fingerprint_regimes(regimes_frame())
    fixed_gap, log_spaced = figure.axes[0], figure.axes[len(SIZES)]  # size s: top row, bottom row
    defaults = regime_settings()
    for axis in (fixed_gap, log_spaced):
        low, high = axis.get_ylim()
        assert low < 1 - defaults.tau_high and 1 - defaults.tau_low < high
        assert threshold_lines(axis) == pytest.approx([1 - defaults.tau_high, 1 - defaults.tau_low])
    assert "4 steps earlier" in fixed_gap.get_title() and "log-spaced" in log_spaced.get_title()
    seed_line = next(line for line in fixed_gap.lines if line.get_label() == "seed 1")
    assert seed_line.get_ydata() == pytest.approx([0.002, 0.0005]) and seed_line.get_linestyle() == "-"
    seed_line = next(line for line in log_spaced.lines if line.get_label() == "seed 1")
    assert seed_line.get_ydata() == pytest.approx([0.5, 0.05, 0.005, DISTANCE_FLOOR])
    assert seed_line.get_linestyle() == "--", "the second measure is dashed"
    assert {"chaotic", "transition", "stable"} <= set(texts(figure).split())
    legend = [t.get_text() for t in figure.axes[len(SIZES) - 1].get_legend().get_texts()]
    assert "τ_low = 0.997" in legend and "τ_high = 0.999" in legend
    plt.close(figure)


def test_regime_lines_are_the_thresholds_the_rows_were_classified_by():
    """A build with other thresholds (--vars, or a suite's own) labels its rows with them; the
    figure draws those, not the project's defaults."""
    figure = plot_fingerprint_regimes(regimes_frame(thresholds=RegimeSettings(0.8, 0.95, 4)))
    assert all(threshold_lines(axis) == pytest.approx([0.05, 0.2]) for axis in figure.axes[: 2 * len(SIZES)])
    plt.close(figure)


def test_a_suite_without_a_fixed_gap_says_so_in_its_panels():
    data = regimes_frame()
    figure = plot_fingerprint_regimes(data[data["comparison"] == "log_spaced"])
    assert texts(figure).count("no two checkpoints a fixed gap apart") == len(SIZES)
    plt.close(figure)


def test_similarity_curves_draw_consecutive_and_cross_seed_lines():
    figure = plot_similarity_curves(similarity_frame())
    labels = [line.get_label() for line in figure.axes[0].lines if not line.get_label().startswith("_")]
    assert len(labels) == 4
    cross_min = figure.axes[0].lines[2]
    assert cross_min.get_ydata() == pytest.approx([0.8, 0.7, 0.6, 0.5, 0.4])
    cka = figure.axes[0].lines[3]
    assert "CKA" in cka.get_label() and cka.get_ydata() == pytest.approx([0.5, 0.45, 0.4, 0.35, 0.3])
    plt.close(figure)


def test_model_map_draws_a_trajectory_per_seed_and_a_step_colour_bar():
    data = map_frame()
    figure = plot_model_map(data)
    axis = figure.axes[0]
    trajectories = [line for line in axis.lines if len(line.get_xdata()) == len(STEPS)]
    assert len(trajectories) == len(SIZES) * len(SEEDS)
    assert len(axis.collections) == len(SIZES), "one marker per size"
    assert any(a.get_label() == "<colorbar>" for a in figure.axes)
    assert "80%" in axis.get_xlabel() and "15%" in axis.get_ylabel()
    plt.close(figure)


def test_llv_against_exact_reports_spearman_and_drops_unusable_pairs():
    data = vs_exact_frame()
    data.loc[0, "kl_exact_bits_per_byte"] = 0.0  # cannot sit on a log axis
    figure = plot_llv_vs_exact(data)
    axis = figure.axes[0]
    assert "Spearman ρ = 1.00 over 9 seed pairs" in axis.get_title()
    assert "median ratio 1.3" in axis.get_title()
    assert sum(len(c.get_offsets()) for c in axis.collections) == 9
    legend = [t.get_text() for t in axis.get_legend().get_texts()]
    assert "s (ρ = 1.00, 4 pairs)" in legend and "y = x" in legend
    # Anti-correlated estimates are visible in the title, not hidden.
    flipped = vs_exact_frame().assign(kl_llv_bits_per_byte=lambda d: 1.0 / d["kl_exact_bits_per_byte"])
    assert "Spearman ρ = -" in plot_llv_vs_exact(flipped).axes[0].get_title()
    plt.close("all")


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "published.duckdb"
    with duckdb.connect(str(path)) as connection:
        for table, build in CONTRACT_TABLES.items():
            frame = pd.concat([build().assign(suite="mine"), build().assign(suite="other")], ignore_index=True)
            connection.register("frame", frame)
            connection.execute(f"create table {table} as select * from frame")
            connection.unregister("frame")
    return path


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_queries_read_one_suite(name, database):
    spec = figure_by_name(name)
    data = query(database, spec.sql, "mine")
    assert len(data) == len(BUILDERS[name]())
    assert set(data.columns) == set(BUILDERS[name]().columns)
    plt.close(spec.plot(data))
    assert query(database, spec.sql, "absent").empty


def test_similarity_query_joins_consecutive_and_cross_seed(database):
    data = query(database, figure_by_name("ours_fingerprint_similarity").sql, "mine")
    row = data[(data["size"] == "s") & (data["step"] == 2)].iloc[0]
    assert row["consecutive_mean"] == pytest.approx(0.95)  # mean over the two seeds
    assert row["n_seeds_consecutive"] == 2 and row["cross_seed_min"] == pytest.approx(0.4)
    assert row["cross_seed_cka"] == pytest.approx(0.6)
    assert data["n_params"].is_monotonic_increasing


def test_regime_caption_follows_the_dbt_vars_and_the_suites_own(tmp_path, monkeypatch):
    import yaml

    from reports import dbt_vars

    spec = figure_by_name("ours_fingerprint_regimes")
    default = regime_settings()
    assert (default.tau_low, default.tau_high, default.gap) == (0.997, 0.999, 50)
    caption = spec.caption_for()
    assert "checkpoint 50 steps earlier" in caption and "s_t < 0.997" in caption and "s_t > 0.999" in caption
    project = yaml.safe_load(dbt_vars.DBT_PROJECT_YML.read_text())
    project["vars"].update(
        regime_tau_low=0.8, regime_tau_high=0.95, regime_suites={"tiny": {"regime_tau_high": 0.9, "regime_gap": 8}}
    )
    other = tmp_path / "dbt_project.yml"
    other.write_text(yaml.safe_dump(project))
    monkeypatch.setattr(dbt_vars, "DBT_PROJECT_YML", other)

    assert "s_t < 0.8, stable if s_t > 0.95" in spec.caption_for()
    assert "s_t < 0.8, stable if s_t > 0.95" in spec.caption_for(suite="another")
    tiny = spec.caption_for(suite="tiny")
    assert "s_t < 0.8, stable if s_t > 0.9," in tiny and "8 steps earlier" in tiny
    assert regime_settings("tiny") == RegimeSettings(0.8, 0.9, 8)
