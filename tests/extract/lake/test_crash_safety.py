"""An extraction killed with SIGKILL mid-partition leaves no half partition, and running it again
gives the rows of an uninterrupted run.

The extraction runs in a child process that pauses at the moment under test (the child's own
wrapper of os.replace, in this file: nothing in the product waits for a test) and is then killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas
import pyarrow.parquet as pq
import pytest

from extract.lake.partition_store import STAGING, TRASH, read_manifest
from extract.lake.tables import checkpoint_dir
from tests.helpers.lakes import assert_same_rows

pytestmark = pytest.mark.fault

PARTITIONS = [("a", 1), ("a", 2)]
TABLES = ("token_stats", "pair_kl", "icl_scores", "fingerprints", "loglik", "blimp_scores")

# Extracts PARTITIONS of the micro suite; pauses (for the parent to kill it) when os.replace is
# about to move a staged partition into place (`first-write`), or has just moved the old copy of
# a partition to the trash and not yet the new one in (`between-renames`).
CHILD = """
import os, sys, time
from pathlib import Path
config, root, mode, marker = sys.argv[1:5]
real_replace = os.replace

def replace(src, dst, *args, **kwargs):
    if mode == "first-write" and "/.staging/" in str(src):
        Path(marker).write_text(str(dst)); time.sleep(600)
    real_replace(src, dst, *args, **kwargs)
    if mode == "between-renames" and "/.trash/" in str(dst):
        Path(marker).write_text(str(dst)); time.sleep(600)

os.replace = replace
from extract import pipeline
from extract.config import load_settings
settings = load_settings(Path(config), Path(root))
for _ in pipeline.extract_checkpoints(settings, "micro", [("a", 1), ("a", 2)]):
    pass
"""


def _run_until_paused(config: Path, root: Path, mode: str, tmp_path: Path) -> str:
    marker = tmp_path / f"paused-{mode}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(config), str(root), mode, str(marker)])
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert child.poll() is None, f"the extraction ended (rc {child.returncode}) before the moment under test"
            assert time.monotonic() < deadline, "the extraction never reached the moment under test"
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    return marker.read_text()


def _tables(lake: Path, size: str, step: int) -> dict:
    directory = checkpoint_dir(lake, "micro", size, step)
    return {name: pq.read_table(directory / f"{name}.parquet").to_pandas() for name in TABLES}


def _assert_marts_read_each_row_once(lake: Path, expected_rows: int) -> None:
    """What the dbt sources read (the same glob, so no staging or trash folder): every
    (partition, seed pair, position) once, so nothing built on it can hold a duplicate."""
    import duckdb

    glob = f"{lake}/checkpoints/suite=*/size=*/step=*/pair_kl.parquet"
    with duckdb.connect() as connection:
        rows, distinct = connection.execute(
            "select count(*), count(distinct (suite, size, step, seed_a, seed_b, position)) "
            "from read_parquet(?, hive_partitioning = true)",
            [glob],
        ).fetchone()
    assert rows == distinct == expected_rows


@pytest.mark.timeout(900)
def test_sigkill_mid_partition_leaves_nothing_half_written(warehouse_copy, micro_config_path, tmp_path):
    from extract import pipeline

    reference = warehouse_copy("reference")
    list(pipeline.extract_checkpoints(reference, "micro", PARTITIONS))
    expected = {partition: _tables(reference.paths.lake, *partition) for partition in PARTITIONS}

    settings = warehouse_copy("crashed")
    root, lake = settings.paths.root, settings.paths.lake

    # Killed while the first partition's staged folder is about to be renamed into place.
    target = Path(_run_until_paused(micro_config_path, root, "first-write", tmp_path))
    assert target == checkpoint_dir(lake, "micro", *PARTITIONS[0])
    assert not target.exists(), "a half partition is visible"
    assert list((lake / STAGING).iterdir()), "the staged copy is left where no reader looks"

    list(pipeline.extract_checkpoints(settings, "micro", PARTITIONS))
    for partition in PARTITIONS:
        assert_same_rows(_tables(lake, *partition), expected[partition])
    expected_rows = sum(len(expected[partition]["pair_kl"]) for partition in PARTITIONS)
    _assert_marts_read_each_row_once(lake, expected_rows)

    # Killed while replacing a partition, between moving the old copy out and the new one in:
    # the next write puts the old copy back before anything else, then replaces it whole.
    _run_until_paused(micro_config_path, root, "between-renames", tmp_path)
    assert not checkpoint_dir(lake, "micro", *PARTITIONS[0]).exists()
    assert list((lake / TRASH).iterdir()), "the old copy waits in the trash"
    list(pipeline.extract_checkpoints(settings, "micro", PARTITIONS))
    assert not list((lake / TRASH).iterdir())
    for partition in PARTITIONS:
        assert read_manifest(checkpoint_dir(lake, "micro", *partition)) is not None
        assert_same_rows(_tables(lake, *partition), expected[partition])
    _assert_marts_read_each_row_once(lake, expected_rows)


@pytest.mark.timeout(900)
def test_dbt_build_killed_midway_then_run_again(tmp_path):
    """Killed with SIGKILL while it builds models, `dbt build` run again passes every test and gives
    the marts of an uninterrupted build: no duplicates, nothing missing."""
    from tests.helpers.dbt import DBT_PROJECT, dbt_command, dbt_environment, run_dbt
    from tests.helpers.lakes import write_synthetic_lake

    reference_dir, crashed_dir = tmp_path / "reference", tmp_path / "crashed"
    synth = write_synthetic_lake(tmp_path / "lake")
    assert run_dbt(["build"], reference_dir, synth.root).returncode == 0

    build = subprocess.Popen(dbt_command(["build"]), cwd=DBT_PROJECT, env=dbt_environment(crashed_dir, synth.root),
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    started = 0
    for line in build.stdout:
        started += " START sql " in line and " model " in line
        if started == 12:  # in the middle of the models, with tables already written
            os.kill(build.pid, signal.SIGKILL)
            break
    assert build.wait(timeout=60) == -signal.SIGKILL, "dbt finished before it could be killed"

    again = run_dbt(["build"], crashed_dir, synth.root)
    assert again.returncode == 0, again.stdout[-4000:]
    marts = ("mart_expected_convergence", "mart_model_stats", "mart_conditional_convergence", "int_context_convergence")
    import duckdb

    with (
        duckdb.connect(str(reference_dir / "seedconv.duckdb"), read_only=True) as reference,
        duckdb.connect(str(crashed_dir / "seedconv.duckdb"), read_only=True) as crashed,
    ):
        for mart in marts:
            # rows equal up to the last digit: DuckDB's parallel sums may add in another order
            query = f"select * from {mart} order by all"
            pandas.testing.assert_frame_equal(crashed.execute(query).df(), reference.execute(query).df(), rtol=1e-12)
