"""Running dbt on a lake in a scratch folder, and reading what the build did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from extract.config import REPO_ROOT

DBT_PROJECT = REPO_ROOT / "dbt_project"


def _dbt_executable() -> str:
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        pytest.skip("no dbt executable beside the interpreter or on PATH")
    return found


def run_dbt(args: list[str], workdir: Path, lake: Path) -> subprocess.CompletedProcess:
    """Run dbt from dbt_project/ against `lake`, writing everything under `workdir`."""
    return subprocess.run(
        dbt_command(args),
        cwd=DBT_PROJECT,
        env=dbt_environment(workdir, lake),
        capture_output=True,
        text=True,
        timeout=300,
    )


def dbt_command(args: list[str]) -> list[str]:
    return [_dbt_executable(), *args]


def dbt_environment(workdir: Path, lake: Path) -> dict[str, str]:
    """dbt against `lake`, its DuckDB file, target and logs under `workdir`."""
    env = os.environ.copy()
    env.update(
        {
            "SEEDCONV_LAKE": str(lake),
            "SEEDCONV_DUCKDB": str(workdir / "seedconv.duckdb"),
            "DBT_PROFILES_DIR": str(DBT_PROJECT),
            "DBT_TARGET_PATH": str(workdir / "target"),
            "DBT_LOG_PATH": str(workdir / "logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            "DBT_VERSION_CHECK": "False",
            "DBT_USE_COLORS": "False",
        }
    )
    return env


@contextmanager
def built_warehouse(workdir: Path, lake: Path, variables: str | None = None):
    """`dbt build` of `lake` into `workdir` (with `--vars variables` when given), which must pass
    every model and test; yields a read-only connection to the DuckDB file it wrote."""
    proc = run_dbt(["build", *(["--vars", variables] if variables else [])], workdir, lake)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    with duckdb.connect(str(workdir / "seedconv.duckdb"), read_only=True) as connection:
        yield connection


def run_results(workdir: Path) -> dict[str, str]:
    """unique_id -> status of the last dbt invocation that wrote `workdir`/target."""
    results = json.loads((workdir / "target" / "run_results.json").read_text())
    return {r["unique_id"]: r["status"] for r in results["results"]}


def statuses_by_test_name(statuses: dict[str, str]) -> dict[str, str]:
    """Test name -> status; generic tests' unique ids carry a hash after the name."""
    return {unique_id.split(".")[2]: status for unique_id, status in statuses.items() if unique_id.startswith("test.")}
