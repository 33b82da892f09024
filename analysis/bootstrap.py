"""Intervals for E[conv] over both of its sources of chance: the seeds and the contexts.

E[conv] at a checkpoint is minus the mean KL over the ordered pairs of its seeds and over its
evaluation contexts, and both are samples: other seeds would have trained other models, other
text would have given other contexts. Sellam et al. (2022), the MultiBERTs' multi-bootstrap
(google-research/language, language/multiberts/multibootstrap.py), resample seeds and examples
together; so does this module, adapted in two ways:

- Pairs. E[conv] is a mean over pairs of distinct runs. Drawing seeds with replacement draws some
  run twice, and a run compared with itself is not a pair of runs (its KL is 0). A replicate
  takes the n (n - 1) ordered pairs of its n draws as resampling by index would, and gives a
  pair of two copies of one run the KL the pair mean's linear projection predicts for it
  (`with_copy_pairs`).
- Contexts. They are resampled a whole evaluation window at a time (`unit = "window"`, the
  default), or a whole document: the tokens of one window are one passage read in one forward
  pass, and their KLs move together, so resampling them one by one would take a window of 128
  correlated tokens for 128 independent ones and make the interval too narrow.

The interval is the percentile interval of the replicates (multibootstrap's report_ci), at the
configured level, after one correction: n seeds tell the seeds' share of the variance poorly (too
low by (n - 1) / n, and uncertain), so that share, measured by resampling the seeds alone, is
scaled up as a t interval with n - 1 degrees of freedom would (`widened`). Coverage in
simulations with known variance components: docs/architecture.md, Intervals.

A difference between two checkpoints of a suite uses one draw of the contexts
for both, since both were evaluated on the same tokens (multibootstrap's paired examples). Two
steps of one size are the same training runs, so they also share the draw of the seeds
(paired_seeds=True), over the seeds both steps have; two sizes are different runs, so each draws
its own seeds (paired_seeds=False). The p-value is two-sided, 2 min(P*(d <= 0), P*(d >= 0))
capped at 1, for the hypothesis of no difference; multibootstrap's one-sided P*(d <= 0) is half
of it where the difference is positive.

This replaces, in the report, the band of one standard deviation across ordered seed pairs
(mart_expected_convergence.band_low/high), which is kept as its own column: that band treats the
20 ordered pairs of 5 seeds as 20 independent draws, although they are made of 5 runs, and it
leaves the contexts out.

The first part is pure numpy; the second builds the warehouse tables `convergence_intervals` and
`convergence_differences` from an open DuckDB connection.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from extract.config import BootstrapConfig


@dataclass(frozen=True)
class CheckpointKL:
    """One checkpoint's KL between seeds, summed per resampling unit (window or document)."""

    seeds: tuple[int, ...]
    # (n_seeds, n_seeds, n_units): KL(p_a || p_b) summed over the unit's contexts, for the ordered
    # pair (seeds[a], seeds[b]); the diagonal is 0.
    sums: np.ndarray
    # (n_units,): the unit's contexts. The units are the suite's, in one order for all of its
    # checkpoints, so that two checkpoints can share a draw.
    counts: np.ndarray

    @property
    def expected_conv(self) -> float:
        n = len(self.seeds)
        return float(-self.sums.sum() / (n * (n - 1) * self.counts.sum()))

    def restricted(self, seeds: tuple[int, ...]) -> CheckpointKL:
        """The same checkpoint over `seeds` only (a subset of its own, in that order)."""
        index = [self.seeds.index(seed) for seed in seeds]
        return CheckpointKL(seeds, self.sums[np.ix_(index, index)], self.counts)


def seed_weights(rng: np.random.Generator, n_seeds: int, n_boot: int) -> np.ndarray:
    """(n_boot, n_seeds): how often each seed is drawn in each replicate, n draws with replacement."""
    if n_seeds < 2:
        raise ValueError(f"a bootstrap over seed pairs needs at least 2 seeds, got {n_seeds}")
    return rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot).astype(float)


def unit_weights(rng: np.random.Generator, n_units: int, n_boot: int) -> np.ndarray:
    """(n_boot, n_units): how often each unit of contexts is drawn in each replicate."""
    return rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=n_boot).astype(float)


def with_copy_pairs(kl: CheckpointKL) -> np.ndarray:
    """The pair sums with the diagonal filled in: what a pair of two copies of one run stands for.

    Two runs that happen to be the same run have no KL of their own (0). Their place is taken by
    what the pair mean's first-order (Hajek) projection predicts for two runs like that one:
    2 r_a - U, with r_a the run's mean KL with the other runs (both directions) and U the mean
    over all pairs, per unit of contexts. Dropping those pairs instead would weigh a run drawn k
    times by k (n - k) rather than k (n - 1), too little variation: 90.6 % coverage for a 95 %
    interval at 10 seeds (benchmarks/bootstrap_coverage.py), against 95 % with the projection and
    the widening below.
    """
    n = len(kl.seeds)
    sums = kl.sums.copy()
    run_means = (sums.sum(axis=1) + sums.sum(axis=0)) / (2 * (n - 1))
    overall = sums.sum(axis=(0, 1)) / (n * (n - 1))
    sums[np.arange(n), np.arange(n)] = 2 * run_means - overall
    return sums


def replicates(kl: CheckpointKL, seed_w: np.ndarray, unit_w: np.ndarray) -> np.ndarray:
    """(n_boot,): E[conv] of each replicate: the n (n - 1) ordered pairs of its n drawn seeds (a seed
    drawn twice: with_copy_pairs), over its drawn units of contexts."""
    n = len(kl.seeds)
    # each pair's KL summed over the drawn units: (n, n, n_boot)
    per_pair = (with_copy_pairs(kl).reshape(n * n, -1) @ unit_w.T).reshape(n, n, -1)
    pair_w = np.einsum("ra,rb->rab", seed_w, seed_w)
    # ordered pairs of two different draws of one seed: w (w - 1)
    pair_w[:, np.arange(n), np.arange(n)] = seed_w * (seed_w - 1)
    numerator = np.einsum("rab,abr->r", pair_w, per_pair)
    return -numerator / (n * (n - 1) * (unit_w @ kl.counts))


def small_sample_factor(n_seeds: int, level: float) -> float:
    """How much the seeds' share of the replicates' variance is scaled up: n / (n - 1), the plug-in
    variance's bias, times (t_{n-1} / z)^2, the wider quantile of an interval whose variance is
    estimated from n draws."""
    tail = (1 + level) / 2
    return n_seeds / (n_seeds - 1) * (stats.t.ppf(tail, n_seeds - 1) / stats.norm.ppf(tail)) ** 2


def widened(estimate: float, draws: np.ndarray, seed_draws: np.ndarray, n_seeds: int, level: float) -> np.ndarray:
    """The replicates spread around the estimate so that their variance counts the seeds' share
    (the variance of `seed_draws`, which resample the seeds alone) small_sample_factor times.

    The bootstrap estimates each source's variance from its own sample: from 40 windows well, from
    5 or 10 seeds poorly (too low, and itself uncertain), and the percentile interval alone covers
    in 87 % (5 seeds) to 91 % (10 seeds) of simulations instead of 95 %. Only the seeds' share is
    widened, so an interval whose width comes from the contexts keeps it.
    """
    total, from_seeds = np.var(draws), np.var(seed_draws)
    if total <= 0:
        return draws
    factor = np.sqrt((total + from_seeds * (small_sample_factor(n_seeds, level) - 1)) / total)
    return estimate + (draws - estimate) * factor


@dataclass(frozen=True)
class Interval:
    estimate: float  # on the data as they are
    low: float
    high: float
    se: float  # the (widened) replicates' standard deviation


def percentile_interval(estimate: float, draws: np.ndarray, level: float) -> Interval:
    low, high = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return Interval(estimate, float(low), float(high), float(np.std(draws, ddof=1)))


def two_sided_p(differences: np.ndarray) -> float:
    """The bootstrap p-value of "no difference": twice the smaller tail at 0, at most 1."""
    return float(min(1.0, 2 * min(np.mean(differences <= 0), np.mean(differences >= 0))))


def conv_interval(kl: CheckpointKL, rng: np.random.Generator, n_boot: int, level: float) -> Interval:
    """E[conv] of one checkpoint with its seed-and-context interval."""
    n_seeds, n_units = len(kl.seeds), len(kl.counts)
    draws = replicates(kl, seed_weights(rng, n_seeds, n_boot), unit_weights(rng, n_units, n_boot))
    seed_draws = replicates(kl, seed_weights(rng, n_seeds, n_boot), np.ones((n_boot, n_units)))
    return percentile_interval(kl.expected_conv, widened(kl.expected_conv, draws, seed_draws, n_seeds, level), level)


@dataclass(frozen=True)
class Difference:
    interval: Interval  # of E[conv]_b - E[conv]_a
    p_value: float
    conv_a: float  # over the seeds compared (the common ones where paired)
    conv_b: float
    n_seeds: int  # the common seeds where paired, else the fewer of the two checkpoints'


def conv_difference(
    a: CheckpointKL, b: CheckpointKL, paired_seeds: bool, rng: np.random.Generator, n_boot: int, level: float
) -> Difference:
    """E[conv]_b - E[conv]_a for two checkpoints evaluated on the same units of contexts."""
    if a.counts.shape != b.counts.shape or not np.array_equal(a.counts, b.counts):
        raise ValueError("the two checkpoints were not evaluated on the same contexts")
    n_units = len(a.counts)
    if paired_seeds:
        common = tuple(seed for seed in a.seeds if seed in b.seeds)
        a, b = a.restricted(common), b.restricted(common)

    def difference_draws(units: np.ndarray) -> np.ndarray:
        weights_a = seed_weights(rng, len(a.seeds), n_boot)
        weights_b = weights_a if paired_seeds else seed_weights(rng, len(b.seeds), n_boot)
        return replicates(b, weights_b, units) - replicates(a, weights_a, units)

    estimate = b.expected_conv - a.expected_conv
    # the fewer seeds bound how well the seeds' share is known
    n_seeds = min(len(a.seeds), len(b.seeds))
    draws = widened(
        estimate,
        difference_draws(unit_weights(rng, n_units, n_boot)),
        difference_draws(np.ones((n_boot, n_units))),
        n_seeds,
        level,
    )
    return Difference(
        percentile_interval(estimate, draws, level), two_sided_p(draws), a.expected_conv, b.expected_conv, n_seeds
    )


def rng_for(seed: int, *key: object) -> np.random.Generator:
    """A generator of its own per checkpoint (or pair of checkpoints), from the configured seed and
    the key: a checkpoint's interval does not change when others are added to the warehouse."""
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, key)).encode())])


# ---- the warehouse tables -------------------------------------------------------------------

INTERVALS_TABLE = "convergence_intervals"
DIFFERENCES_TABLE = "convergence_differences"
TABLES = (INTERVALS_TABLE, DIFFERENCES_TABLE)
# The relations they are computed from (dbt models: the asset's deps).
INPUTS = ("int_pair_window_kl", "mart_expected_convergence")

# Each checkpoint's pair sums per unit; the unit is a window, or all the windows of a document.
UNIT_SUMS_QUERY = """
    select suite, size, step, seed_a, seed_b, {unit} as unit, sum(n_contexts) as n_contexts, sum(sum_kl) as sum_kl
    from int_pair_window_kl
    group by all
"""
UNIT_COLUMN = {"window": "cast(window_id as varchar)", "document": "doc_id"}
CHECKPOINTS_QUERY = """
    select suite, size, step, n_params, n_seeds, expected_conv, pair_conv_std, band_low, band_high
    from mart_expected_convergence
"""

INTERVAL_COLUMNS = (
    ("suite", "varchar"),
    ("size", "varchar"),
    ("step", "bigint"),
    ("n_params", "bigint"),
    ("n_seeds", "integer"),
    ("n_units", "integer"),
    ("expected_conv", "double"),
    ("ci_low", "double"),
    ("ci_high", "double"),
    ("bootstrap_se", "double"),
    ("pair_conv_std", "double"),
    ("band_low", "double"),
    ("band_high", "double"),
    ("level", "double"),
    ("n_boot", "integer"),
    ("unit", "varchar"),
)
DIFFERENCE_COLUMNS = (
    ("suite", "varchar"),
    ("comparison", "varchar"),
    ("size_a", "varchar"),
    ("step_a", "bigint"),
    ("size_b", "varchar"),
    ("step_b", "bigint"),
    ("paired_seeds", "boolean"),
    ("n_seeds", "integer"),
    ("expected_conv_a", "double"),
    ("expected_conv_b", "double"),
    ("difference", "double"),
    ("ci_low", "double"),
    ("ci_high", "double"),
    ("bootstrap_se", "double"),
    ("p_value", "double"),
    ("level", "double"),
    ("n_boot", "integer"),
    ("unit", "varchar"),
)


def checkpoints_from_sums(sums: pd.DataFrame) -> dict[tuple[str, str, int], CheckpointKL]:
    """CheckpointKL per (suite, size, step) from UNIT_SUMS_QUERY's rows; the units in one order per suite."""
    checkpoints = {}
    for suite, rows in sums.groupby("suite", sort=True):
        units = np.sort(rows["unit"].unique())
        for (size, step), part in rows.groupby(["size", "step"], sort=True):
            seeds = tuple(sorted(set(part["seed_a"]) | set(part["seed_b"])))
            seed_index = {seed: i for i, seed in enumerate(seeds)}
            unit_index = np.searchsorted(units, part["unit"].to_numpy())
            a = part["seed_a"].map(seed_index).to_numpy()
            b = part["seed_b"].map(seed_index).to_numpy()
            kl_sums = np.zeros((len(seeds), len(seeds), len(units)))
            kl_sums[a, b, unit_index] = part["sum_kl"].to_numpy()
            counts = np.zeros(len(units))
            # every pair has a KL at every context of a complete partition: one pair's counts are all
            np.maximum.at(counts, unit_index, part["n_contexts"].to_numpy(dtype=float))
            checkpoints[(suite, size, int(step))] = CheckpointKL(seeds, kl_sums, counts)
    return checkpoints


def intervals_frame(
    checkpoints: dict[tuple[str, str, int], CheckpointKL], marts: pd.DataFrame, config: BootstrapConfig
) -> pd.DataFrame:
    rows = []
    for row in marts.itertuples(index=False):
        key = (row.suite, row.size, int(row.step))
        kl = checkpoints.get(key)
        if kl is None or len(kl.seeds) < 2:
            continue
        interval = conv_interval(kl, rng_for(config.seed, *key), config.n_boot, config.level)
        rows.append(
            {
                **{name: getattr(row, name) for name in ("suite", "size", "step", "n_params", "n_seeds")},
                "n_units": len(kl.counts),
                "expected_conv": interval.estimate,
                "ci_low": interval.low,
                "ci_high": interval.high,
                "bootstrap_se": interval.se,
                **{name: getattr(row, name) for name in ("pair_conv_std", "band_low", "band_high")},
                "level": config.level,
                "n_boot": config.n_boot,
                "unit": config.unit,
            }
        )
    return pd.DataFrame(rows, columns=[name for name, _ in INTERVAL_COLUMNS])


def comparisons(marts: pd.DataFrame) -> list[tuple[str, str, tuple[str, int], tuple[str, int]]]:
    """(suite, comparison, (size_a, step_a), (size_b, step_b)) for every two sizes of a suite at a step
    both have (a the smaller by n_params), and every step of a size against its previous extracted one."""
    pairs = []
    for suite, rows in marts.groupby("suite", sort=True):
        rows = rows.sort_values(["n_params", "size", "step"])
        sizes = list(dict.fromkeys(rows["size"]))
        for size, part in rows.groupby("size", sort=False):
            steps = list(part["step"])
            pairs += [(suite, "step", (size, int(a)), (size, int(b))) for a, b in zip(steps, steps[1:])]
        for i, size_a in enumerate(sizes):
            for size_b in sizes[i + 1 :]:
                common = sorted(
                    set(rows.loc[rows["size"] == size_a, "step"]) & set(rows.loc[rows["size"] == size_b, "step"])
                )
                pairs += [(suite, "size", (size_a, int(step)), (size_b, int(step))) for step in common]
    return pairs


def differences_frame(
    checkpoints: dict[tuple[str, str, int], CheckpointKL], marts: pd.DataFrame, config: BootstrapConfig
) -> pd.DataFrame:
    rows = []
    for suite, comparison, (size_a, step_a), (size_b, step_b) in comparisons(marts):
        a, b = checkpoints.get((suite, size_a, step_a)), checkpoints.get((suite, size_b, step_b))
        paired = comparison == "step"
        if a is None or b is None:
            continue
        if (paired and len(set(a.seeds) & set(b.seeds)) < 2) or min(len(a.seeds), len(b.seeds)) < 2:
            continue
        rng = rng_for(config.seed, suite, size_a, step_a, size_b, step_b)
        found = conv_difference(a, b, paired, rng, config.n_boot, config.level)
        rows.append(
            {
                "suite": suite,
                "comparison": comparison,
                "size_a": size_a,
                "step_a": step_a,
                "size_b": size_b,
                "step_b": step_b,
                "paired_seeds": paired,
                "n_seeds": found.n_seeds,
                "expected_conv_a": found.conv_a,
                "expected_conv_b": found.conv_b,
                "difference": found.interval.estimate,
                "ci_low": found.interval.low,
                "ci_high": found.interval.high,
                "bootstrap_se": found.interval.se,
                "p_value": found.p_value,
                "level": config.level,
                "n_boot": config.n_boot,
                "unit": config.unit,
            }
        )
    return pd.DataFrame(rows, columns=[name for name, _ in DIFFERENCE_COLUMNS])


def compute_tables(connection, config: BootstrapConfig) -> dict[str, pd.DataFrame]:
    """convergence_intervals and convergence_differences from the warehouse's models (`INPUTS`)."""
    sums = connection.execute(UNIT_SUMS_QUERY.format(unit=UNIT_COLUMN[config.unit])).df()
    marts = connection.execute(CHECKPOINTS_QUERY).df()
    checkpoints = checkpoints_from_sums(sums)
    return {
        INTERVALS_TABLE: intervals_frame(checkpoints, marts, config),
        DIFFERENCES_TABLE: differences_frame(checkpoints, marts, config),
    }


def write_tables(connection, tables: dict[str, pd.DataFrame]) -> None:
    """`create or replace table` each, cast to its columns' types."""
    for name, columns in ((INTERVALS_TABLE, INTERVAL_COLUMNS), (DIFFERENCES_TABLE, DIFFERENCE_COLUMNS)):
        frame = tables[name].reindex(columns=[column for column, _ in columns])
        casts = ", ".join(f'cast("{column}" as {kind}) as "{column}"' for column, kind in columns)
        connection.register("_bootstrap_frame", frame)
        try:
            connection.execute(f"create or replace table {name} as select {casts} from _bootstrap_frame")
        finally:
            connection.unregister("_bootstrap_frame")
