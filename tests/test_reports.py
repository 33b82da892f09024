"""Figures and the report page drawn from small hand-made frames."""

import base64
import re

import pandas as pd
import pytest
from test_reports_loglik import LOGLIK_SAMPLES

from reports.figures import FIGURES, figure_by_name, render
from reports.page import FigureSection, figure_section, rankings_section, render_page

STEPS = [0, 1, 2, 4, 8]


def frame(**columns_by_size):
    rows = []
    for size, n_params in (("s", 10), ("l", 100)):
        for step in STEPS:
            rows.append({"size": size, "n_params": n_params, "step": step, **columns_by_size})
    return pd.DataFrame(rows)


def level_frame(value, labels=("1–9", "10–99", "100–999")):
    parts = [frame(**{value: -0.1 * order, "level": label, "level_order": order, "n_contexts": 5})
             for order, label in enumerate(labels)]
    return pd.concat(parts, ignore_index=True)


SAMPLES = {
    "figure1_convergence": frame(expected_conv=-0.2, band_low=-0.25, band_high=-0.15, kl_uniform=1.0,
                                 kl_uniform_seed_std=0.1, kl_unigram=0.5, kl_unigram_seed_std=0.05,
                                 cross_entropy=6.0, cross_entropy_seed_std=0.1),
    "figure3_frequency": level_frame("expected_conv"),
    "figure4_word_class": level_frame("expected_conv", ("noun", "verb", "determiner")),
    "figure4_pos": level_frame("expected_conv", ("DT", "NN", "VBZ")),
    "figure7_final_surprisal": level_frame("expected_conv"),
    "figure8_variance": frame(conv_variance=0.01, conv_std=0.1),
    "figure9_previous_pos": level_frame("expected_conv"),
    "figure10_cross_entropy": level_frame("cross_entropy"),
    "figure11_regression": pd.DataFrame(
        [{"step": s, "term": t, "estimate": 0.1, "std_error": 0.01, "ci_low": 0.08, "ci_high": 0.12}
         for s in STEPS for t in ("log_frequency", "size=l", "pos=VB")]
    ),
    "icl_score": frame(icl_score=0.3, icl_score_seed_std=0.05),
    "blimp_convergence": frame(expected_conv=-0.05, band_low=-0.07, band_high=-0.03, accuracy=0.6,
                               accuracy_min=0.55, accuracy_max=0.65, n_paradigms=67, n_pairs=1340, n_seeds=5),
    "blimp_fields": level_frame("expected_conv", ("morphology", "semantics", "syntax", "syntax_semantics")),
    "masked_convergence": frame(expected_conv=-0.3, band_low=-0.35, band_high=-0.25, n_seeds=5, n_contexts=100),
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
    assert not {"icl_score", "loglik_map", "diffusion_over_training", "loglik_vs_exact", "blimp_convergence",
                "blimp_fields"} & masked
    assert "masked_convergence" in masked - causal
    assert {"figure1_convergence", "figure3_frequency", "fingerprint_regimes"} <= causal & masked


def test_empty_data_names_the_mart(tmp_path):
    spec = figure_by_name("figure3_frequency")
    with pytest.raises(ValueError, match="mart_conditional_convergence"):
        render(spec, SAMPLES[spec.name].iloc[0:0], tmp_path / "x.png")


def test_page_embeds_figures_numbers_and_escapes_text(tmp_path):
    png = render(figure_by_name("figure8_variance"), SAMPLES["figure8_variance"], tmp_path / "v.png").read_bytes()
    data = SAMPLES["figure8_variance"]
    rankings = pd.DataFrame({
        "size": "s", "step": 8, "rank_group": ["lowest", "middle", "highest"], "rank": [1, 50, 99],
        "token_text": [" the", "<b>", "\n"], "n_occurrences": [40, 5, 3], "mean_kl": [0.01, 0.2, 1.5],
    })
    page = render_page(
        "Title", "Intro", {"seeds": "5"},
        [figure_section(FigureSection("v", "Variance", "What it shows.", "mart_x", png, data)),
         rankings_section(rankings, "t1")],
        [("v", "Variance"), ("t1", "Token rankings")], "footer",
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

    wide = render(figure_by_name("figure1_convergence"), SAMPLES["figure1_convergence"], tmp_path / "a.png")
    narrow = render(figure_by_name("figure8_variance"), SAMPLES["figure8_variance"], tmp_path / "b.png")
    # 16 x 3.6 in and 7 x 3.6 in at 150 dpi, shown as at 100 dpi.
    assert display_width(wide.read_bytes()) == 1600
    assert display_width(narrow.read_bytes()) == 700
