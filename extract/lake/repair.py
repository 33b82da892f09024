"""Self-repair: a damaged partition is set aside, out of what dbt reads, until it is extracted again.

`guard` checks every committed partition (by default the cheap way: sizes and Parquet footers,
extract/lake/integrity.py) and moves each damaged one from `checkpoints/` to
`damaged/suite=<s>/size=<z>/step=<n>/<when>/`, with `reason.json` saying what was wrong. The
warehouse then builds from everything else; `damaged_partitions` lists the partitions set aside
and not extracted since, which the Dagster sensor `repair_damaged` and `make demo` extract again.
A successful write of the partition removes what was set aside (extract/lake/partition_store.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

from extract.lake.integrity import committed_partitions, partition_problems
from extract.lake.partition_store import DAMAGED, MANIFEST, damaged_dir, write_json_atomically
from extract.lake.tables import checkpoint_dir

Partition = tuple[str, str, int]  # suite, size, step
_FOLDER = re.compile(r"suite=(?P<suite>[^/]+)/size=(?P<size>[^/]+)/step=(?P<step>\d+)$")


def _partition(directory: Path) -> Partition:
    match = _FOLDER.search(directory.as_posix())
    return match["suite"], match["size"], int(match["step"])


def set_aside(lake: Path, directory: Path, problems: list[str]) -> Path:
    """Moves the partition folder out of `checkpoints/`, with why; returns where it went."""
    suite, size, step = _partition(directory)
    found_at = dt.datetime.now(dt.timezone.utc)
    aside = damaged_dir(lake, suite, size, step) / found_at.strftime("%Y%m%dT%H%M%S%fZ")
    aside.mkdir(parents=True)
    os.replace(directory, aside / "data")  # one rename: dbt sees the partition whole or not at all
    record = {"suite": suite, "size": size, "step": step, "problems": problems, "found_at": found_at.isoformat()}
    write_json_atomically(record, aside / "reason.json")
    return aside


def guard(lake: Path, deep: bool = False) -> dict[Partition, list[str]]:
    """Every committed partition checked against its manifest; the damaged ones set aside."""
    damaged = {}
    for directory in committed_partitions(lake):
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
        except (OSError, ValueError) as error:
            problems = [f"{MANIFEST} is not readable: {error}"]
        else:
            problems = partition_problems(directory, manifest, deep=deep)
        if problems:
            set_aside(lake, directory, problems)
            damaged[_partition(directory)] = problems
    return damaged


def damaged_partitions(lake: Path) -> dict[Partition, dict]:
    """The partitions set aside and not extracted since, each with its latest reason."""
    found = {}
    for reason in sorted((lake / DAMAGED).glob("suite=*/size=*/step=*/*/reason.json")):
        partition = _partition(reason.parent.parent)
        if not (checkpoint_dir(lake, *partition) / MANIFEST).exists():
            found[partition] = json.loads(reason.read_text())
    return found
