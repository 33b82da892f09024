"""What a lake table is: its name, its columns, where its files lie and which suites have it.

Each table is declared once, as a `LakeTable`, by the module that writes it (an input of
`extract/inputs/` or a measure of `extract/measures/`); `extract/registry.py` collects them.
Everything else that needs a table's schema or path (the extraction's outputs and manifests,
the Dagster assets and lake checks, the test fixtures, dbt's `sources.yml` through a test)
reads it from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from extract.config import OBJECTIVES

CHECKPOINTS = "checkpoints"

# Where a table's files lie:
LAKE = "lake"  # one file for the whole lake: <lake>/<name>/<name>.parquet
SUITE = "suite"  # one file per suite: <lake>/<name>/suite=<s>/<name>.parquet
PARTITION = "partition"  # one file per checkpoint partition: <lake>/checkpoints/suite=/size=/step=/<name>.parquet
SCOPES = (LAKE, SUITE, PARTITION)


def checkpoint_dir(lake: Path, suite: str, size: str, step: int) -> Path:
    """The folder of one checkpoint partition, which holds its tables and its manifest."""
    return lake / CHECKPOINTS / f"suite={suite}" / f"size={size}" / f"step={step}"


@dataclass(frozen=True)
class LakeTable:
    name: str
    schema: pa.Schema
    scope: str
    description: str  # one sentence: what a row is
    objectives: tuple[str, ...] = OBJECTIVES  # the suites that have it, by objective

    def __post_init__(self) -> None:
        assert self.scope in SCOPES, f"{self.name}: scope {self.scope!r} is not one of {SCOPES}"
        assert set(self.objectives) <= set(OBJECTIVES), f"{self.name}: unknown objectives {self.objectives}"

    def applies_to(self, objective: str) -> bool:
        return objective in self.objectives

    def path(self, lake: Path, suite: str | None = None, size: str | None = None, step: int | None = None) -> Path:
        """The table's file: of the lake, of `suite`, or of the partition (suite, size, step)."""
        file = f"{self.name}.parquet"
        if self.scope == LAKE:
            return lake / self.name / file
        if suite is None:
            raise ValueError(f"the {self.scope} table {self.name} needs a suite")
        if self.scope == SUITE:
            return lake / self.name / f"suite={suite}" / file
        if size is None or step is None:
            raise ValueError(f"the partition table {self.name} needs a size and a step")
        return checkpoint_dir(lake, suite, size, step) / file

    def glob(self, lake: str) -> str:
        """The glob of every file of the table under `lake`, as dbt's sources read it."""
        return {
            LAKE: f"{lake}/{self.name}/{self.name}.parquet",
            SUITE: f"{lake}/{self.name}/suite=*/{self.name}.parquet",
            PARTITION: f"{lake}/{CHECKPOINTS}/suite=*/size=*/step=*/{self.name}.parquet",
        }[self.scope]

    def empty(self) -> pa.Table:
        return self.schema.empty_table()
