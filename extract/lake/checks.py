"""Checks of what a checkpoint partition holds in the lake, read back from its files.

Each check looks at the partitions given and returns the ones that fail it, with the reason, so
that Dagster's asset checks (orchestration/extraction.py) can mark them and a test can call the
same functions on a broken lake. They read the stored files, not what the extraction meant to
write: a check passes only if what is on disk is right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from extract.lake.partition_store import read_manifest, read_quarantine
from extract.lake.tables import checkpoint_dir
from extract.measures.token_distributions import PAIR_KL, TOKEN_STATS
from extract.registry import TABLES

# The KL between two fp32 distributions is computed exactly and is never negative by more than
# rounding: pairwise_kl clamps nothing, and its errors are a few ulps of the terms it sums.
KL_TOLERANCE = 1e-6
TOKEN_STAT_COLUMNS = ("surprisal", "entropy", "kl_uniform", "kl_unigram")


@dataclass
class CheckOutcome:
    """The partitions checked, those that failed with why, and a figure or two for the UI."""

    checked: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # partition key -> reason
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures


Partition = tuple[str, str, int]  # suite, size, step


def _key(partition: Partition) -> str:
    suite, size, step = partition
    return f"{suite}|{size}|step{step}"


def _scalar(sql: str, params: list) -> tuple:
    with duckdb.connect() as connection:
        return connection.execute(sql, params).fetchone()


def check_kl_non_negative(lake: Path, partitions: list[Partition], tolerance: float = KL_TOLERANCE) -> CheckOutcome:
    """Every stored pair KL is finite and at least -tolerance."""
    outcome = CheckOutcome()
    lowest = float("inf")
    for partition in partitions:
        path = PAIR_KL.path(lake, *partition)
        outcome.checked += 1
        if not path.exists():
            outcome.failures[_key(partition)] = "pair_kl.parquet is missing"
            continue
        minimum, not_finite = _scalar(
            "select min(kl), count(*) filter (where kl is null or not isfinite(kl)) from read_parquet(?)", [str(path)]
        )
        if not_finite:
            outcome.failures[_key(partition)] = f"{not_finite} pair KLs are NaN, infinite or missing"
        elif minimum is not None and minimum < -tolerance:
            outcome.failures[_key(partition)] = f"a pair KL is {minimum:.3g}, below -{tolerance:g}"
        if minimum is not None:
            lowest = min(lowest, minimum)
    if lowest != float("inf"):
        outcome.figures["min_kl"] = lowest
    return outcome


def check_token_stats_finite(lake: Path, partitions: list[Partition]) -> CheckOutcome:
    """No NaN or infinite surprisal, entropy, KL to uniform or KL to unigram."""
    outcome = CheckOutcome()
    condition = " or ".join(f"{c} is null or not isfinite({c})" for c in TOKEN_STAT_COLUMNS)
    for partition in partitions:
        path = TOKEN_STATS.path(lake, *partition)
        outcome.checked += 1
        if not path.exists():
            outcome.failures[_key(partition)] = "token_stats.parquet is missing"
            continue
        (bad,) = _scalar(f"select count(*) filter (where {condition}) from read_parquet(?)", [str(path)])
        if bad:
            outcome.failures[_key(partition)] = f"{bad} token rows have a NaN, infinite or missing statistic"
    return outcome


def check_not_quarantined(lake: Path, partitions: list[Partition]) -> CheckOutcome:
    """No partition is quarantined: every seed's logits, activations and probe scores are finite."""
    outcome = CheckOutcome()
    for partition in partitions:
        outcome.checked += 1
        record = read_quarantine(lake, *partition)
        if record is not None:
            by_seed = sorted(record["quarantined"].items(), key=lambda item: int(item[0]))
            reasons = "; ".join(f"seed {seed}: {reason}" for seed, reason in by_seed)
            stored = " (an earlier copy stays in the lake)" if read_manifest(checkpoint_dir(lake, *partition)) else ""
            outcome.failures[_key(partition)] = f"quarantined{stored}: {reasons}"
    return outcome


def check_row_counts(lake: Path, partitions: list[Partition]) -> CheckOutcome:
    """token_stats has one row per (seed, token) and pair_kl one per (ordered seed pair, token),
    over the same seeds and tokens."""
    outcome = CheckOutcome()
    for partition in partitions:
        outcome.checked += 1
        stats, pairs = TOKEN_STATS.path(lake, *partition), PAIR_KL.path(lake, *partition)
        if not (stats.exists() and pairs.exists()):
            outcome.failures[_key(partition)] = "token_stats.parquet or pair_kl.parquet is missing"
            continue
        n_stats, n_seeds, n_tokens = _scalar(
            "select count(*), count(distinct seed), count(distinct position) from read_parquet(?)", [str(stats)]
        )
        n_pairs, pair_seeds, pair_tokens = _scalar(
            "select count(*), count(distinct seed_a), count(distinct position) from read_parquet(?)", [str(pairs)]
        )
        expected_stats, expected_pairs = n_seeds * n_tokens, n_seeds * (n_seeds - 1) * n_tokens
        if n_stats != expected_stats or n_pairs != expected_pairs or (pair_seeds, pair_tokens) != (n_seeds, n_tokens):
            outcome.failures[_key(partition)] = (
                f"{n_seeds} seeds x {n_tokens} tokens need {expected_stats} token_stats rows and {expected_pairs} "
                f"pair_kl rows; found {n_stats} and {n_pairs} (pair_kl over {pair_seeds} seeds, {pair_tokens} tokens)"
            )
    return outcome


def check_manifests_complete(lake: Path, partitions: list[Partition]) -> CheckOutcome:
    """Every partition has its manifest, and every table the manifest counts has exactly that many rows."""
    outcome = CheckOutcome()
    for partition in partitions:
        directory = checkpoint_dir(lake, *partition)
        outcome.checked += 1
        manifest = read_manifest(directory)
        if manifest is None:
            outcome.failures[_key(partition)] = "manifest.json is missing: the partition is not complete"
            continue
        problems = []
        for table, rows in sorted(manifest.get("rows", {}).items()):
            path = TABLES[table].path(lake, *partition) if table in TABLES else directory / f"{table}.parquet"
            if not path.exists():
                problems.append(f"{table}.parquet is missing")
                continue
            (found,) = _scalar("select count(*) from read_parquet(?)", [str(path)])
            if found != rows:
                problems.append(f"{table} has {found} rows, the manifest says {rows}")
        if (manifest.get("suite"), manifest.get("size"), manifest.get("step")) != partition:
            problems.append(f"the manifest describes {manifest.get('suite')}|{manifest.get('size')}|"
                            f"step{manifest.get('step')}")  # fmt: skip
        if problems:
            outcome.failures[_key(partition)] = "; ".join(problems)
    return outcome


MANIFESTS = "checkpoint_manifests"  # the partitions' manifests, checked as one more table

CHECKS = {
    "pair_kl": {"kl_non_negative": check_kl_non_negative, "rows_match_token_stats": check_row_counts},
    "token_stats": {"no_nan": check_token_stats_finite, "logits_finite": check_not_quarantined},
    MANIFESTS: {"manifests_complete": check_manifests_complete},
}
