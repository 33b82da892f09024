"""The four phases' rule on curves whose turning points are known, and the table it writes."""

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.phases import (
    ABSENT,
    LOCATED,
    NOT_REACHED,
    TOLERANCE,
    TURNING_POINTS,
    compute_table,
    locate_turning_points,
    pair_interval,
    phases_frame,
    write_table,
)

MINI_STEPS = [0] + [2**k for k in range(10)]  # 0, 1, 2, 4, ..., 512
PYTHIA_STEPS = MINI_STEPS + list(range(1000, 143001, 1000))
MULTIBERT_STEPS = list(range(0, 200001, 20000)) + list(range(300000, 2000001, 100000))


def kl_curve(steps, knots, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """The seeds' mean KL at `steps`: log KL linear in log2(1 + step) between (step, KL) knots,
    times lognormal noise of standard deviation `noise` (in log KL, so 0.015 is about 1.5 %)."""
    x = np.log2(1.0 + np.asarray(steps, dtype=float))
    knot_x = np.log2(1.0 + np.array([step for step, _ in knots], dtype=float))
    log_kl = np.interp(x, knot_x, np.log([kl for _, kl in knots]))
    return np.exp(log_kl + np.random.default_rng(seed).normal(0.0, noise, x.size) * (noise > 0))


def located(steps, knots, **kwargs) -> dict[str, int | None]:
    points = locate_turning_points(steps, -kl_curve(steps, knots, **kwargs))
    return {name: point.step for name, point in points.items()}


# Fig. 1's shape on PolyPythia's checkpoints, phases where the paper puts them: flat to step 16,
# KL falls tenfold to step 256, rises fiftyfold to 2k, falls by 30 % over the next 2k and slowly after.
PAPER = [(0, 0.2), (16, 0.2), (256, 0.02), (2000, 1.0), (4000, 0.7), (143000, 0.5)]
# Lognormal noise of 1.5 %: two checkpoints differ by 2.1 % (one standard deviation), by the
# tolerance's 10 % only at 4.5 standard deviations.
NOISE = 0.015
PAPER_TURNS = {"uniform_end": 16, "convergence_peak": 256, "divergence_bottom": 2000, "reconvergence_start": 2000}


def test_a_curve_shaped_like_the_papers_figure_1():
    points = locate_turning_points(PYTHIA_STEPS, -kl_curve(PYTHIA_STEPS, PAPER))
    assert {name: point.step for name, point in points.items()} == PAPER_TURNS
    assert list(points) == list(TURNING_POINTS)
    assert all(point.status == LOCATED and point.reason is None for point in points.values())


@pytest.mark.parametrize("seed", range(20))
def test_noise_below_the_tolerance_moves_no_turning_point(seed):
    """1.5 % noise at every checkpoint: the same steps, though the plateaus wobble and the slow
    reconvergence is not monotone any more. (At 2 %, two checkpoints of 300 curves' plateaus
    differ by more than the 10 % a turn must make, 4.9 standard deviations apart: the rule is
    robust to noise below its tolerance, not to any noise.)"""
    assert located(PYTHIA_STEPS, PAPER, noise=NOISE, seed=seed) == PAPER_TURNS


def test_the_mini_suites_grid():
    knots = [(0, 0.2), (4, 0.2), (32, 0.03), (128, 0.3), (512, 0.15)]
    expected = {"uniform_end": 4, "convergence_peak": 32, "divergence_bottom": 128, "reconvergence_start": 128}
    for seed in range(10):
        assert located(MINI_STEPS, knots, noise=NOISE, seed=seed) == expected


def test_a_dip_as_shallow_as_the_mini_suites():
    """The demo's size l: the KL drifts 8 % down by step 8, the sharp convergence takes 21 % off it
    at 16, the divergence more than doubles it to 256, and 512 is 30 % below that."""
    knots = [(0, 0.205), (8, 0.189), (16, 0.163), (256, 0.452), (512, 0.311)]
    expected = {"uniform_end": 8, "convergence_peak": 16, "divergence_bottom": 256, "reconvergence_start": 256}
    assert located(MINI_STEPS, knots) == expected


def test_a_slow_fall_from_the_top_starts_where_it_has_taken_the_tolerance_off():
    """Reconvergence by 0.11 of log KL per octave from the maximum at 2k: 3k is 6.6 % below it,
    4k 11 %, so the top ends, and reconvergence starts, at 3k."""
    knots = [(0, 0.2), (16, 0.2), (256, 0.02), (2000, 1.0), (143000, 0.5)]
    kl = kl_curve(PYTHIA_STEPS, knots)
    at = dict(zip(PYTHIA_STEPS, kl))
    assert 1 - at[3000] < TOLERANCE / (1 + TOLERANCE) < 1 - at[4000]
    assert located(PYTHIA_STEPS, knots)["reconvergence_start"] == 3000


def test_a_flat_top_separates_the_divergence_bottom_from_the_start_of_reconvergence():
    """The seeds stay at their most divergent from 2k to 8k (as the paper's smallest models
    nearly do), then reconverge: the bottom is where the rise stops, the reconvergence where
    the top ends."""
    knots = [(0, 0.2), (16, 0.2), (256, 0.02), (2000, 1.0), (8000, 1.0), (16000, 0.3), (143000, 0.2)]
    assert located(PYTHIA_STEPS, knots) == {**PAPER_TURNS, "reconvergence_start": 8000}
    for seed in range(10):
        noisy = located(PYTHIA_STEPS, knots, noise=NOISE, seed=seed)
        assert 2000 <= noisy["divergence_bottom"] <= 8000 and noisy["reconvergence_start"] == 8000


def test_a_monotone_fall_has_no_convergence_peak_and_says_how_far_it_went():
    points = locate_turning_points(MINI_STEPS, -kl_curve(MINI_STEPS, [(0, 0.2), (16, 0.2), (512, 0.01)]))
    assert points["uniform_end"].step == 16
    peak = points["convergence_peak"]
    assert (peak.step, peak.status) == (None, NOT_REACHED)
    assert peak.reason == "by step 512 the KL has not risen by more than a factor 1.1 from its lowest so far (step 512)"
    for name in ("divergence_bottom", "reconvergence_start"):
        assert points[name].step is None and points[name].status == NOT_REACHED
        assert points[name].reason == "the convergence peak is not located by step 512"


@pytest.mark.parametrize(
    ("last", "expected", "reason"),
    [
        (8, {}, "the KL stays within a factor 1.1 of its step-0 value through step 8"),
        (128, {"uniform_end": 16}, "by step 128 the KL has not risen by more than a factor 1.1"),
        (
            1000,
            {"uniform_end": 16, "convergence_peak": 256},
            "by step 1000 the KL has not fallen by more than a factor 1.1 from its highest so far (step 1000)",
        ),
        # The maximum is the last step extracted: not located until the curve has turned.
        (
            2000,
            {"uniform_end": 16, "convergence_peak": 256},
            "by step 2000 the KL has not fallen by more than a factor 1.1 from its highest so far (step 2000)",
        ),
        (3000, PAPER_TURNS, None),
    ],
)
def test_a_suite_still_being_extracted_locates_only_what_it_has_passed(last, expected, reason):
    steps = [step for step in PYTHIA_STEPS if step <= last]
    points = locate_turning_points(steps, -kl_curve(steps, PAPER))
    assert {name: point.step for name, point in points.items() if point.step is not None} == expected
    for name in TURNING_POINTS:
        if name not in expected:
            assert points[name].status == NOT_REACHED and points[name].step is None
    missing = [points[name].reason for name in TURNING_POINTS if name not in expected]
    if reason is None:
        assert not missing
    else:
        assert missing[0].startswith(reason)


def test_a_curve_rising_out_of_the_uniform_phase_has_no_convergence_peak():
    """MultiBERT's checkpoints (0, then 20k): the sharp convergence happened between them."""
    knots = [(0, 0.05), (20000, 0.5), (200000, 0.2), (2000000, 0.1)]
    points = locate_turning_points(MULTIBERT_STEPS, -kl_curve(MULTIBERT_STEPS, knots))
    assert points["uniform_end"].step == 0
    assert points["convergence_peak"].status == ABSENT and points["convergence_peak"].step is None
    assert "rises out of the uniform phase (step 20000)" in points["convergence_peak"].reason
    assert points["divergence_bottom"].step == 20000 and points["reconvergence_start"].step == 20000


def test_a_curve_without_step_0_has_no_uniform_phase_but_its_turns_are_found():
    steps = [step for step in PYTHIA_STEPS if step >= 64]
    points = locate_turning_points(steps, -kl_curve(steps, PAPER))
    assert points["uniform_end"].status == ABSENT and "starts at step 64" in points["uniform_end"].reason
    assert {name: points[name].step for name in TURNING_POINTS[1:]} == {
        name: PAPER_TURNS[name] for name in TURNING_POINTS[1:]
    }


def test_wobbles_inside_the_tolerance_are_not_turns_and_larger_ones_are():
    """A 7 % dip and recovery during the uniform phase is noise at the default tolerance, and
    a turning point at 5 %."""
    kl = kl_curve(MINI_STEPS, [(0, 0.2), (16, 0.2), (64, 0.02), (512, 0.5)])
    kl[MINI_STEPS.index(2)] *= 0.93
    points = locate_turning_points(MINI_STEPS, -kl)
    assert points["uniform_end"].step == 16 and points["convergence_peak"].step == 64
    strict = locate_turning_points(MINI_STEPS, -kl, tolerance=0.05)
    assert strict["uniform_end"].step == 1 and strict["convergence_peak"].step == 2


def test_input_in_any_order_nan_left_out_and_bad_input_named():
    kl = kl_curve(PYTHIA_STEPS, PAPER)
    order = np.random.default_rng(0).permutation(len(PYTHIA_STEPS))
    shuffled = locate_turning_points(np.array(PYTHIA_STEPS)[order], -kl[order])
    assert {name: point.step for name, point in shuffled.items()} == PAPER_TURNS
    with_gap = -kl.copy()
    with_gap[PYTHIA_STEPS.index(512)] = np.nan
    assert locate_turning_points(PYTHIA_STEPS, with_gap)["convergence_peak"].step == 256
    with pytest.raises(ValueError, match="a step appears twice: \\[4\\]"):
        locate_turning_points([0, 4, 4], [-0.2, -0.1, -0.1])
    with pytest.raises(ValueError, match="3 steps but 2 values"):
        locate_turning_points([0, 1, 2], [-0.2, -0.1])
    one = locate_turning_points([0], [-0.2])
    assert all(point.status == NOT_REACHED and point.reason.startswith("1 checkpoint") for point in one.values())


def test_identical_seeds_kl_zero_is_a_flat_curve():
    points = locate_turning_points(MINI_STEPS, np.zeros(len(MINI_STEPS)))
    assert all(point.status == NOT_REACHED for point in points.values())


@pytest.mark.parametrize(
    ("steps", "interval"),
    [
        ([], (None, None)),
        ([256], (256, 256)),
        ([512, 128, 256], (128, 512)),  # fewer than ten pairs: min to max
        ([64] + [256] * 8 + [1000], (256, 256)),  # ten: the lowest and highest left out
        (list(range(20)), (2, 17)),
        ([None, 8, 16], (8, 16)),
    ],
)
def test_the_pairs_interval_trims_a_tenth_at_each_end(steps, interval):
    assert pair_interval(steps) == interval


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def pair_rows(suite, size, seeds, shifts, knots, steps):
    """Ordered pairs' mean KL: each unordered pair's curve is `knots` with its turning points'
    steps multiplied by the pair's shift, the two directions 1 % apart."""
    rows = []
    pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1 :]]
    for (a, b), shift in zip(pairs, shifts):
        kl = kl_curve(steps, [(step * shift, value) for step, value in knots])
        for seed_a, seed_b, scale in ((a, b, 1.005), (b, a, 0.995)):
            rows += [
                {"suite": suite, "size": size, "step": s, "seed_a": seed_a, "seed_b": seed_b, "mean_kl": k * scale}
                for s, k in zip(steps, kl)
            ]
    return pd.DataFrame(rows)


def synthetic_warehouse(connection):
    """mart_expected_convergence and int_pair_convergence of two sizes of 5 seeds (10 pairs): size
    l complete, its pairs' turns at the knots' steps times 1/2, 1 (eight pairs) and 2; size s
    extracted to step 64 only."""
    knots = [(0, 0.2), (4, 0.2), (32, 0.03), (128, 0.3), (512, 0.15)]
    seeds = [1, 2, 3, 4, 5]
    pairs = pd.concat(
        [
            pair_rows("mini", "l", seeds, [0.5] + [1.0] * 8 + [2.0], knots, MINI_STEPS),
            pair_rows("mini", "s", seeds, [1.0] * 10, knots, MINI_STEPS[:8]),
        ]
    )
    curves = (
        pairs.groupby(["suite", "size", "step"], as_index=False)["mean_kl"]
        .mean()
        .assign(expected_conv=lambda d: -d["mean_kl"], n_params=lambda d: d["size"].map({"s": 10, "l": 100}))
    )
    for name, frame in (("mart_expected_convergence", curves), ("int_pair_convergence", pairs)):
        connection.register("frame", frame)
        connection.execute(f"create table {name} as select * from frame")
        connection.unregister("frame")


def test_the_table_has_four_rows_per_size_with_the_pairs_interval(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        synthetic_warehouse(connection)
        table = compute_table(connection)
        (at_peak,) = connection.execute(
            "select expected_conv from mart_expected_convergence where size = 'l' and step = 32"
        ).fetchone()
    assert list(table["size"]) == ["s"] * 4 + ["l"] * 4, "by n_params"
    large = table[table["size"] == "l"].set_index("turning_point")
    assert list(large.index) == list(TURNING_POINTS) and list(large["turning_order"]) == [1, 2, 3, 4]
    assert large["step"].to_dict() == {
        "uniform_end": 4,
        "convergence_peak": 32,
        "divergence_bottom": 128,
        "reconvergence_start": 128,
    }
    assert (large["status"] == LOCATED).all() and large["reason"].isna().all()
    assert (large["n_seed_pairs"] == 10).all() and (large["n_pairs_located"] == 10).all()
    # One pair's turns an octave early and one's an octave late: the interval leaves both out.
    assert (large["step_low"] == large["step"]).all() and (large["step_high"] == large["step"]).all()
    assert large.loc["convergence_peak", "expected_conv"] == at_peak
    assert (large["n_steps"] == 11).all() and (large["last_step"] == 512).all()

    small = table[table["size"] == "s"].set_index("turning_point")
    assert small.loc["uniform_end", "step"] == 4 and small.loc["convergence_peak", "step"] == 32
    bottom = small.loc["divergence_bottom"]
    assert bottom["status"] == NOT_REACHED and math.isnan(bottom["step"]) and "by step 64" in bottom["reason"]
    assert bottom["n_pairs_located"] == 0 and pd.isna(bottom["step_low"])


def test_the_pairs_interval_spreads_when_the_pairs_disagree():
    knots = [(0, 0.2), (4, 0.2), (32, 0.03), (128, 0.3), (512, 0.15)]
    pairs = pair_rows("x", "m", [1, 2, 3], [0.5, 1.0, 2.0], knots, MINI_STEPS)
    pairs = pairs.assign(pair_conv=-pairs["mean_kl"])
    folded = pairs.assign(lo=pairs[["seed_a", "seed_b"]].min(axis=1), hi=pairs[["seed_a", "seed_b"]].max(axis=1))
    folded = (
        folded.groupby(["suite", "size", "step", "lo", "hi"], as_index=False)["pair_conv"]
        .mean()
        .rename(columns={"lo": "seed_a", "hi": "seed_b"})
    )
    curves = pairs.groupby(["suite", "size", "step"], as_index=False)["pair_conv"].mean()
    curves = curves.rename(columns={"pair_conv": "expected_conv"}).assign(n_params=50)
    table = phases_frame(curves, folded).set_index("turning_point")
    assert (table["n_seed_pairs"] == 3).all(), "each pair of seeds once, whichever direction"
    assert table.loc["convergence_peak", ["step_low", "step_high"]].tolist() == [16, 64]
    assert table.loc["divergence_bottom", ["step_low", "step_high"]].tolist() == [64, 256]


def test_an_empty_warehouse_gives_an_empty_table_with_its_types(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        connection.execute(
            "create table mart_expected_convergence (suite varchar, size varchar, n_params bigint, "
            "step bigint, expected_conv double)"
        )
        connection.execute(
            "create table int_pair_convergence (suite varchar, size varchar, step bigint, "
            "seed_a integer, seed_b integer, mean_kl double)"
        )
        write_table(connection, compute_table(connection))
        types = dict(
            connection.execute("select column_name, column_type from (describe convergence_phases)").fetchall()
        )
        assert connection.execute("select count(*) from convergence_phases").fetchone() == (0,)
    assert types["step"] == "BIGINT" and types["reason"] == "VARCHAR" and types["n_pairs_located"] == "INTEGER"


def test_the_dagster_asset_writes_the_table_into_the_warehouse(tmp_path):
    import dagster as dg

    from orchestration.defs.analysis_tables import WRITTEN_BY, convergence_phases
    from orchestration.defs.resources import SeedconvSettings

    settings = SeedconvSettings(warehouse_root=str(tmp_path))
    with duckdb.connect(str(settings.load().paths.duckdb)) as connection:
        synthetic_warehouse(connection)
    result = dg.materialize([convergence_phases], resources={"seedconv": settings})
    assert result.success
    metadata = result.asset_materializations_for_node("convergence_phases")[0].metadata
    assert metadata["rows"].value == 8 and metadata["located"].value == 6
    with duckdb.connect(str(settings.load().paths.duckdb), read_only=True) as connection:
        steps = connection.execute(
            "select turning_point, step from convergence_phases where size = 'l' order by turning_order"
        ).fetchall()
    assert steps == [
        ("uniform_end", 4),
        ("convergence_peak", 32),
        ("divergence_bottom", 128),
        ("reconvergence_start", 128),
    ]
    assert {key.to_user_string() for key in convergence_phases.dependency_keys} == {
        "mart_expected_convergence",
        "int_pair_convergence",
    }
    assert WRITTEN_BY["convergence_phases"] == "convergence_phases"
