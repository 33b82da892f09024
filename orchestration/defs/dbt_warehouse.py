"""The dbt models as Dagster assets, and the published read-only copy of the DuckDB file.

The translator maps each dbt source to the Python asset that writes it, so the UI shows one
lineage graph from checkpoint to figure, and puts each model in the group of its topic folder
(`dbt_project/models/<topic>/`).
"""

import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from filelock import FileLock

from extract.config import REPO_ROOT, Settings
from extract.lake.atomic_writes import replaced_atomically
from extract.lake.repair import guard
from orchestration.defs.analysis_tables import (
    convergence_intervals,
    convergence_phases,
    loglik_analysis,
    regression_coefficients,
    trajectory_exponents,
)
from orchestration.defs.resources import WAREHOUSE_POOL, SeedconvSettings
from orchestration.warehouse_lock import writing_warehouse

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
GROUP = "warehouse"

# The dbt installed beside this interpreter, so a virtualenv works without being on PATH.
_dbt_beside = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(_dbt_beside) if _dbt_beside.exists() else (shutil.which("dbt") or "dbt")


def manifest_is_stale(project_dir: Path, manifest: Path) -> bool:
    """True when the manifest is missing or older than any file of the dbt project."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in ("models", "macros", "seeds", "tests"):
        sources += [path for path in (project_dir / folder).rglob("*") if path.is_file()]
    return any(path.exists() and path.stat().st_mtime > built for path in sources)


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_resource = DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)
# dagster-dbt reads the manifest at import time. Under `dagster dev`, prepare_if_dev parses the
# project on every load; everywhere else (make demo, the tests, CI) it does nothing, and a fresh
# clone has no manifest while one parsed before a model changed would name the wrong models, so
# the project is parsed whenever any of its files is newer than the manifest.
dbt_project.prepare_if_dev()


def ensure_manifest(project: DbtProject, resource: DbtCliResource) -> None:
    """Parse the project when its manifest is stale, one process at a time.

    Several processes import this module at once (the pytest workers, a run's subprocesses); two
    `dbt parse` writing the same target/manifest.json interleave into a file no one can read, so the
    check and the parse happen under a lock beside the manifest, and a process that waited finds a
    fresh manifest and parses nothing.
    """
    # target_path is relative to the project; manifest_path is the absolute one.
    project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(project.manifest_path.parent / ".parse.lock"):
        if manifest_is_stale(project.project_dir, project.manifest_path):
            resource.cli(["parse", "--quiet"], target_path=project.target_path).wait()


ensure_manifest(dbt_project, dbt_resource)


class SeedconvTranslator(DagsterDbtTranslator):
    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        # A dbt source is the lake table of the same name, written by a Python asset
        # (eval_set or checkpoint_extraction): one key, so one lineage graph.
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        # A model's group is its topic folder: fqn is [project, folder, ..., model].
        fqn = dbt_resource_props.get("fqn", [])
        if dbt_resource_props["resource_type"] == "model" and len(fqn) > 2:
            return fqn[1]
        return GROUP


def dbt_environment(settings: Settings) -> dict[str, str]:
    """The variables profiles.yml and sources.yml read to find the lake and the DuckDB file."""
    return {"SEEDCONV_LAKE": str(settings.paths.lake), "SEEDCONV_DUCKDB": str(settings.paths.duckdb)}


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    # dagster-dbt passes os.environ to the dbt process; there is no per-call env argument.
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=SeedconvTranslator(),
    pool=WAREHOUSE_POOL,
)
def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, seedconv: SeedconvSettings):
    """dbt build: staging views, intermediate models and marts, with their tests."""
    settings = seedconv.load()
    settings.paths.duckdb.parent.mkdir(parents=True, exist_ok=True)
    # The cheap guard (sizes and Parquet footers against each manifest): a damaged partition is set
    # aside, so the build goes on from everything else, and the sensor repair_damaged extracts it again.
    for (suite, size, step), problems in guard(settings.paths.lake).items():
        context.log.warning(f"set aside {suite}|{size}|step{step}, damaged: {'; '.join(problems)}")
    with writing_warehouse(settings.paths.duckdb, context.log.info), environment(dbt_environment(settings)):
        yield from dbt.cli(["build"], context=context).stream()


def publish_copy(source: Path, target: Path) -> None:
    """Copies the DuckDB file beside its target and renames it over the old copy.

    A reader holding the old copy open keeps reading it; the next open sees the new one.
    """
    with replaced_atomically(target) as staging:
        shutil.copyfile(source, staging)


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[
        warehouse_models,
        regression_coefficients,
        loglik_analysis,
        convergence_phases,
        convergence_intervals,
        trajectory_exponents,
    ],
)
def published_warehouse(context: dg.AssetExecutionContext, seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """The read-only copy of the DuckDB file that users query while the next one is built."""
    paths = seedconv.load().paths
    # Held so that no other build writes the file while it is copied.
    with writing_warehouse(paths.duckdb, context.log.info):
        publish_copy(paths.duckdb, paths.published_duckdb)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(paths.published_duckdb)),
            "bytes": paths.published_duckdb.stat().st_size,
        }
    )
