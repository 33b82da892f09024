"""Ad-hoc SQL while the pipeline writes: readers of the published DuckDB file, in another
process, never fail and never see half a build while dbt builds and the copy is replaced."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from orchestration.defs.dbt_warehouse import publish_copy
from tests.helpers.dbt import run_dbt
from tests.helpers.lakes import SUITE, SyntheticLake, partition_dir, write_synthetic_lake

pytestmark = pytest.mark.fault

# What a reader checks on every open: the checkpoints the build saw, and that every mart agrees
# with them (a half-copied or half-built file would fail to open or disagree).
STATE_SQL = """
    select
        (select count(*) from stg_checkpoints) as checkpoints,
        (select count(*) from mart_expected_convergence) as expected,
        (select count(*) from mart_model_stats) as model_stats,
        (select count(*) from int_context_convergence) as contexts
"""

NEW_STEP = 1_000

READER = """
import json, sys, time, duckdb
path, stop, out, sql = sys.argv[1:5]
from pathlib import Path
seen, errors, reads = {}, [], 0
while not Path(stop).exists():
    try:
        with duckdb.connect(path, read_only=True) as connection:
            state = list(connection.execute(sql).fetchone())
        seen[json.dumps(state)] = seen.get(json.dumps(state), 0) + 1
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
    reads += 1
Path(out).write_text(json.dumps({"seen": seen, "errors": errors[:20], "n_errors": len(errors), "reads": reads}))
"""


def _state(database: Path) -> list[int]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return list(connection.execute(STATE_SQL).fetchone())


def _add_checkpoint(synth: SyntheticLake) -> None:
    """A new step of a size, landing whole: a copy of one partition's files under a new step."""
    size, step = synth.partitions[0]
    source, target = partition_dir(synth.root, SUITE, size, step), partition_dir(synth.root, SUITE, size, NEW_STEP)
    shutil.copytree(source, target)
    manifest = json.loads((source / "manifest.json").read_text()) | {"step": NEW_STEP}
    (target / "manifest.json").write_text(json.dumps(manifest))


def test_readers_never_fail_or_see_half_a_build(tmp_path):
    workdir = tmp_path / "build"
    synth = write_synthetic_lake(workdir / "lake")
    private, published = workdir / "seedconv.duckdb", tmp_path / "published" / "seedconv.duckdb"

    proc = run_dbt(["build"], workdir, synth.root)
    assert proc.returncode == 0, proc.stdout[-4000:]
    publish_copy(private, published)
    before = _state(published)
    snapshot_before = tmp_path / "before.duckdb"
    shutil.copyfile(private, snapshot_before)

    stop, out = tmp_path / "stop", tmp_path / "reads.json"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(published), str(stop), str(out), STATE_SQL])
    try:
        time.sleep(1.0)  # the reader is reading the first build
        # A new checkpoint lands; dbt rebuilds the private file while the reader reads the published one.
        _add_checkpoint(synth)
        proc = run_dbt(["build"], workdir, synth.root)
        assert proc.returncode == 0, proc.stdout[-4000:]
        publish_copy(private, published)
        after = _state(published)
        # Then the file is replaced over and over under the reader, each time by a whole build.
        for i in range(30):
            publish_copy(snapshot_before if i % 2 else private, published)
            time.sleep(0.05)
        publish_copy(private, published)
        time.sleep(0.5)
    finally:
        stop.touch()
        reader.wait(timeout=60)
    reads = json.loads(out.read_text())

    assert before != after and after[0] == before[0] + 1, "the second build has one checkpoint more"
    assert reads["n_errors"] == 0, reads["errors"]
    assert reads["reads"] >= 20
    seen = {tuple(json.loads(state)) for state in reads["seen"]}
    assert seen <= {tuple(before), tuple(after)}, f"a reader saw a state no build wrote: {seen}"
    assert seen == {tuple(before), tuple(after)}, "the reader read both builds"
    assert not list(published.parent.glob(".*")), "no staging copy left behind"

    # `make sql`: DuckDB's own shell (an older DuckDB than the library that wrote the file)
    # opens the published copy read-only.
    shell = subprocess.run(
        [str(Path(sys.executable).parent / "duckdb"), "-readonly", "-csv", "-noheader", str(published),
         "-c", "select count(*) from stg_checkpoints"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    assert int(shell.stdout) == after[0]
