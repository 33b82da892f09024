"""How often the seed-and-context bootstrap's intervals cover the true E[conv] (analysis/bootstrap.py).

Simulated checkpoints with known variance components: the KL of ordered seed pair (a, b) at
context t of window u is

    KL = mu * exp(s_a + s_b + p_ab + c_u + e_abt)

with independent normal effects of each seed (s, sd `seed_sd`), of each unordered pair beyond its
seeds (p, `pair_sd`), of each window (c, `window_sd`) and of each (pair, context) (e, `token_sd`):
log-normal, so skewed like real KLs. The true E[conv], over infinitely many seeds and contexts,
is -mu exp((2 seed_sd^2 + pair_sd^2 + window_sd^2 + token_sd^2) / 2). Differences are simulated
as two checkpoints on the same windows whose mu differ, with independent seeds (two sizes).

    python -m benchmarks.bootstrap_coverage [--simulations 1000] [--n-boot 1000]

prints, per design, the share of the 95 % intervals that cover the truth (nominal 95 %) and their
mean width; docs/architecture.md quotes a run.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from analysis.bootstrap import CheckpointKL, conv_difference, conv_interval


@dataclass(frozen=True)
class Design:
    n_seeds: int = 10
    n_windows: int = 40
    window_tokens: int = 32
    mu: float = 0.2
    seed_sd: float = 0.15
    pair_sd: float = 0.1
    window_sd: float = 0.3
    token_sd: float = 1.0

    @property
    def true_conv(self) -> float:
        variance = 2 * self.seed_sd**2 + self.pair_sd**2 + self.window_sd**2 + self.token_sd**2
        return -self.mu * float(np.exp(variance / 2))


def simulate(design: Design, rng: np.random.Generator, window_effects: np.ndarray | None = None) -> CheckpointKL:
    """One checkpoint drawn from `design`; `window_effects` shared with another checkpoint (the
    same evaluation text) when given."""
    n, units = design.n_seeds, design.n_windows
    seeds = rng.normal(0, design.seed_sd, n)
    pairs = np.triu(rng.normal(0, design.pair_sd, (n, n)), 1)
    pairs = pairs + pairs.T
    windows = rng.normal(0, design.window_sd, units) if window_effects is None else window_effects
    log_kl = (
        seeds[:, None, None, None]
        + seeds[None, :, None, None]
        + pairs[:, :, None, None]
        + windows[None, None, :, None]
        + rng.normal(0, design.token_sd, (n, n, units, design.window_tokens))
    )
    sums = (design.mu * np.exp(log_kl)).sum(axis=3)
    sums[np.arange(n), np.arange(n)] = 0.0
    return CheckpointKL(tuple(range(n)), sums, np.full(units, float(design.window_tokens)))


def interval_coverage(
    design: Design, simulations: int, n_boot: int, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """(share of intervals covering the true E[conv], their mean width)."""
    rng = np.random.default_rng(seed)
    covered, widths = 0, []
    for _ in range(simulations):
        interval = conv_interval(simulate(design, rng), rng, n_boot, level)
        covered += interval.low <= design.true_conv <= interval.high
        widths.append(interval.high - interval.low)
    return covered / simulations, float(np.mean(widths))


def difference_coverage(
    design: Design, mu_b: float, simulations: int, n_boot: int, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """For two sizes (independent seeds, the same windows) whose mu differ: (share of intervals
    covering the true difference, mean width, share of p-values below 1 - level)."""
    rng = np.random.default_rng(seed)
    design_b = Design(**{**design.__dict__, "mu": mu_b})
    truth = design_b.true_conv - design.true_conv
    covered, widths, rejected = 0, [], 0
    for _ in range(simulations):
        windows = rng.normal(0, design.window_sd, design.n_windows)
        a, b = simulate(design, rng, windows), simulate(design_b, rng, windows)
        found = conv_difference(a, b, False, rng, n_boot, level)
        covered += found.interval.low <= truth <= found.interval.high
        widths.append(found.interval.high - found.interval.low)
        rejected += found.p_value < 1 - level
    return covered / simulations, float(np.mean(widths)), rejected / simulations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=1000)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    print(f"95 % intervals, {args.simulations} simulations of {args.n_boot} replicates each")
    print(f"{'design':50} | coverage | mean width")
    for design in (
        Design(),
        Design(n_seeds=5),
        Design(n_seeds=20),
        Design(window_sd=0.0),
        Design(seed_sd=0.0, pair_sd=0.0),
    ):
        started = time.perf_counter()
        share, width = interval_coverage(design, args.simulations, args.n_boot)
        label = (
            f"{design.n_seeds} seeds, seed sd {design.seed_sd}, pair sd {design.pair_sd}, window sd {design.window_sd}"
        )
        print(f"{label:50} | {share:7.1%} | {width:.4f}   ({time.perf_counter() - started:.0f} s)")
    for mu_b in (0.2, 0.24):
        share, width, rejected = difference_coverage(Design(), mu_b, args.simulations, args.n_boot)
        label = f"difference of two sizes, mu 0.2 vs {mu_b}"
        print(f"{label:50} | {share:7.1%} | {width:.4f}   p < 0.05 in {rejected:.1%}")


if __name__ == "__main__":
    main()
