"""The seed-and-context bootstrap of E[conv] (analysis/bootstrap.py): a replicate is the statistic
on a resample, its intervals cover the truth as often as they claim on data with known variance
components, and the warehouse tables line up with the marts."""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pytest

from analysis.bootstrap import (
    CheckpointKL,
    compute_tables,
    conv_difference,
    conv_interval,
    replicates,
    small_sample_factor,
    with_copy_pairs,
    write_tables,
)
from benchmarks.bootstrap_coverage import Design, difference_coverage, interval_coverage, simulate
from extract.config import BootstrapConfig


def random_checkpoint(rng, n_seeds=4, n_units=5, tokens=3) -> CheckpointKL:
    sums = rng.gamma(2.0, 0.1, (n_seeds, n_seeds, n_units)) * tokens
    sums[np.arange(n_seeds), np.arange(n_seeds)] = 0
    return CheckpointKL(tuple(range(10, 10 + n_seeds)), sums, np.full(n_units, float(tokens)))


def test_a_replicate_is_e_conv_over_the_pairs_of_the_drawn_seeds_and_units():
    rng = np.random.default_rng(1)
    kl = random_checkpoint(rng)
    # as drawn: seeds 0, 0, 2, 3 and units 1, 1, 1, 4, 0
    seed_w, unit_w = np.array([[2.0, 0, 1, 1]]), np.array([[1.0, 3, 0, 0, 1]])
    draws, units = [0, 0, 2, 3], [1, 1, 1, 4, 0]
    filled = with_copy_pairs(kl)
    by_hand = np.mean(
        [
            filled[a, b, units].sum() / (3 * len(units))
            for i, a in enumerate(draws)
            for j, b in enumerate(draws)
            if i != j
        ]
    )
    assert replicates(kl, seed_w, unit_w)[0] == pytest.approx(-by_hand)
    # the pairs of two different runs are the runs' own KLs; only a run drawn twice uses its filled-in pair
    assert np.array_equal(filled[~np.eye(4, dtype=bool)], kl.sums[~np.eye(4, dtype=bool)])
    # drawing everything once is the data as they are
    assert replicates(kl, np.ones((1, 4)), np.ones((1, 5)))[0] == pytest.approx(kl.expected_conv)


def test_a_run_drawn_twice_stands_for_two_runs_like_it():
    # additive KL(a, b) = mu + s_a + s_b, the seed effects centred: a copy pair gets mu + 2 s_a,
    # shrunk by 1 / (n - 1) toward the mean, as its projection from n - 1 other runs
    s = np.array([-0.3, 0.1, 0.0, 0.2])
    sums = (1.0 + s[:, None] + s[None, :])[:, :, None].copy()
    sums[np.arange(4), np.arange(4)] = 0
    filled = with_copy_pairs(CheckpointKL((1, 2, 3, 4), sums, np.ones(1)))
    assert np.diag(filled[:, :, 0]) == pytest.approx(1.0 + 2 * s - 2 * s / 3)


def test_identical_checkpoints_paired_differ_by_exactly_nothing():
    rng = np.random.default_rng(2)
    kl = random_checkpoint(rng)
    found = conv_difference(kl, kl, True, rng, 200, 0.95)
    assert found.interval.estimate == 0 and found.interval.low == 0 and found.interval.high == 0
    assert found.p_value == 1.0
    unpaired = conv_difference(kl, kl, False, rng, 200, 0.95)
    assert unpaired.interval.low < 0 < unpaired.interval.high, "different runs: the seeds' chance remains"


def test_paired_steps_use_the_seeds_both_have():
    rng = np.random.default_rng(3)
    a, b = random_checkpoint(rng, n_seeds=4), random_checkpoint(rng, n_seeds=4)
    b_fewer = b.restricted((10, 11, 13))
    found = conv_difference(a, b_fewer, True, rng, 200, 0.95)
    assert found.n_seeds == 3
    assert found.conv_a == pytest.approx(a.restricted((10, 11, 13)).expected_conv)
    with pytest.raises(ValueError, match="same contexts"):
        conv_difference(a, random_checkpoint(rng, n_units=6), False, rng, 200, 0.95)


def test_the_small_sample_widening_is_that_of_a_t_interval():
    assert small_sample_factor(5, 0.95) == pytest.approx(5 / 4 * (2.7764451 / 1.9599640) ** 2)
    assert small_sample_factor(1000, 0.95) == pytest.approx(1.0, abs=0.01)


def test_intervals_cover_the_true_e_conv_as_often_as_they_claim():
    # known variance components (benchmarks/bootstrap_coverage.py): seeds, pairs, windows, tokens
    coverage, _ = interval_coverage(Design(n_seeds=10), simulations=300, n_boot=1000, seed=7)
    assert 0.92 <= coverage <= 0.985
    few_seeds, _ = interval_coverage(Design(n_seeds=5), simulations=300, n_boot=1000, seed=8)
    assert 0.92 <= few_seeds <= 0.985


def test_difference_intervals_cover_and_p_values_reject_at_their_level():
    coverage, _, rejected = difference_coverage(Design(n_seeds=10), 0.2, simulations=300, n_boot=1000, seed=9)
    assert 0.92 <= coverage <= 0.98
    assert rejected <= 0.08, "no difference: p < 0.05 about 5 % of the time"
    _, _, power = difference_coverage(Design(n_seeds=10), 0.35, simulations=100, n_boot=1000, seed=10)
    assert power >= 0.8, "a 75 % larger KL is found at 10 seeds"


def test_the_interval_narrows_with_more_seeds_and_contexts():
    rng = np.random.default_rng(4)
    widths = {}
    for seeds, windows in ((5, 40), (20, 40), (20, 160)):
        design = Design(n_seeds=seeds, n_windows=windows)
        found = [conv_interval(simulate(design, rng), rng, 300, 0.95) for _ in range(20)]
        widths[seeds, windows] = np.mean([f.high - f.low for f in found])
    assert widths[5, 40] > widths[20, 40] > widths[20, 160]


def warehouse_rows(connection, kls: dict[tuple[str, int], np.ndarray], n_params: dict[str, int]) -> None:
    """int_pair_window_kl and mart_expected_convergence of suite x from per-(size, step) arrays of
    KL sums (seeds, seeds, windows), each window 4 contexts."""
    rows, marts = [], []
    for (size, step), sums in kls.items():
        n = sums.shape[0]
        for a, b, w in itertools.product(range(n), range(n), range(sums.shape[2])):
            if a != b:
                rows.append(("x", size, step, a + 1, b + 1, "d1", w, 4, sums[a, b, w]))
        conv = -sums.sum() / (n * (n - 1) * 4 * sums.shape[2])
        marts.append(("x", size, step, n_params[size], n, conv, 0.01, conv - 0.01, conv + 0.01))
    connection.execute(
        "create table int_pair_window_kl (suite varchar, size varchar, step bigint, seed_a integer, "
        "seed_b integer, doc_id varchar, window_id integer, n_contexts bigint, sum_kl double)"
    )
    connection.executemany("insert into int_pair_window_kl values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    connection.execute(
        "create table mart_expected_convergence (suite varchar, size varchar, step bigint, n_params bigint, "
        "n_seeds integer, expected_conv double, pair_conv_std double, band_low double, band_high double)"
    )
    connection.executemany("insert into mart_expected_convergence values (?, ?, ?, ?, ?, ?, ?, ?, ?)", marts)


def test_the_tables_compare_sizes_at_a_step_and_each_step_with_the_last(tmp_path):
    rng = np.random.default_rng(5)

    def sums(scale):
        kl = rng.gamma(4.0, scale / 4, (4, 4, 8)) * 4
        kl[np.arange(4), np.arange(4)] = 0
        return kl

    kls = {("s", 0): sums(0.5), ("s", 1): sums(0.5), ("s", 2): sums(0.2), ("l", 1): sums(0.1), ("l", 2): sums(0.1)}
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        warehouse_rows(connection, kls, {"s": 10, "l": 100})
        config = BootstrapConfig(n_boot=400)
        tables = compute_tables(connection, config)
        write_tables(connection, tables)
        again = compute_tables(connection, config)
        marts = connection.execute("select size, step, expected_conv from mart_expected_convergence").fetchall()
        written = connection.execute("select count(*) from convergence_differences where p_value <= 1").fetchone()
    intervals = tables["convergence_intervals"].set_index(["size", "step"])
    for size, step, conv in marts:
        row = intervals.loc[(size, step)]
        assert row["expected_conv"] == pytest.approx(conv)
        assert row["ci_low"] < conv < row["ci_high"] and row["n_units"] == 8 and row["n_seeds"] == 4
        assert row["band_low"] == pytest.approx(conv - 0.01), "the seed pairs' band kept beside the interval"
    differences = tables["convergence_differences"]
    keys = list(
        zip(
            differences["comparison"],
            differences["size_a"],
            differences["step_a"],
            differences["size_b"],
            differences["step_b"],
        )
    )
    assert keys == [
        ("step", "s", 0, "s", 1),
        ("step", "s", 1, "s", 2),
        ("step", "l", 1, "l", 2),
        ("size", "s", 1, "l", 1),
        ("size", "s", 2, "l", 2),
    ]
    assert written == (5,)
    by_key = differences.set_index(["comparison", "size_a", "step_a", "size_b", "step_b"])
    # s falls from KL 0.5 to 0.2 at step 2: E[conv] rises, far outside the chance of 4 seeds and 8 windows
    assert (
        by_key.loc[("step", "s", 1, "s", 2), "difference"] > 0
        and by_key.loc[("step", "s", 1, "s", 2), "p_value"] < 0.05
    )
    assert by_key.loc[("step", "s", 0, "s", 1), "p_value"] > 0.05, "the same KL scale twice"
    assert list(differences["paired_seeds"]) == [True, True, True, False, False]
    # the same warehouse gives the same intervals
    assert again["convergence_intervals"].equals(tables["convergence_intervals"])
