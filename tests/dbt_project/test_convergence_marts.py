"""The dbt project over a synthetic lake: it builds, its marts equal a hand computation, an
incomplete partition stays invisible, a broken lake fails the build, and it parses with no lake.

dbt runs as a subprocess from dbt_project/ (as dagster-dbt runs it), with every path it writes
(DuckDB file, target/, logs/) moved into the test's temporary directory.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.dbt import built_warehouse, run_dbt, run_results, statuses_by_test_name
from tests.helpers.lakes import (
    INCOMPLETE,
    INCOMPLETE_KL,
    make_manifest,
    pair_kl_rows,
    partition_dir,
    set_pair_kl,
    token_stats_rows,
    write_checkpoint,
    write_synthetic_lake,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The synthetic lake, built once by `dbt build`; yields (synth, duckdb connection, workdir)."""
    workdir = tmp_path_factory.mktemp("dbt_build")
    synth = write_synthetic_lake(workdir / "lake")
    with built_warehouse(workdir, synth.root) as con:
        yield synth, con, workdir


def _rows(con, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def test_build_passes_every_model_and_test(built):
    _, _, workdir = built
    statuses = run_results(workdir)
    assert statuses, "dbt build ran nothing"
    bad = {k: v for k, v in statuses.items() if v not in ("success", "pass")}
    assert not bad, bad
    for singular in (
        "assert_kl_nonnegative",
        "assert_pairs_complete",
        "assert_token_stats_complete",
        "assert_token_stats_in_range",
        "assert_manifest_matches_partition",
        "assert_band_brackets_mean",
        "assert_frequency_bin_matches_range",
        "assert_final_surprisal_bin_matches_range",
        "assert_conditional_levels_cover_contexts",
        "assert_icl_context_order",
        "assert_icl_scores_complete",
        "assert_token_pos_matches_eval_tokens",
        "assert_penn_tags_complete",
        "assert_token_rankings_ordered",
    ):
        assert statuses_by_test_name(statuses)[singular] == "pass", singular


def test_expected_convergence_equals_hand_computation(built):
    synth, con, _ = built
    rows = {(r["size"], r["step"]): r for r in _rows(con, "select * from mart_expected_convergence")}
    assert set(rows) == set(synth.partitions)

    for (size, step), kl in synth.kl.items():
        row = rows[size, step]
        conv = -np.nanmean(kl, axis=(0, 1))  # per context, over the 6 ordered pairs
        pair_conv = -kl[~np.eye(len(synth.seeds), dtype=bool)].mean(axis=1)  # per ordered pair, over contexts
        n_contexts = len(synth.positions)
        assert row["suite"] == synth.suite
        assert row["n_params"] == synth.sizes[size]
        assert row["n_seeds"] == 3
        assert row["n_pairs"] == 6
        assert row["n_contexts"] == n_contexts
        assert row["expected_conv"] == pytest.approx(conv.mean())
        assert row["conv_std"] == pytest.approx(conv.std(ddof=1))
        assert row["conv_se"] == pytest.approx(conv.std(ddof=1) / np.sqrt(n_contexts))
        assert row["pair_conv_std"] == pytest.approx(pair_conv.std(ddof=1))
        assert row["band_low"] == pytest.approx(conv.mean() - pair_conv.std(ddof=1))
        assert row["band_high"] == pytest.approx(conv.mean() + pair_conv.std(ddof=1))
        assert row["expected_kl"] == pytest.approx(-conv.mean())
        # the mean of per-context conv equals minus the mean of per-pair mean KL (balanced pairs)
        assert row["expected_conv"] == pytest.approx(pair_conv.mean())

    # By hand, scale 1 (base, step 1): mean pair base 84/96, mean position offset 31/96, mean
    # interaction 6/96; the per-pair means differ only by the pair base 0.25 * (1..6).
    base = rows["base", 1]
    assert base["expected_conv"] == pytest.approx(-121 / 96)
    assert base["pair_conv_std"] == pytest.approx(0.25 * np.sqrt(3.5))


def test_pair_window_sums_add_up_to_each_pairs_kl(built):
    # what the seed-and-context bootstrap resamples: per ordered pair and window, the KL summed
    synth, con, _ = built
    rows = _rows(
        con,
        "select size, step, seed_a, seed_b, sum(n_contexts) as n, sum(sum_kl) as kl, count(*) as windows "
        "from int_pair_window_kl group by all",
    )
    n_seeds = len(synth.seeds)
    assert len(rows) == len(synth.kl) * n_seeds * (n_seeds - 1), "every ordered pair of two seeds, no self-pairs"
    for row in rows:
        a, b = synth.seeds.index(row["seed_a"]), synth.seeds.index(row["seed_b"])
        kl = synth.kl[row["size"], row["step"]][a, b]
        assert row["n"] == len(synth.positions) and row["windows"] >= 1
        assert row["kl"] == pytest.approx(float(np.sum(kl)), rel=1e-6)


def test_expected_convergence_orders_sizes_by_n_params(built):
    _, con, _ = built
    sql = "select size from mart_expected_convergence order by n_params, step"
    sizes = [r[0] for r in con.execute(sql).fetchall()]
    assert sizes == ["tiny", "tiny", "base", "base"]


def test_model_stats_equal_hand_computation(built):
    synth, con, _ = built
    rows = {(r["size"], r["step"]): r for r in _rows(con, "select * from mart_model_stats")}
    assert set(rows) == set(synth.partitions)
    for (size, step), stats in synth.token_stats.items():
        row = rows[size, step]
        assert row["n_params"] == synth.sizes[size]
        assert row["n_seeds"] == 3
        assert row["n_token_rows"] == 3 * len(synth.positions)
        assert row["cross_entropy"] == pytest.approx(stats["surprisal"].mean())
        assert row["cross_entropy_seed_std"] == pytest.approx(stats["surprisal"].mean(axis=1).std(ddof=1))
        assert row["mean_entropy"] == pytest.approx(stats["entropy"].mean())
        assert row["kl_uniform"] == pytest.approx(stats["kl_uniform"].mean())
        assert row["kl_uniform_seed_std"] == pytest.approx(stats["kl_uniform"].mean(axis=1).std(ddof=1))
        assert row["kl_unigram"] == pytest.approx(stats["kl_unigram"].mean())
        assert row["kl_unigram_seed_std"] == pytest.approx(stats["kl_unigram"].mean(axis=1).std(ddof=1))
        assert row["mean_tail_mass"] == pytest.approx(stats["tail_mass"].mean())


def test_intermediate_models_have_one_row_per_key(built):
    synth, con, _ = built
    n_partitions = len(synth.partitions)
    assert con.execute("select count(*) from int_context_convergence").fetchone()[0] == n_partitions * 6
    assert con.execute("select count(*) from int_pair_convergence").fetchone()[0] == n_partitions * 6
    assert con.execute("select count(*) from int_seed_stats").fetchone()[0] == n_partitions * 3
    assert con.execute("select min(n_pairs), max(n_pairs) from int_context_convergence").fetchone() == (6, 6)


def test_partition_without_manifest_is_invisible(built):
    synth, con, _ = built
    size, step = INCOMPLETE
    directory = partition_dir(synth.root, synth.suite, size, step)
    assert (directory / "pair_kl.parquet").exists() and not (directory / "manifest.json").exists()
    for relation in (
        "stg_checkpoints",
        "stg_token_stats",
        "stg_pair_kl",
        "int_context_convergence",
        "int_pair_convergence",
        "int_seed_stats",
        "mart_expected_convergence",
        "mart_model_stats",
        "int_context_surprisal",
        "mart_conditional_convergence",
        "mart_regression_features",
    ):
        sql = f"select count(*) from {relation} where size = ? and step = ?"
        n = con.execute(sql, [size, step]).fetchone()[0]
        assert n == 0, f"{relation} shows the incomplete partition {INCOMPLETE}"
    assert con.execute("select max(kl) from stg_pair_kl").fetchone()[0] < INCOMPLETE_KL


def test_lake_without_token_pos_or_icl_scores_builds(built):
    """A lake written before token_pos and icl_scores existed (this one) still builds: those
    staging views read empty, the ICL marts are empty, and conditional convergence has only the
    conditions that need neither (frequency and final-surprisal bins)."""
    synth, con, workdir = built
    assert not (synth.root / "token_pos").exists()
    assert not list(synth.root.glob("checkpoints/*/*/*/icl_scores.parquet"))
    for relation in ("stg_token_pos", "stg_icl_scores", "mart_icl_scores", "mart_icl_summary"):
        assert con.execute(f"select count(*) from {relation}").fetchone()[0] == 0, relation
    assert con.execute("select count(*) from int_token_features where pos is not null").fetchone()[0] == 0
    conditions = {r[0] for r in con.execute("select distinct condition from mart_conditional_convergence").fetchall()}
    assert conditions == {"frequency_bin", "final_surprisal_bin"}
    # 6 distinct types, each once in the evaluation set: all in bin 1–9, none ranked (< 3 occurrences)
    assert con.execute("select distinct frequency_bin from int_token_features").fetchall() == [("1–9",)]
    assert con.execute("select count(*) from mart_token_rankings").fetchone()[0] == 0
    assert con.execute("select count(*) from mart_regression_features").fetchone()[0] == len(synth.partitions) * 6


def test_a_step_without_one_seed_is_compared_over_the_others(tmp_path):
    """A checkpoint one seed never published (PolyPythia's 410m-seed9 at step 40000): its
    partition holds the other seeds and its manifest names the missing one. The build passes
    every test, and the marts say which seeds were compared, how many pairs, and which seed is
    missing; the partitions with every seed say none is."""
    synth = write_synthetic_lake(tmp_path / "lake")
    size, step, kept = "base", 512, (1, 3)
    index = [synth.seeds.index(seed) for seed in kept]
    kl = synth.kl[size, step][np.ix_(index, index)]
    stats = {name: values[index] for name, values in synth.token_stats[size, step].items()}
    ts_rows, pk_rows = token_stats_rows(stats, kept), pair_kl_rows(kl, kept)
    manifest = make_manifest(
        synth.suite,
        size,
        step,
        n_params=synth.sizes[size],
        seeds=list(kept),
        seeds_missing=[2],
        n_token_stats=len(ts_rows["seed"]),
        n_pair_kl=len(pk_rows["kl"]),
    )
    write_checkpoint(synth.root, synth.suite, size, step, token_stats=ts_rows, pair_kl=pk_rows, manifest=manifest)
    with built_warehouse(tmp_path, synth.root) as con:
        rows = {(r["size"], r["step"]): r for r in _rows(con, "select * from mart_expected_convergence")}
        short = rows.pop((size, step))
        assert (short["seeds"], short["seeds_missing"], short["n_seeds_missing"]) == ([1, 3], [2], 1)
        assert (short["n_seeds"], short["n_pairs"]) == (2, 2)
        assert short["expected_conv"] == pytest.approx(-np.nanmean(kl, axis=(0, 1)).mean())
        assert {(r["n_seeds"], r["n_pairs"], r["n_seeds_missing"]) for r in rows.values()} == {(3, 6, 0)}
        assert all(r["seeds_missing"] == [] for r in rows.values())
        sql = "select n_seeds, n_pairs, n_seeds_missing from stg_checkpoints where size = ? and step = ?"
        assert con.execute(sql, [size, step]).fetchone() == (2, 2, 1)
        assert con.execute("select n_checkpoints_missing_seeds from mart_suites").fetchone() == (1,)


def test_negative_kl_fails_the_build_on_the_singular_test(tmp_path):
    synth = write_synthetic_lake(tmp_path / "lake")
    set_pair_kl(synth.root, synth.suite, "base", 512, row=0, kl=-1.0)
    proc = run_dbt(["build"], tmp_path, synth.root)
    assert proc.returncode != 0, proc.stdout[-4000:]
    statuses = run_results(tmp_path)
    assert statuses["test.seedconv.assert_kl_nonnegative"] == "fail"
    # the failure is the data test's, not a SQL error anywhere
    assert "error" not in statuses.values(), {k: v for k, v in statuses.items() if v == "error"}


def test_manifest_that_disagrees_with_its_partition_fails_the_build(tmp_path):
    synth = write_synthetic_lake(tmp_path / "lake")
    manifest_path = partition_dir(synth.root, synth.suite, "tiny", 1) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["step"] = 2  # a manifest copied into the wrong partition
    manifest["rows"]["pair_kl"] += 1
    manifest_path.write_text(json.dumps(manifest))
    proc = run_dbt(["build"], tmp_path, synth.root)
    assert proc.returncode != 0, proc.stdout[-4000:]
    statuses = run_results(tmp_path)
    assert statuses["test.seedconv.assert_manifest_matches_partition"] == "fail"
    assert "error" not in statuses.values(), {k: v for k, v in statuses.items() if v == "error"}


def test_parse_needs_no_lake(tmp_path):
    proc = run_dbt(["parse"], tmp_path, tmp_path / "no-lake-here")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    marts = {
        f"model.seedconv.{name}"
        for name in (
            "mart_expected_convergence",
            "mart_model_stats",
            "mart_conditional_convergence",
            "mart_token_rankings",
            "mart_regression_features",
            "mart_icl_scores",
            "mart_icl_summary",
        )
    }
    assert marts <= set(manifest["nodes"])
    assert not (tmp_path / "no-lake-here").exists()
