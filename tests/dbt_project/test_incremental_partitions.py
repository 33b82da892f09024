"""The per-partition models are incremental (dbt_project/macros/partitions.sql): after the lake
gains partitions, has one rewritten and loses one's manifest, an incremental `dbt build`
rebuilds exactly those partitions (and, for the marts that read a size's last step, that size),
and its tables equal those of `dbt build --full-refresh`.

Three real dbt runs on one tiny synthetic lake (benchmarks/synthetic_lake.py), as test_dbt.py
runs dbt.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pytest

from benchmarks.synthetic_lake import (
    Grid,
    build_model,
    checkpoint_tables,
    make_manifest,
    read_partition,
    write_synthetic_lake,
)
from extract.config import IclConfig
from extract.lake.partition_store import MANIFEST, write_partition
from extract.lake.tables import checkpoint_dir
from tests.helpers.dbt import run_dbt, run_results

GRID = Grid(
    suite="tiny",
    sizes=("14m", "70m"),
    seeds=(1, 2, 3),
    steps=(0, 16, 512, 4000),
    n_tokens=160,
    top_k=4,
    vocab=2048,
    window=32,
    icl=IclConfig(short_context=4, long_context=16, target_position=20, max_sequences=4),
)
MIDDLE = ("14m", 512)  # added later: a step between two built ones
LAST = ("70m", 4000)  # added later: the new last step of 70m
REWRITTEN = ("14m", 16)  # rewritten with other values and a new manifest
DROPPED = ("70m", 0)  # loses its manifest: incomplete, its files stay
LATER = {MIDDLE, LAST}

# Models whose rows are per partition and read only that partition's inputs.
PER_PARTITION = (
    "int_context_convergence",
    "int_pair_convergence",
    "int_context_surprisal",
    "int_seed_stats",
    "int_partition_checks",
    "mart_expected_convergence",
    "mart_regression_features",
    "mart_icl_scores",
    "int_pair_distribution",
)


def _tables(con) -> dict[str, list[tuple]]:
    """Every table of the warehouse: its columns with their types, in order, then its rows
    sorted (incremental_partitions without built_at)."""
    names = [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_type = 'BASE TABLE' order by 1"
        ).fetchall()
    ]
    tables = {}
    for name in names:
        columns = con.execute(
            "select column_name, data_type from information_schema.columns where table_name = ? "
            "order by ordinal_position",
            [name],
        ).fetchall()
        selected = "model, suite, size, step, input_digest" if name == "incremental_partitions" else "*"
        tables[name] = [tuple(columns), *con.execute(f"select {selected} from {name} order by all").fetchall()]
    return tables


def _built(con) -> dict[str, dict[tuple[str, int], object]]:
    """model -> (size, step) -> built_at."""
    built: dict[str, dict[tuple[str, int], object]] = {}
    for model, size, step, built_at in con.execute(
        "select model, size, step, built_at from incremental_partitions"
    ).fetchall():
        built.setdefault(model, {})[size, step] = built_at
    return built


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    return a == b


def _rewrite_with_other_values(lake, size: str, step: int) -> None:
    """A rerun of the partition that gave other numbers: new files, new manifest."""
    model = build_model(GRID)
    tables = checkpoint_tables(model, size, 4000)  # another checkpoint's values
    manifest = make_manifest(model, size, step, tables, {})
    write_partition(lake, checkpoint_dir(lake, GRID.suite, size, step), tables, manifest)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The lake without LATER built; then LATER added, REWRITTEN rewritten, DROPPED's manifest
    deleted and built incrementally; built again with nothing changed; then with --full-refresh.
    Yields the tables and incremental_partitions after each run."""
    workdir = tmp_path_factory.mktemp("dbt_incremental")
    lake = workdir / "lake"
    write_synthetic_lake(lake, GRID, [p for p in GRID.partitions if p not in LATER])

    def build(*args):
        proc = run_dbt(["build", *args], workdir, lake)
        assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
        bad = {k: v for k, v in run_results(workdir).items() if v not in ("success", "pass")}
        assert not bad, bad
        with duckdb.connect(str(workdir / "seedconv.duckdb"), read_only=True) as con:
            return _tables(con), _built(con)

    first = build()
    write_synthetic_lake(lake, GRID, sorted(LATER))
    _rewrite_with_other_values(lake, *REWRITTEN)
    (checkpoint_dir(lake, GRID.suite, *DROPPED) / MANIFEST).unlink()
    incremental = build()
    noop = build()
    full = build("--full-refresh")
    return {"lake": lake, "first": first, "incremental": incremental, "noop": noop, "full": full}


def test_incremental_build_rebuilds_only_what_changed(runs):
    (_, built_first), (_, built) = runs["first"], runs["incremental"]
    complete = set(GRID.partitions) - {DROPPED}
    for model in PER_PARTITION:
        assert set(built[model]) == complete, model
        rebuilt = {p for p, at in built[model].items() if at != built_first[model].get(p)}
        assert rebuilt == LATER | {REWRITTEN}, model
    # final-surprisal bins are read at a size's last step: a new last step of 70m rebuilds 70m
    rebuilt = {
        p
        for p, at in built["mart_conditional_convergence"].items()
        if at != built_first["mart_conditional_convergence"].get(p)
    }
    assert rebuilt == LATER | {REWRITTEN} | {p for p in complete if p[0] == LAST[0]}


def _assert_same_tables(tables, expected_tables):
    assert set(tables) == set(expected_tables)
    for name, rows in tables.items():
        assert rows[0] == expected_tables[name][0], (name, "columns")
        assert len(rows) == len(expected_tables[name]), name
        for row, expected in zip(rows[1:], expected_tables[name][1:]):
            assert len(row) == len(expected) and all(map(_same, row, expected)), (name, row, expected)


def test_incremental_build_equals_full_refresh(runs):
    (tables, _), (full, built_full) = runs["incremental"], runs["full"]
    _assert_same_tables(tables, full)
    assert len(built_full["int_context_convergence"]) == len(GRID.partitions) - 1


def test_build_with_nothing_new_changes_nothing(runs):
    (tables, built), (noop, built_noop) = runs["incremental"], runs["noop"]
    assert built_noop == built
    _assert_same_tables(noop, tables)


def test_rewritten_partition_replaces_its_rows(runs):
    (first, _), (tables, _) = runs["first"], runs["incremental"]
    size, step = REWRITTEN

    def contexts(tables):
        # int_context_convergence columns: suite, size, step, position, n_pairs, mean_kl, ...
        return {row[3]: row[5] for row in tables["int_context_convergence"][1:] if (row[1], row[2]) == (size, step)}

    before, after = contexts(first), contexts(tables)
    assert len(after) == GRID.n_tokens  # one row per context: replaced, not appended
    assert sum(1 for row in tables["int_context_convergence"][1:] if (row[1], row[2]) == (size, step)) == GRID.n_tokens
    assert before.keys() == after.keys() and before != after
    pair_kl = read_partition(runs["lake"], GRID.suite, size, step)["pair_kl"].to_pandas()
    expected = pair_kl.groupby("position")["kl"].mean()
    np.testing.assert_allclose([after[p] for p in expected.index], expected.to_numpy(), rtol=1e-6)
    rows = [r for r in tables["mart_expected_convergence"][1:] if (r[1], r[2]) == (size, step)]
    assert len(rows) == 1


def test_partition_whose_manifest_is_gone_loses_its_rows(runs):
    (first, _), (tables, built) = runs["first"], runs["incremental"]
    size, step = DROPPED
    assert (checkpoint_dir(runs["lake"], GRID.suite, size, step) / "pair_kl.parquet").exists()
    for name in (*PER_PARTITION, "mart_conditional_convergence", "mart_model_stats", "mart_icl_summary"):
        was = [r for r in first[name][1:] if (r[1], r[2]) == (size, step)]
        now = [r for r in tables[name][1:] if (r[1], r[2]) == (size, step)]
        assert was and not now, name
    assert all((size, step) not in partitions for partitions in built.values())
