"""The lake checks behind Dagster's asset checks, on a small lake and on broken copies of it."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extract.lake.checks import (
    CHECKS,
    check_kl_non_negative,
    check_manifests_complete,
    check_not_quarantined,
    check_row_counts,
    check_token_stats_finite,
)
from extract.lake.partition_store import write_quarantine
from tests.helpers.lakes import SUITE, partition_dir, set_pair_kl, write_synthetic_lake


@pytest.fixture
def lake(tmp_path):
    synth = write_synthetic_lake(tmp_path / "lake")
    return synth, [(SUITE, size, step) for size, step in synth.partitions]


def _key(partition) -> str:
    suite, size, step = partition
    return f"{suite}|{size}|step{step}"


def _rewrite(path, column: str, row: int, value) -> None:
    table = pq.read_table(path).to_pydict()
    table[column][row] = value
    pq.write_table(pa.Table.from_pydict(table, schema=pq.read_schema(path)), path)


def test_a_whole_lake_passes_every_check(lake):
    synth, partitions = lake
    for checks in CHECKS.values():
        for check in checks.values():
            outcome = check(synth.root, partitions)
            assert outcome.passed, (check.__name__, outcome.failures)
            assert outcome.checked == len(partitions)
    assert check_kl_non_negative(synth.root, partitions).figures["min_kl"] >= 0


@pytest.mark.parametrize("value, reason", [(-1e-3, "below"), (float("nan"), "NaN"), (float("inf"), "infinite")])
def test_a_bad_kl_fails_its_partition_only(lake, value, reason):
    synth, partitions = lake
    broken = partitions[1]
    set_pair_kl(synth.root, SUITE, broken[1], broken[2], row=4, kl=value)
    outcome = check_kl_non_negative(synth.root, partitions)
    assert list(outcome.failures) == [_key(broken)]
    assert reason in outcome.failures[_key(broken)]


def test_rounding_below_zero_is_tolerated(lake):
    synth, partitions = lake
    set_pair_kl(synth.root, SUITE, partitions[0][1], partitions[0][2], row=0, kl=-1e-9)
    assert check_kl_non_negative(synth.root, partitions).passed


def test_a_nan_statistic_fails_its_partition(lake):
    synth, partitions = lake
    broken = partitions[2]
    _rewrite(partition_dir(synth.root, *broken) / "token_stats.parquet", "entropy", 3, float("nan"))
    outcome = check_token_stats_finite(synth.root, partitions)
    assert list(outcome.failures) == [_key(broken)] and "1 token rows" in outcome.failures[_key(broken)]


def test_a_lost_row_breaks_the_counts_and_the_manifest(lake):
    synth, partitions = lake
    broken = partitions[0]
    path = partition_dir(synth.root, *broken) / "pair_kl.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)

    counts = check_row_counts(synth.root, partitions)
    assert list(counts.failures) == [_key(broken)] and "pair_kl rows" in counts.failures[_key(broken)]
    manifests = check_manifests_complete(synth.root, partitions)
    assert list(manifests.failures) == [_key(broken)]
    assert f"pair_kl has {table.num_rows - 1} rows, the manifest says {table.num_rows}" in manifests.failures[
        _key(broken)]  # fmt: skip


def test_a_partition_without_manifest_or_file_is_named(lake):
    synth, partitions = lake
    incomplete = (SUITE, *synth.incomplete)
    outcome = check_manifests_complete(synth.root, [*partitions, incomplete])
    assert outcome.failures == {_key(incomplete): "manifest.json is missing: the partition is not complete"}

    (partition_dir(synth.root, *partitions[3]) / "token_stats.parquet").unlink()
    assert "token_stats.parquet is missing" in check_manifests_complete(synth.root, partitions).failures[
        _key(partitions[3])]  # fmt: skip
    assert _key(partitions[3]) in check_token_stats_finite(synth.root, partitions).failures
    assert _key(partitions[3]) in check_row_counts(synth.root, partitions).failures


def test_a_quarantined_partition_fails_logits_finite(lake):
    synth, partitions = lake
    stored, never_stored = partitions[1], (SUITE, *synth.incomplete)
    for suite, size, step in (stored, never_stored):
        write_quarantine(synth.root, {"suite": suite, "size": size, "step": step,
                                      "quarantined": {"10": "b: NaN logits", "2": "a: NaN activations"}})  # fmt: skip
    outcome = check_not_quarantined(synth.root, [*partitions, never_stored])
    assert outcome.checked == len(partitions) + 1
    reasons = "seed 2: a: NaN activations; seed 10: b: NaN logits"  # by seed number, not as text
    assert outcome.failures == {
        _key(stored): f"quarantined (an earlier copy stays in the lake): {reasons}",
        _key(never_stored): f"quarantined: {reasons}",
    }
