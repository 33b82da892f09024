"""Re-reading every committed partition against its manifest: `make verify`.

    python -m extract.lake.scrub [--quick]

Prints each damaged partition with what is wrong, then how much was read and how fast; exits 1
when any partition is damaged. `--quick` checks sizes and Parquet footers only (no checksums):
a few reads per file instead of every byte. Reads only: nothing is changed or moved.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from extract.config import load_settings
from extract.lake.integrity import committed_partitions, partition_problems
from extract.lake.partition_store import MANIFEST


@dataclass
class ScrubReport:
    partitions: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    damaged: dict[str, list[str]] = field(default_factory=dict)  # partition folder -> problems

    def summary(self) -> str:
        rate = self.bytes / max(self.seconds, 1e-9) / 1e9
        return (
            f"{self.partitions} partitions, {self.files} files, {self.bytes / 1e9:.2f} GB read in "
            f"{self.seconds:.1f} s ({rate:.2f} GB/s); {len(self.damaged)} damaged"
        )


def scrub(lake: Path, deep: bool = True) -> ScrubReport:
    """Every committed partition of the lake checked against its manifest."""
    report, started = ScrubReport(), time.perf_counter()
    for directory in committed_partitions(lake):
        report.partitions += 1
        key = str(directory.relative_to(lake))
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
        except (OSError, ValueError) as error:
            report.damaged[key] = [f"{MANIFEST} is not readable: {error}"]
            continue
        files = [path for path in directory.iterdir() if path.is_file() and path.name != MANIFEST]
        report.files += len(files)
        if deep and "files" in manifest:  # bytes read against checksums (older manifests have none)
            report.bytes += sum(path.stat().st_size for path in files)
        problems = partition_problems(directory, manifest, deep=deep)
        if problems:
            report.damaged[key] = problems
    report.seconds = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sizes and Parquet footers only, no checksums")
    parser.add_argument("--lake", type=Path, help="the lake to check (default: the settings' lake)")
    args = parser.parse_args(argv)
    lake = args.lake or load_settings().paths.lake
    report = scrub(lake, deep=not args.quick)
    for key, problems in sorted(report.damaged.items()):
        print(f"DAMAGED {key}: " + "; ".join(problems))
    print(report.summary())
    return 1 if report.damaged else 0


if __name__ == "__main__":
    sys.exit(main())
