"""Figures and the report page drawn from small hand-made frames; the query files on a two-suite warehouse."""

import base64
import dataclasses
import html
import re

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlglot
from matplotlib.collections import LineCollection
from sqlglot import exp

from extract.config import REPO_ROOT, IclConfig, Settings, WarehousePaths
from reports.figures import (
    DIVERGENT_CONTEXTS,
    FIGURES,
    QUERIES,
    TABLES,
    TOKEN_RANKINGS,
    figure_by_name,
    query,
    relations_read,
    render,
    rows_for_suite,
    suite_objectives,
    table_by_name,
)
from reports.page import (
    SQL_HINT,
    FigureSection,
    TableSection,
    divergent_contexts_section,
    figure_section,
    rankings_section,
    render_page,
    table_section,
)
from reports.plots import KL_LOG_FLOOR
from tests.helpers.report_frames import CONTRACT_TABLES, LOGLIK_SAMPLES

STEPS = [0, 1, 2, 4, 8]


def frame(**columns_by_size):
    rows = []
    for size, n_params in (("s", 10), ("l", 100)):
        for step in STEPS:
            rows.append({"size": size, "n_params": n_params, "step": step, **columns_by_size})
    return pd.DataFrame(rows)


def with_a_missing_seed(rows, size="l", step=4):
    """The rows with one step compared without one of its three seeds (no checkpoint there)."""
    rows = rows.assign(n_seeds=3, n_seeds_missing=0)
    at = (rows["size"] == size) & (rows["step"] == step)
    rows.loc[at, "n_seeds"], rows.loc[at, "n_seeds_missing"] = 2, 1
    return rows


def level_frame(value, labels=("1–9", "10–99", "100–999")):
    parts = [
        frame(**{value: -0.1 * order, "level": label, "level_order": order, "n_contexts": 5})
        for order, label in enumerate(labels)
    ]
    return pd.concat(parts, ignore_index=True)


# Each size's turning points as convergence_phases has them: located (step, interval over pairs),
# or not located (NULL): the uniform phase ends at 1 and E[conv] peaks at 4; nothing after.
PHASES = {
    "uniform_end": (1, 0, 2),
    "convergence_peak": (4, 2, 8),
    "divergence_bottom": (None, None, None),
    "reconvergence_start": (None, None, None),
}


def phases_frame():
    """convergence_phases' rows for the sizes of `frame`."""
    return pd.DataFrame(
        [
            {
                "size": size,
                "n_params": n_params,
                "turning_point": name,
                "turning_order": order,
                "step": step,
                "step_low": low,
                "step_high": high,
                "status": "located" if step is not None else "not_reached",
            }
            for size, n_params in (("s", 10), ("l", 100))
            for order, (name, (step, low, high)) in enumerate(PHASES.items(), start=1)
        ]
    ).astype({"step": "Int64", "step_low": "Int64", "step_high": "Int64"})


def with_phases(rows):
    """The rows with each size's turning points as the query puts them on every row."""
    for name, (step, low, high) in PHASES.items():
        rows = rows.assign(**{name: step, f"{name}_low": low, f"{name}_high": high})
    return rows


def word_class_frame(value):
    """Figure 3 (centre)'s levels: two function-word tags and two content-word groups."""
    rows = level_frame(value, ("DT", "MD", "noun", "JJ"))
    return rows.assign(word_class=np.where(rows["level"].isin(["DT", "MD"]), "function", "content"))


def final_surprisal_frame():
    """Size s with its bins; size l's final checkpoint not extracted yet: one status row, no bins."""
    rows = level_frame("expected_conv", ("0.5–1", "1–2"))
    rows = rows.assign(final_step=8, status="final checkpoint, step 8, extracted")
    rows = rows[rows["size"] == "s"]
    waiting = pd.DataFrame(
        [{"size": "l", "n_params": 100, "final_step": 16, "status": "final checkpoint, step 16, not extracted yet"}]
    )
    return pd.concat([rows, waiting], ignore_index=True)


def kl_distribution_frame():
    """mart_kl_distribution's rows for the sizes of `frame`: KL percentiles growing with the
    percentile (the lowest 0, which a log axis cannot show), top-1 agreement inside its pairs'
    range, a step of size l compared without a seed."""
    rows = frame(
        n_pairs=6,
        n_tokens=600,
        kl_mean=0.5,
        kl_p0_1=0.0,
        kl_p1=0.001,
        kl_p10=0.01,
        kl_p50=0.1,
        kl_p90=1.0,
        kl_p99=3.0,
        kl_p99_9=6.0,
        kl_max=9.0,
        top1_agreement_se=0.02,
        top1_agreement_pair_min=0.4,
        top1_agreement_pair_max=0.7,
    )
    rows["top1_agreement"] = 0.5 + 0.02 * rows["step"]
    return with_a_missing_seed(rows)


SAMPLES = {
    "fehlauer_fig1_convergence": with_phases(
        with_a_missing_seed(
            frame(
                expected_conv=-0.2,
                band_low=-0.25,
                band_high=-0.15,
                kl_uniform=1.0,
                kl_uniform_seed_std=0.1,
                kl_unigram=0.5,
                kl_unigram_seed_std=0.05,
                icl_score=0.3,
                icl_score_seed_std=0.05,
                cross_entropy=6.0,
                cross_entropy_seed_std=0.1,
            )
        )
    ),
    "fehlauer_fig3_frequency": level_frame("expected_conv"),
    "fehlauer_fig3_pos": word_class_frame("expected_conv"),
    "ours_pos_group": level_frame("expected_conv", ("noun", "verb", "determiner")),
    "ours_word_class": level_frame("expected_conv", ("function", "content")),
    "fehlauer_fig7_noun_verb_tags": level_frame("expected_conv", ("DT", "NN", "VBZ")),
    "fehlauer_fig3_final_surprisal": final_surprisal_frame(),
    "fehlauer_fig4_variance": frame(expected_conv=-0.2, conv_variance=0.01, conv_std=0.1),
    "fehlauer_fig10_previous_pos": level_frame("expected_conv", ("DT", "NN")),
    "fehlauer_fig11_previous_pos_cross_entropy": level_frame("cross_entropy", ("DT", "NN")),
    "fehlauer_fig9_cross_entropy_frequency": level_frame("cross_entropy"),
    "fehlauer_fig9_cross_entropy_pos": word_class_frame("cross_entropy"),
    "fehlauer_fig9_cross_entropy_final_surprisal": level_frame("cross_entropy", ("0.5–1", "1–2")),
    "fehlauer_fig8_regression": pd.DataFrame(
        [
            {"step": s, "term": t, "estimate": 0.1, "std_error": 0.01, "ci_low": 0.08, "ci_high": 0.12}
            for s in STEPS
            for t in ("log_frequency", "size=l", "pos=VB")
        ]
    ),
    "ours_icl_over_training": frame(icl_score=0.3, icl_score_seed_std=0.05),
    "ours_kl_distribution": kl_distribution_frame().drop(columns=["n_seeds", "n_seeds_missing"]),
    "ours_top1_agreement": kl_distribution_frame(),
    "fehlauer_fig2_blimp": frame(
        expected_conv=-0.05,
        band_low=-0.07,
        band_high=-0.03,
        accuracy=0.6,
        accuracy_min=0.55,
        accuracy_max=0.65,
        n_paradigms=67,
        n_pairs=1340,
        n_seeds=5,
    ),
    "ours_blimp_fields": level_frame("expected_conv", ("morphology", "semantics", "syntax", "syntax_semantics")),
    "fehlauer_fig2_masked": with_a_missing_seed(
        frame(expected_conv=-0.3, band_low=-0.35, band_high=-0.25, n_contexts=100)
    ),
    **LOGLIK_SAMPLES,
}


def test_every_figure_has_a_sample():
    assert {spec.name for spec in FIGURES} == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_figures_render_to_png(name, tmp_path):
    out = render(figure_by_name(name), SAMPLES[name], tmp_path / f"{name}.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*")), "no staging file left behind"


def test_figures_are_drawn_for_the_suites_they_apply_to():
    causal = {spec.name for spec in FIGURES if spec.applies_to("causal")}
    masked = {spec.name for spec in FIGURES if spec.applies_to("masked")}
    # a masked LM has no left-to-right probability of a text: no ICL, log-likelihood vectors or BLiMP
    assert (
        not {
            "ours_icl_over_training",
            "kishino_model_map",
            "kishino_diffusion_exponents",
            "ours_loglik_vs_exact",
            "fehlauer_fig2_blimp",
            "ours_blimp_fields",
        }
        & masked
    )
    assert "fehlauer_fig2_masked" in masked - causal
    assert {"fehlauer_fig1_convergence", "fehlauer_fig3_frequency", "ours_fingerprint_regimes"} <= causal & masked


def test_figure_names_say_whose_figure_it_is():
    """The papers' figures carry their own numbers in name and title; ours say they are ours."""
    for spec in FIGURES:
        paper, _, rest = spec.name.partition("_")
        if paper == "fehlauer":
            number = re.fullmatch(r"fig(\d+)_.+", rest).group(1)
            assert spec.title.startswith(f"Figure {number}") and "Fehlauer et al. 2025" in spec.title, spec.name
        elif paper == "ours":
            assert spec.title.startswith("Ours: "), spec.name
        elif paper == "kishino":
            assert spec.title.startswith("After Kishino et al. 2026: "), spec.name
    assert TOKEN_RANKINGS.name == "fehlauer_table1_token_rankings"


@pytest.mark.parametrize("name", ["fehlauer_fig1_convergence", "fehlauer_fig2_masked"])
def test_a_step_compared_without_a_seed_is_ringed(name):
    """A step where a seed of the suite has no checkpoint is drawn with a ring, which the legend
    names; with every seed at every step there is neither."""
    spec = figure_by_name(name)

    def rings_and_legend(data):
        figure = spec.plot(data)
        rings = [
            line
            for axis in figure.axes
            for line in axis.get_lines()
            if line.get_markerfacecolor() == "none" and line.get_linestyle() == "None"
        ]
        labels = [
            text.get_text() for axis in figure.axes if axis.get_legend() for text in axis.get_legend().get_texts()
        ]
        return rings, labels

    rings, labels = rings_and_legend(SAMPLES[name])
    assert rings and all(list(ring.get_xdata()) == [4] for ring in rings), "size l's step 4 only"
    assert "a seed missing" in labels
    rings, labels = rings_and_legend(SAMPLES[name].assign(n_seeds_missing=0))
    assert not rings and "a seed missing" not in labels


def test_kl_distribution_draws_each_sizes_median_mean_and_bands_from_its_rows():
    """One panel per size, smallest first: its median and mean lines are the rows' kl_p50 and
    kl_mean, and its three bands span 10-90, 1-99 and 0.1-99.9 % with a KL of 0 drawn at the floor."""
    data = kl_distribution_frame()
    data.loc[data["size"] == "l", "kl_p50"] = 0.2
    figure = figure_by_name("ours_kl_distribution").plot(data)
    assert [axis.get_title() for axis in figure.axes] == ["s", "l"]
    for axis, median in zip(figure.axes, (0.1, 0.2)):
        assert axis.get_yscale() == "log"
        lines = {line.get_label(): line for line in axis.get_lines()}
        assert list(lines["median"].get_xdata()) == STEPS and set(lines["median"].get_ydata()) == {median}
        assert set(lines["mean"].get_ydata()) == {0.5}
        bands = [collection.get_paths()[0].vertices[:, 1] for collection in axis.collections]
        spans = [(band.min(), band.max()) for band in bands]
        assert spans == [(KL_LOG_FLOOR, 6.0), (0.001, 3.0), (0.01, 1.0)]


def test_top1_agreement_draws_each_size_with_its_error_bars_and_pairs_range():
    data = kl_distribution_frame()
    figure = figure_by_name("ours_top1_agreement").plot(data)
    (axis,) = figure.axes
    curves = {container.get_label(): container for container in axis.containers}
    assert list(curves) == ["s", "l"]
    for curve in curves.values():
        line, _, (bars,) = curve.lines
        assert list(line.get_xdata()) == STEPS
        np.testing.assert_allclose(np.asarray(line.get_ydata(), dtype=float), 0.5 + 0.02 * np.array(STEPS))
        heights = [segment[1, 1] - segment[0, 1] for segment in bars.get_segments()]
        np.testing.assert_allclose(heights, 0.04, err_msg="± 1 standard error")
    bands = [collection for collection in axis.collections if not isinstance(collection, LineCollection)]
    spans = [(band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()) for band in bands]
    assert spans == [(0.4, 0.7), (0.4, 0.7)], "each size's range across seed pairs"


def test_figure1_marks_the_located_turning_points_with_the_pairs_interval():
    """Each size's uniform-phase end and convergence peak are marked on its E[conv] curve, with
    a bar over the seed pairs' steps; the turning points not located are not, nor named in the
    legend; and a frame without the phase columns draws as before."""
    figure = figure_by_name("fehlauer_fig1_convergence").plot(SAMPLES["fehlauer_fig1_convergence"])
    convergence, *others = figure.axes
    markers = [
        (line.get_marker(), tuple(line.get_xdata()))
        for line in convergence.get_lines()
        if line.get_markerfacecolor() == "white"
    ]
    assert sorted(markers) == sorted([("s", (1,)), ("^", (4,))] * 2), "two sizes, two turning points each"
    # The bars: the horizontal segments of the error bars' line collections, (from, to) in steps.
    spans = [
        (start[0], end[0])
        for collection in convergence.collections
        if isinstance(collection, LineCollection)
        for start, end in collection.get_segments()
    ]
    assert sorted(spans) == sorted([(0, 2), (2, 8)] * 2)
    assert not any(line.get_markerfacecolor() == "white" for axis in others for line in axis.get_lines())
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["uniform phase ends", "convergence peaks"]

    without = SAMPLES["fehlauer_fig1_convergence"].drop(
        columns=[f"{name}{end}" for name in PHASES for end in ("", "_low", "_high")]
    )
    figure = figure_by_name("fehlauer_fig1_convergence").plot(without)
    assert not figure.legends and not any(line.get_markerfacecolor() == "white" for line in figure.axes[0].get_lines())


def test_empty_data_names_the_mart(tmp_path):
    spec = figure_by_name("fehlauer_fig3_frequency")
    with pytest.raises(ValueError, match="mart_conditional_convergence"):
        render(spec, SAMPLES[spec.name].iloc[0:0], tmp_path / "x.png")


def test_page_embeds_figures_numbers_and_escapes_text(tmp_path):
    spec = figure_by_name("fehlauer_fig4_variance")
    png = render(spec, SAMPLES[spec.name], tmp_path / "v.png").read_bytes()
    data = SAMPLES["fehlauer_fig4_variance"]
    rankings = pd.DataFrame(
        {
            "size": "s",
            "step": 8,
            "rank_group": ["lowest", "middle", "highest"],
            "rank": [1, 50, 99],
            "token_text": [" the", "<b>", "\n"],
            "n_occurrences": [40, 5, 3],
            "mean_kl": [0.01, 0.2, 1.5],
        }
    )
    page = render_page(
        "Title",
        "Intro",
        {"seeds": "5"},
        [
            figure_section(FigureSection("v", "Variance", "What it shows.", "mart_x", png, data, spec.sql)),
            rankings_section(rankings, "t1", TOKEN_RANKINGS.sql),
        ],
        [("v", "Variance"), ("t1", "Token rankings")],
        "footer",
    )
    assert page.count("data:image/png;base64,") == 1
    csv = re.search(r'download="v.csv" href="data:text/csv;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(csv).decode().splitlines()[0] == ",".join(data.columns)
    assert "&lt;b&gt;" in page and "<b>" not in page, "token text is escaped"
    assert "'\\n'" in page, "token texts are shown as literals so whitespace tokens are visible"
    assert all(f"<h3>{group} mean KL</h3>" in page for group in ("lowest", "middle", "highest"))
    assert 'href="#t1"' in page


def test_figures_are_shown_at_one_text_scale(tmp_path):
    from reports.page import display_width

    wide = render(figure_by_name("fehlauer_fig1_convergence"), SAMPLES["fehlauer_fig1_convergence"], tmp_path / "a.png")
    narrow = render(figure_by_name("fehlauer_fig4_variance"), SAMPLES["fehlauer_fig4_variance"], tmp_path / "b.png")
    # 8 x 11 in (four stacked rows, as the paper's) and 7 x 3.6 in at 150 dpi, shown as at 100 dpi.
    assert display_width(wide.read_bytes()) == 800
    assert display_width(narrow.read_bytes()) == 700


# ------------------------------------------------------------------------------------------------
# Query files: one per figure and Table 1, every suite's rows, read on a two-suite warehouse
# ------------------------------------------------------------------------------------------------

MARTS = {path.stem for path in (REPO_ROOT / "dbt_project" / "models").glob("*/mart_*.sql")}
DBT_SEEDS = {path.stem for path in (REPO_ROOT / "dbt_project" / "seeds").glob("*.csv")}
PYTHON_TABLES = {
    "regression_coefficients",
    "loglik_model_map",
    "diffusion_exponents",
    "loglik_exact_agreement",
    "convergence_phases",
    "convergence_intervals",
    "trajectory_exponents",
}
QUERY_FILES = (
    *(spec.query_file for spec in FIGURES),
    *(spec.query_file for spec in TABLES),
    TOKEN_RANKINGS,
    DIVERGENT_CONTEXTS,
)


def rankings_frame():
    return pd.DataFrame(
        [
            {
                "size": size,
                "n_params": n_params,
                "step": 8,
                "rank_group": group,
                "rank": rank,
                "token_text": f"{group}{rank}",
                "n_occurrences": 3 + rank,
                "mean_kl": 0.1 * rank,
            }
            for size, n_params in (("s", 10), ("l", 100))
            for group in ("highest", "middle", "lowest")
            for rank in (1, 2)
        ]
    )


def divergent_contexts_frame():
    """mart_divergent_contexts: sizes s and l at steps 4 and 8, two contexts each (rank 2 before
    rank 1, so only the query's order puts them right)."""
    return pd.DataFrame(
        [
            {
                "size": size,
                "step": step,
                "n_params": n_params,
                "rank": rank,
                "position": 10 * rank,
                "mean_kl": 2.0 / rank,
                "n_pairs": 6,
                "doc_id": "ca01",
                "context_len": 20,
                "context_tokens_shown": 12 if rank == 1 else 20,
                "context_text": "The jury\nsaid <that>" if rank == 1 else "",
                "target_token_id": 7,
                "target_text": " it",
            }
            for size, n_params in (("s", 10), ("l", 100))
            for step in (4, 8)
            for rank in (2, 1)
        ]
    )


def divergent_predictions_frame():
    """mart_divergent_context_predictions for those contexts, seeds 2 and 1; at rank 2 without
    text (a lake without the vocabulary)."""
    return pd.DataFrame(
        [
            {
                "size": size,
                "step": step,
                "n_params": n_params,
                "rank": rank,
                "position": 10 * rank,
                "seed": seed,
                "target_probability": 0.1 * seed,
                "top_token_ids": [5, 6, 7],
                "top_token_texts": [" the", "\n", '"'] if rank == 1 else [None, None, None],
                "top_probabilities": [0.5, 0.25, 0.1 / seed],
            }
            for size, n_params in (("s", 10), ("l", 100))
            for step in (4, 8)
            for rank in (2, 1)
            for seed in (2, 1)
        ]
    )


def mcentire_frame(per_regime: bool = False, **columns):
    """Rows of a McEntire table mart: sizes s and l, both measures, and with `per_regime` each regime."""
    rows = []
    for size, n_params in (("s", 10), ("l", 100)):
        for comparison, gap in (("fixed_gap", 50), ("log_spaced", None)):
            for regime in ("chaotic", "transition", "stable") if per_regime else (None,):
                row = {"size": size, "n_params": n_params, "comparison": comparison, "gap": gap, **columns}
                rows.append(row if regime is None else {**row, "regime": regime})
    return pd.DataFrame(rows).astype({"gap": "Int64"})


MCENTIRE_TABLES = {
    "mart_mcentire_table1_final_loss": lambda: pd.DataFrame(
        [
            {
                "size": size,
                "n_params": n_params,
                "step": 8,
                "n_seeds": 5,
                "mean_loss": 1.616,
                "std_loss": 0.007,
                "min_loss": 1.609,
                "max_loss": 1.625,
                "cv_percent": 0.41,
            }
            for size, n_params in (("s", 10), ("l", 100))
        ]
    ),
    "mart_regime_entry": lambda: mcentire_frame(
        per_regime=True,
        n_seeds=5,
        n_seeds_entered=5,
        mean_first_step=160.0,
        std_first_step=22.36,
        min_first_step=150,
        max_first_step=200,
        n_seeds_settled=0,
        mean_settled_step=None,
        std_settled_step=None,
    ),
    "mart_mcentire_table3_regime_share": lambda: mcentire_frame(
        n_seeds=5,
        n_checkpoints=40,
        share_chaotic=0.04,
        share_transition=0.6,
        share_stable=0.335,
        share_unclassified=0.025,
        n_checkpoints_agree=29,
        share_all_agree=0.725,
    ),
    "mart_mcentire_table4_regime_similarity": lambda: mcentire_frame(
        per_regime=True, n_seeds=5, n_checkpoints=10, mean_similarity=0.9987, seed_std_similarity=0.0001
    ),
}

CONDITION_LEVELS = {
    "frequency_bin": ("1–9", "10–99", "100–999"),
    "pos_group": ("noun", "verb", "determiner"),
    "pos": ("DT", "MD", "JJ", "NN", "VBZ"),
    "word_class": ("function", "content"),
    "final_surprisal_bin": ("0.5–1", "1–2"),
    "prev_pos": ("DT", "NN"),
    "prev_pos_group": ("noun", "verb"),
}
WAREHOUSE_TABLES = {
    "mart_expected_convergence": lambda: with_a_missing_seed(
        frame(
            expected_conv=-0.2,
            pair_conv_std=0.05,
            band_low=-0.25,
            band_high=-0.15,
            conv_variance=0.01,
            conv_std=0.1,
            n_contexts=100,
        )
    ),
    "convergence_intervals": lambda: frame(expected_conv=-0.2, ci_low=-0.3, ci_high=-0.1, level=0.95),
    "mart_model_stats": lambda: frame(
        kl_uniform=1.0,
        kl_uniform_seed_std=0.1,
        kl_unigram=0.5,
        kl_unigram_seed_std=0.05,
        cross_entropy=6.0,
        cross_entropy_seed_std=0.1,
    ),
    "mart_final_steps": lambda: pd.DataFrame(
        {
            "size": ["s", "l"],
            "final_step": [8, 16],
            "final_extracted": [True, False],
            "status": ["final checkpoint, step 8, extracted", "final checkpoint, step 16, not extracted yet"],
        }
    ),
    "convergence_phases": phases_frame,
    "mart_conditional_convergence": lambda: pd.concat(
        [
            level_frame("expected_conv", levels).assign(cross_entropy=6.0, conv_std=0.1, condition=condition)
            for condition, levels in CONDITION_LEVELS.items()
        ],
        ignore_index=True,
    ),
    "regression_coefficients": lambda: SAMPLES["fehlauer_fig8_regression"].assign(
        n_obs=100, r_squared=0.3, reference="size=s"
    ),
    "mart_icl_summary": lambda: SAMPLES["ours_icl_over_training"],
    "mart_blimp_convergence": lambda: SAMPLES["fehlauer_fig2_blimp"],
    "mart_blimp_field": lambda: (
        SAMPLES["ours_blimp_fields"]
        .rename(columns={"level": "field"})
        .drop(columns=["level_order", "n_contexts"])
        .assign(n_paradigms=5, accuracy=0.6)
    ),
    "mart_token_rankings": rankings_frame,
    "mart_kl_distribution": kl_distribution_frame,
    "mart_divergent_contexts": divergent_contexts_frame,
    "mart_divergent_context_predictions": divergent_predictions_frame,
    **CONTRACT_TABLES,
    **MCENTIRE_TABLES,
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """Every relation the queries read, for suites `mine` and `other`: the same rows, `other`'s
    inserted in reverse, both shuffled together, so only a query's `order by` orders them."""
    path = tmp_path_factory.mktemp("warehouse") / "published.duckdb"
    with duckdb.connect(str(path)) as connection:
        for table, build in WAREHOUSE_TABLES.items():
            rows = build()
            if table in DBT_SEEDS:  # the same for every suite, as dbt loads it
                connection.register("frame", rows)
                connection.execute(f"create table {table} as select * from frame")
                connection.unregister("frame")
                continue
            both = pd.concat([rows.assign(suite="mine"), rows.iloc[::-1].assign(suite="other")], ignore_index=True)
            connection.register("frame", both.sample(frac=1.0, random_state=0))
            connection.execute(f"create table {table} as select * from frame")
            connection.unregister("frame")
        connection.execute(
            "create table mart_suites as select * from (values ('other', 'masked'), "
            "('mine', 'causal'), ('empty', 'causal')) t(suite, objective)"
        )
    return path


def test_one_query_file_per_figure_and_table():
    assert {path.stem for path in QUERIES.glob("*.sql")} == {query_file.name for query_file in QUERY_FILES}
    for query_file in QUERY_FILES:
        assert query_file.sql.startswith("-- "), f"{query_file.path.name} opens with what it returns"
        tree = sqlglot.parse_one(query_file.sql, read="duckdb")
        assert not list(tree.find_all(exp.Placeholder, exp.Parameter)), f"{query_file.path.name} takes no parameter"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_query_files_return_every_suite_and_the_figure_draws_one(name, warehouse, tmp_path):
    spec = figure_by_name(name)
    every_suite = query(warehouse, spec.sql)
    assert every_suite.columns[0] == "suite" and set(every_suite["suite"]) == {"mine", "other"}
    mine, other = rows_for_suite(every_suite, "mine"), rows_for_suite(every_suite, "other")
    assert "suite" not in mine.columns and len(mine) + len(other) == len(every_suite) and len(mine) > 0
    # The same rows inserted in another order come out in the same order: the query orders them.
    pd.testing.assert_frame_equal(mine, other)
    pd.testing.assert_frame_equal(query(warehouse, spec.sql, "mine"), mine)
    assert render(spec, mine, tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", [spec.name for spec in TABLES])
def test_table_queries_return_every_suite_in_order(name, warehouse):
    spec = table_by_name(name)
    every_suite = query(warehouse, spec.sql)
    assert every_suite.columns[0] == "suite" and set(every_suite["suite"]) == {"mine", "other"}
    mine, other = rows_for_suite(every_suite, "mine"), rows_for_suite(every_suite, "other")
    assert len(mine) > 0
    pd.testing.assert_frame_equal(mine, other)
    assert list(mine["size"].drop_duplicates()) == ["s", "l"], "by n_params"
    if "comparison" in mine:
        assert list(mine.loc[mine["size"] == "s", "comparison"].drop_duplicates()) == ["fixed_gap", "log_spaced"]


def test_convergence_bands_are_the_bootstrap_intervals_with_the_pair_spread_beside_them(warehouse):
    for name in ("fehlauer_fig1_convergence", "fehlauer_fig2_masked"):
        rows = query(warehouse, figure_by_name(name).sql, "mine")
        assert (rows["band_low"] == -0.3).all() and (rows["band_high"] == -0.1).all(), name
        assert (rows["pair_band_low"] == -0.25).all() and (rows["pair_conv_std"] == 0.05).all(), name


def test_mcentire_tables_read_as_the_paper_writes_them(warehouse):
    entry = query(warehouse, table_by_name("mcentire_table2_regime_entry").sql, "mine")
    assert list(entry.loc[(entry["size"] == "s") & (entry["comparison"] == "fixed_gap"), "regime"]) == [
        "chaotic",
        "transition",
        "stable",
    ]
    assert set(entry["first_step"]) == {"160 ± 22"} and set(entry["first_step_range"]) == {"[150, 200]"}
    shares = query(warehouse, table_by_name("mcentire_table3_regime_share").sql, "mine").iloc[0]
    assert (shares["chaotic_pct"], shares["transition_pct"], shares["stable_pct"]) == pytest.approx((4, 60, 33.5))
    assert shares["agreement_pct"] == pytest.approx(72.5)
    similarity = query(warehouse, table_by_name("mcentire_table4_regime_similarity").sql, "mine")
    assert list(similarity.columns) == [
        "size", "n_params", "comparison", "gap", "chaotic", "transition", "stable", "n_seeds_chaotic",
        "n_seeds_transition", "n_seeds_stable",
    ]  # fmt: skip
    assert len(similarity) == 4 and list(similarity["stable"]) == pytest.approx([0.9987] * 4)
    assert list(similarity["gap"].isna()) == [False, True, False, True]  # fixed_gap's 50; none for log_spaced


def test_table_sections_show_every_row_escaped_with_their_csv():
    data = pd.DataFrame({"size": ["s", "<l>"], "comparison": ["fixed_gap", "log_spaced"], "stable": [0.99973, 1.0]})
    section = table_section(
        TableSection("t3", "McEntire (2026), Table 4: x", "What <it> shows.", "mart_y", data, "select 1", 6)
    )
    assert "<h2>McEntire (2026), Table 4: x</h2>" in section and "What &lt;it&gt; shows." in section
    assert "&lt;l&gt;" in section and "<l>" not in section
    assert "0.99973" in section, "six significant digits: 0.9997 would hide the difference from 1"
    csv = re.search(r'download="t3.csv" href="data:text/csv;base64,([^"]+)"', section).group(1)
    assert base64.b64decode(csv).decode().splitlines()[0] == "size,comparison,stable"


def test_table1_query_orders_groups_within_each_size(warehouse):
    rankings = query(warehouse, TOKEN_RANKINGS.sql, "mine")
    assert list(rankings.columns) == ["size", "step", "rank_group", "rank", "token_text", "n_occurrences", "mean_kl"]
    assert list(rankings["size"].drop_duplicates()) == ["s", "l"], "by n_params"
    groups = list(rankings.loc[rankings["size"] == "s", "rank_group"])
    assert groups == ["lowest", "lowest", "middle", "middle", "highest", "highest"]
    pd.testing.assert_frame_equal(rankings, query(warehouse, TOKEN_RANKINGS.sql, "other"))


def test_divergent_contexts_query_shows_each_seeds_predictions_at_the_last_step(warehouse):
    rows = query(warehouse, DIVERGENT_CONTEXTS.sql, "mine")
    assert list(rows.columns) == [
        "size", "step", "rank", "mean_kl", "context_cut", "context_text", "target_text", "seed", "top_predictions",
        "target_probability",
    ]  # fmt: skip
    assert list(rows["size"].drop_duplicates()) == ["s", "l"], "by n_params"
    assert set(rows["step"]) == {8}, "each size's last step"
    assert list(rows.loc[rows["size"] == "s", ["rank", "seed"]].itertuples(index=False, name=None)) == [
        (1, 1), (1, 2), (2, 1), (2, 2),
    ]  # fmt: skip
    first = rows.iloc[0]
    assert first["top_predictions"] == '" the" 0.50 · "\\n" 0.25 · "\\"" 0.10'
    assert first["context_cut"] and not rows.iloc[2]["context_cut"]
    assert rows.iloc[2]["top_predictions"] == "#5 0.50 · #6 0.25 · #7 0.10", "ids where there is no text"
    pd.testing.assert_frame_equal(rows, query(warehouse, DIVERGENT_CONTEXTS.sql, "other"))


def test_divergent_contexts_section_marks_the_target_and_escapes_text(warehouse):
    rows = query(warehouse, DIVERGENT_CONTEXTS.sql, "mine")
    section = divergent_contexts_section(rows, "c", DIVERGENT_CONTEXTS.sql, "mart_x")
    assert "<h3>size s, step 8</h3>" in section and "<h3>size l, step 8</h3>" in section
    assert "…The jury↵said &lt;that&gt;<mark> it</mark>" in section, "cut, line breaks shown, escaped, target marked"
    assert "<that>" not in section
    assert "&quot; the&quot; 0.50" in section and "(target 0.10)" in section
    assert section.count("<mark>") == 4  # one per context: 2 sizes x 2 ranks
    assert html.escape(DIVERGENT_CONTEXTS.sql.strip()) in section


def test_every_section_carries_its_query_collapsed():
    """Figures, tables, Table 1 and the contexts: each shows the SQL of its query file, escaped,
    in a collapsed block that says it runs as it is in `make sql`."""
    spec = figure_by_name("fehlauer_fig4_variance")
    data = SAMPLES[spec.name]
    sections = {
        spec.sql: figure_section(
            FigureSection("v", spec.title, "c", spec.source, b"\x89PNG" + bytes(20), data, spec.sql)
        ),
        **{
            table.sql: table_section(TableSection(table.name, table.title, "c", table.source, data, table.sql))
            for table in TABLES
        },
        TOKEN_RANKINGS.sql: rankings_section(rankings_frame(), "t1", TOKEN_RANKINGS.sql),
        DIVERGENT_CONTEXTS.sql: divergent_contexts_section(
            divergent_contexts_frame().iloc[0:0], "c", DIVERGENT_CONTEXTS.sql, "mart_x"
        ),
    }
    for sql, section in sections.items():
        block = re.search(r'<details class="sql"><summary>SQL</summary>(.*?)</details>', section, re.S)
        assert block, section[:200]
        assert html.escape(sql.strip()) in block.group(1) and html.escape(SQL_HINT) in block.group(1)
        assert "<" not in block.group(1).split("<code>", 1)[1].split("</code>", 1)[0], "the SQL is escaped"


def test_blimp_field_levels_are_numbered_within_a_suite(warehouse):
    every_suite = query(warehouse, figure_by_name("ours_blimp_fields").sql)
    for suite in ("mine", "other"):
        rows = rows_for_suite(every_suite, suite)
        assert sorted(rows["level_order"].unique()) == [1, 2, 3, 4]


def test_suite_objectives_lists_suites_with_convergence_rows(warehouse):
    assert suite_objectives(warehouse) == {"mine": "causal", "other": "masked"}


def test_rows_for_suite_keeps_order_and_each_suite_alone_its_dtypes():
    every_suite = pd.DataFrame(
        {
            "suite": ["b", "a", "b", "a"],
            "step": [3, 2, 1, 0],
            "prev_step": pd.array([None, 1, 0, 2], dtype="Int64"),
            "value": [0.5, np.nan, 0.25, 1.0],
        }
    )
    a, b = rows_for_suite(every_suite, "a"), rows_for_suite(every_suite, "b")
    assert list(a.columns) == ["step", "prev_step", "value"] and list(a["step"]) == [2, 0]
    assert list(a.index) == [0, 1]
    # a's prev_step holds no NULL: plain int64, as a query for a alone returns it (CSV "1", not "1.0");
    # b's holds one and stays nullable.
    assert a["prev_step"].dtype == np.dtype("int64") and list(a["prev_step"]) == [1, 2]
    assert str(b["prev_step"].dtype) == "Int64" and b["prev_step"].isna().sum() == 1
    assert a["value"].dtype == np.dtype("float64") and a["value"].isna().sum() == 1
    assert rows_for_suite(every_suite, "absent").empty
    assert list(every_suite["suite"]) == ["b", "a", "b", "a"], "the frame it reads is left as it was"


def test_relations_read_come_from_the_sql_without_its_ctes():
    sql = (
        "with recent as (select * from mart_a where step > 0), x as (select * from recent) "
        "select * from x join loglik_model_map m using (suite) where suite in (select suite from mart_b)"
    )
    assert relations_read(sql) == ("loglik_model_map", "mart_a", "mart_b")


def test_every_query_reads_relations_of_the_warehouse():
    for query_file in QUERY_FILES:
        assert query_file.reads and set(query_file.reads) <= MARTS | PYTHON_TABLES | DBT_SEEDS, query_file.name
    assert figure_by_name("fehlauer_fig1_convergence").reads == (
        "convergence_intervals",
        "convergence_phases",
        "mart_expected_convergence",
        "mart_icl_summary",
        "mart_model_stats",
    )
    assert figure_by_name("fehlauer_fig3_final_surprisal").reads == (
        "mart_conditional_convergence",
        "mart_expected_convergence",
        "mart_final_steps",
    )
    assert figure_by_name("ours_fingerprint_similarity").reads == (
        "mart_fingerprint_cross_seed",
        "mart_fingerprint_similarity",
    )
    assert figure_by_name("fehlauer_fig8_regression").reads == ("regression_coefficients",)
    assert figure_by_name("fehlauer_fig3_frequency").source == "mart_conditional_convergence"
    assert TOKEN_RANKINGS.reads == ("mart_token_rankings",)
    assert DIVERGENT_CONTEXTS.reads == ("mart_divergent_context_predictions", "mart_divergent_contexts")


# ------------------------------------------------------------------------------------------------
# Captions: templates rendered from the settings they name
# ------------------------------------------------------------------------------------------------


def test_every_caption_renders_from_the_settings(tmp_path):
    settings = Settings(paths=WarehousePaths(tmp_path))
    for spec in (*FIGURES, *TABLES):
        caption = spec.caption_for(settings)
        assert caption and "{" not in caption and "}" not in caption, spec.name
        assert caption == spec.caption_for(), "None: the default settings"


def test_icl_caption_follows_the_icl_settings(tmp_path):
    """The paper's 500th token is index 499, the default; captions name the ordinal."""
    default = Settings(paths=WarehousePaths(tmp_path))
    icl = figure_by_name("ours_icl_over_training")
    overview = figure_by_name("fehlauer_fig1_convergence")
    assert "the 500th token given 50 tokens of context minus given 400" in icl.caption_for(default)
    assert "the 500th token's surprisal given 50 minus 400 tokens" in overview.caption_for(default)
    custom = dataclasses.replace(default, icl=IclConfig(short_context=4, long_context=16, target_position=20))
    assert "the 21st token given 4 tokens of context minus given 16" in icl.caption_for(custom)
    assert all(spec.caption_for(custom) == spec.caption_for(default) for spec in FIGURES if spec not in (icl, overview))


@pytest.mark.parametrize(
    "n, text", [(1, "1st"), (2, "2nd"), (3, "3rd"), (11, "11th"), (13, "13th"), (21, "21st"), (500, "500th")]
)
def test_ordinals(n, text):
    from reports.figures import ordinal

    assert ordinal(n) == text


def test_mcentire_table_captions_name_the_measure_and_thresholds():
    for spec in TABLES:
        assert spec.title.startswith("McEntire (2026), Table ")
        assert spec.reads, spec.name
    for name in ("mcentire_table2_regime_entry", "mcentire_table3_regime_share", "mcentire_table4_regime_similarity"):
        caption = table_by_name(name).caption_for()
        assert "`fixed_gap`" in caption and "50 steps earlier" in caption and "`log_spaced`" in caption, name
        assert "s_t < 0.997" in caption and "s_t > 0.999" in caption, name
    assert "less than 100 %" in table_by_name("mcentire_table3_regime_share").caption_for()
