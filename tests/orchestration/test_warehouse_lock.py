"""One writer of the DuckDB file at a time: Dagster's builds queue in the pool `warehouse`, and a
dbt build run by hand that meets another writer's lock says who holds it and what to do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from extract.config import REPO_ROOT
from orchestration.definitions import defs
from orchestration.defs.resources import WAREHOUSE_POOL
from orchestration.warehouse_lock import WarehouseLocked, lock_holder, wait_for_lock

DBT = Path(sys.executable).parent / "dbt"

# Holds the write lock on argv[1] until argv[2] exists (or 60 s pass), with a table in it.
HOLDER = """
import sys, time, duckdb
from pathlib import Path
connection = duckdb.connect(sys.argv[1])
connection.execute("create or replace table kept as select 42 as answer")
print("holding", flush=True)
deadline = time.monotonic() + 60
while not Path(sys.argv[2]).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
"""

# One warehouse build in its own process, as the schedule or a second user would start it: an asset
# in the project's pool that, as the project's writers do, holds writing_warehouse and the DuckDB
# file's write lock for a while, on the instance in $DAGSTER_HOME (the project's dagster.yaml).
# Prints when it held the lock.
BUILD = """
import json, sys, time, duckdb, dagster as dg
from pathlib import Path
from orchestration.defs.resources import WAREHOUSE_POOL
from orchestration.warehouse_lock import writing_warehouse
database, name = sys.argv[1:3]

@dg.asset(pool=WAREHOUSE_POOL, name=name)
def build():
    with writing_warehouse(Path(database)), duckdb.connect(database) as connection:
        started = time.time()
        connection.execute(f"create or replace table {name} as select 1 as built")
        time.sleep(2)
        ended = time.time()
    print(json.dumps({"started": started, "ended": ended}), flush=True)

with dg.DagsterInstance.get() as instance:
    assert dg.materialize([build], instance=instance).success
"""


@pytest.fixture
def lock_held(tmp_path):
    """A process writing tmp_path/seedconv.duckdb, as a running build would; released at the end."""
    database, release = tmp_path / "seedconv.duckdb", tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(database), str(release)], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"holding"
    yield database, holder, release
    release.touch()
    holder.wait(timeout=30)


def test_the_holder_is_read_from_duckdbs_error(lock_held):
    database, holder, _ = lock_held
    with pytest.raises(duckdb.IOException) as raised:
        duckdb.connect(str(database))
    assert lock_holder(str(raised.value))[0] == holder.pid
    assert lock_holder("IO Error: No files found that match the pattern") is None


@pytest.mark.fault
def test_a_dbt_build_by_hand_meets_the_lock_and_is_told_who_holds_it(lock_held):
    database, holder, release = lock_held
    env = {**os.environ, "SEEDCONV_DUCKDB": str(database), "SEEDCONV_LOCK_WAIT": "0"}
    # `dbt debug` opens the connection as `dbt build` does (through the same plugin), without
    # parsing the project first: the same message, 9 s sooner.
    result = subprocess.run(
        [str(DBT), "debug"],
        cwd=REPO_ROOT / "dbt_project",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert f"is being written by another process:\n      PID {holder.pid}: {sys.executable}" in result.stdout
    assert str(database.parent / "published" / "seedconv.duckdb") in result.stdout
    # Nothing stored is lost: the holder's table is there once it lets go.
    release.touch()
    holder.wait(timeout=30)
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute("select answer from kept").fetchone() == (42,)


def test_with_a_wait_dbt_goes_on_once_the_lock_is_released(lock_held):
    database, holder, release = lock_held
    with pytest.raises(WarehouseLocked, match=f"PID {holder.pid}"):
        wait_for_lock(database, {}, wait_seconds=0.3, poll_s=0.1)
    started = time.monotonic()
    subprocess.Popen(
        [sys.executable, "-c", f"import time, pathlib; time.sleep(1); pathlib.Path({str(release)!r}).touch()"]
    )
    wait_for_lock(database, {}, wait_seconds=30, poll_s=0.1)
    assert 0.9 < time.monotonic() - started < 30


def test_every_asset_that_writes_the_duckdb_file_is_in_the_warehouse_pool():
    pooled = {
        key.to_user_string()
        for assets in defs.assets
        if isinstance(assets, dg.AssetsDefinition)
        for key in assets.keys
        if any(node.pool == WAREHOUSE_POOL for node in [assets.node_def])
    }
    writers = {
        "regression_coefficients",
        "loglik_analysis",
        "convergence_phases",
        "convergence_intervals",
        "published_warehouse",
        "mart_expected_convergence",
    }
    assert writers <= pooled
    assert not any(key.startswith("fig") or key == "report_page" for key in pooled)


@pytest.mark.fault
def test_two_warehouse_builds_started_together_run_one_after_the_other(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    # The instance's storage exists before the builds start, as it does once make demo has run:
    # two processes creating a new SQLite storage at once race on its tables.
    with dg.DagsterInstance.from_config(str(home)):
        pass
    database = tmp_path / "seedconv.duckdb"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    builds = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD, str(database), name], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for name in ("first", "second")
    ]
    outputs = [build.communicate(timeout=300) for build in builds]
    assert [build.returncode for build in builds] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    spans = sorted(
        (held["started"], held["ended"])
        for out, _ in outputs
        for held in [json.loads(out.decode().strip().splitlines()[-1])]
    )
    assert spans[0][1] <= spans[1][0]  # the second held the lock only after the first let go
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute("select (select built from first) + (select built from second)").fetchone() == (2,)


# Holds writing_warehouse on argv[1] for a second, with DuckDB's write lock; prints when.
WRITER = """
import json, sys, time, duckdb
from pathlib import Path
from orchestration.warehouse_lock import writing_warehouse
with writing_warehouse(Path(sys.argv[1])), duckdb.connect(sys.argv[1]) as connection:
    started = time.time()
    connection.execute(f"create or replace table {sys.argv[2]} as select 1 as built")
    time.sleep(1)
    ended = time.time()
print(json.dumps([started, ended]), flush=True)
"""


def test_writers_started_in_the_same_instant_take_turns_without_dagster(tmp_path):
    # What the pool cannot promise on SQLite storage, the OS lock does: no run, no pool here.
    database = tmp_path / "seedconv.duckdb"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(database), name], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for name in ("first", "second", "third")
    ]
    outputs = [writer.communicate(timeout=120) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0, 0], [err.decode()[-2000:] for _, err in outputs]
    spans = sorted(json.loads(out) for out, _ in outputs)
    assert any(b"waiting for another warehouse build" in err for _, err in outputs)
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:]))
