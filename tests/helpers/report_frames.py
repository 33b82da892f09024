"""Small hand-made frames in the shape of each figure's query, and the contract tables they come from."""

from __future__ import annotations

import numpy as np
import pandas as pd

from extract.config import REPO_ROOT
from reports.dbt_vars import regime_settings
from reports.plots import (
    regime_of,
)

STEPS = [0, 1, 2, 4, 8]


SIZES = (("s", 10), ("l", 100))


SEEDS = (1, 2)


SIMILARITY = {0: None, 1: 0.5, 2: 0.95, 4: 0.995, 8: 1.0}  # 1.0: identical fingerprints
# The fixed-gap measure, a gap of 4: steps 0, 4 and 8 (0 has nothing 4 steps before it).
GAP = 4
GAP_SIMILARITY = {0: None, 4: 0.998, 8: 0.9995}


def regimes_frame(sizes=SIZES, thresholds=None):
    """mart_fingerprint_similarity's rows: the fixed-gap measure at steps 0, 4, 8 and the log-spaced
    one at every step, classified by `thresholds` (the dbt vars' defaults when None)."""
    thresholds = thresholds or regime_settings()
    rows = []
    for size, n_params in sizes:
        for comparison, similarities in (("fixed_gap", GAP_SIMILARITY), ("log_spaced", SIMILARITY)):
            steps = sorted(similarities)
            for seed in SEEDS:
                for i, step in enumerate(steps):
                    rows.append(
                        {
                            "size": size,
                            "n_params": n_params,
                            "comparison": comparison,
                            "step": step,
                            "seed": seed,
                            "prev_step": steps[i - 1] if i else None,
                            "similarity_prev": similarities[step],
                        }
                    )
    data = pd.DataFrame(rows)
    return data.assign(
        regime=regime_of(data["similarity_prev"].astype(float), thresholds),
        tau_low=thresholds.tau_low,
        tau_high=thresholds.tau_high,
    )


def similarity_frame(sizes=SIZES):
    rows = []
    for size, n_params in sizes:
        for step in STEPS:
            k = STEPS.index(step)
            rows.append(
                {
                    "size": size,
                    "n_params": n_params,
                    "step": step,
                    "n_seeds_consecutive": 2 if k else 0,
                    "n_seeds": 2,
                    "n_pairs": 1,
                    "consecutive_mean": SIMILARITY[step],
                    "cross_seed_mean": 0.3 + 0.1 * k,
                    "cross_seed_min": 0.2 + 0.1 * k,
                    "cross_seed_cka": 0.5 + 0.05 * k,
                    "tau_low": 0.997,
                    "tau_high": 0.999,
                }
            )
    return pd.DataFrame(rows)


def map_frame(sizes=SIZES):
    rows = []
    for k, (size, n_params) in enumerate(sizes):
        for seed in SEEDS:
            for i, step in enumerate(STEPS):
                rows.append(
                    {
                        "size": size,
                        "n_params": n_params,
                        "step": step,
                        "seed": seed,
                        "x": i + k,
                        "y": 0.1 * seed * i,
                        "explained_x": 0.8,
                        "explained_y": 0.15,
                    }
                )
    return pd.DataFrame(rows)


def exponents_frame(sizes=SIZES, nan_sizes=()):
    rows = []
    for size, n_params in sizes:
        for seed in SEEDS:
            for i, step in enumerate(STEPS[:-1]):
                n_points = len(STEPS) - 1 - i
                fitted = n_points >= 3 and size not in nan_sizes
                value = 0.6 + 0.05 * seed if fitted else np.nan
                rows.append(
                    {
                        "size": size,
                        "n_params": n_params,
                        "seed": seed,
                        "start_step": step,
                        "n_points": n_points,
                        "kl_exponent": value,
                        "kl_exponent_low": value - 0.1,
                        "kl_exponent_high": value + 0.1,
                        "weight_exponent": 1.2 if fitted else np.nan,
                        "weight_n_points": n_points,
                    }
                )
    return pd.DataFrame(rows)


def vs_exact_frame(sizes=SIZES):
    rows = []
    for size, n_params in sizes:
        for k, step in enumerate(STEPS):
            exact = 10.0 ** (-k) * (2 if size == "l" else 1)
            rows.append(
                {
                    "size": size,
                    "n_params": n_params,
                    "step": step,
                    "seed_a": 1,
                    "seed_b": 2,
                    "kl_llv_bits_per_byte": 1.3 * exact,
                    "kl_exact_bits_per_byte": exact,
                    "ratio": 1.3,
                }
            )
    return pd.DataFrame(rows)


def loglik_kl_frame(sizes=SIZES):
    """mart_loglik_kl: every seed pair at a step and every step pair of a seed, KL growing with distance."""
    rows = []
    for size, _ in sizes:
        for step in STEPS:
            rows.append({"size": size, "pair_kind": "seeds", "step_a": step, "seed_a": 1, "step_b": step, "seed_b": 2})
        for seed in SEEDS:
            for i, step_a in enumerate(STEPS):
                for step_b in STEPS[i + 1 :]:
                    pair = {"step_a": step_a, "seed_a": seed, "step_b": step_b, "seed_b": seed}
                    rows.append({"size": size, "pair_kind": "steps", **pair})
    frame = pd.DataFrame(rows)
    distance = 1 + (frame["step_b"] - frame["step_a"]).abs() + (frame["seed_b"] - frame["seed_a"])
    return frame.assign(n_texts=64, kl_nats_per_text=0.01 * distance, mean_bytes_per_text=200.0).assign(
        kl_bits_per_byte=lambda f: f["kl_nats_per_text"] / (np.log(2) * f["mean_bytes_per_text"])
    )


def size_kl_frame():
    """mart_loglik_size_kl: sizes s and l of each seed at each step."""
    rows = [{"size_a": "s", "size_b": "l", "step": step, "seed": seed} for step in STEPS for seed in SEEDS]
    return pd.DataFrame(rows).assign(
        n_texts=64, kl_nats_per_text=0.5, mean_bytes_per_text=200.0, kl_bits_per_byte=0.004
    )


def reference_kl_frame():
    """The seed kishino_reference_kl as dbt loads it."""
    path = REPO_ROOT / "dbt_project" / "seeds" / "kishino_reference_kl.csv"
    return pd.read_csv(path)


def kl_scale_frame():
    """The kishino_kl_scale query's shape: each comparison with our medians and the paper's range."""
    rows = []
    for comparison, labels, low, high in (
        ("consecutive checkpoints", ("s", "l"), 0.02, 0.07),
        ("seeds", ("s", "l"), 0.1, 0.1),
        ("sizes", ("s vs l",), 0.3, 2.0),
    ):
        for label in labels:
            for step in STEPS[1:]:
                rows.append(
                    {
                        "comparison": comparison,
                        "label": label,
                        "step": step,
                        "kl_bits_per_byte": 0.01 * step,
                        "kl_min": 0.005 * step,
                        "kl_max": 0.02 * step,
                        "n_pairs": 2,
                        "paper_low": low,
                        "paper_high": high,
                        "paper_note": "Pythia on the Pile",
                    }
                )
    return pd.DataFrame(rows)


def trajectory_movement_frame(sizes=SIZES):
    rows = []
    for size, n_params in sizes:
        for previous, step in zip(STEPS, STEPS[1:]):
            rows.append(
                {
                    "size": size,
                    "n_params": n_params,
                    "step": step,
                    "from_step": previous,
                    "n_seeds": len(SEEDS),
                    "kl_mean": 0.1 / step,
                    "kl_seed_std": 0.01 / step,
                    "kl_p50": 0.08 / step,
                    "kl_p99": 0.5 / step,
                    "kl_per_step": 0.1 / step / (step - previous),
                    "seed_pair_kl": 0.2,
                }
            )
    return pd.DataFrame(rows)


def trajectory_exponents_frame(sizes=SIZES):
    rows = []
    for size, n_params in sizes:
        for seed in SEEDS:
            for anchor in (0, 2):
                exact = 0.8 + 0.05 * seed
                rows.append(
                    {
                        "size": size,
                        "n_params": n_params,
                        "seed": seed,
                        "anchor_step": anchor,
                        "n_points": 4 if anchor == 0 else 2,
                        "exact_exponent": exact if anchor == 0 else np.nan,
                        "exact_exponent_low": exact - 0.1 if anchor == 0 else np.nan,
                        "exact_exponent_high": exact + 0.1 if anchor == 0 else np.nan,
                        "llv_exponent": exact + 0.05,
                        "llv_exponent_low": exact - 0.1,
                        "llv_exponent_high": exact + 0.2,
                        "weight_exponent": 1.8,
                    }
                )
    return pd.DataFrame(rows)


def layer_convergence_frame(sizes=SIZES):
    rows = []
    for depth, (size, _) in enumerate(sizes, start=1):
        for step in STEPS:
            for layer in range(depth + 1):
                rows.append(
                    {
                        "size": size,
                        "step": step,
                        "layer": layer,
                        "n_layers": depth,
                        "relative_depth": layer / depth,
                        "expected_conv": -0.1 * (1 + layer) - 0.01 * step,
                        "pair_conv_std": 0.01,
                        "kl_to_final": 0.0 if layer == depth else 0.3 / (1 + layer),
                    }
                )
    return pd.DataFrame(rows)


LOGLIK_SAMPLES = {
    "ours_fingerprint_regimes": regimes_frame(),
    "ours_fingerprint_similarity": similarity_frame(),
    "kishino_model_map": map_frame(),
    "kishino_diffusion_exponents": exponents_frame(),
    "ours_loglik_vs_exact": vs_exact_frame(),
    "kishino_kl_scale": kl_scale_frame(),
    "ours_trajectory_movement": trajectory_movement_frame(),
    "ours_trajectory_exponents": trajectory_exponents_frame(),
    "ours_layer_convergence": layer_convergence_frame(),
}


CONTRACT_TABLES = {
    "mart_fingerprint_similarity": regimes_frame,
    "mart_fingerprint_cross_seed": lambda: (
        similarity_frame()
        .rename(
            columns={
                "cross_seed_mean": "mean_similarity",
                "cross_seed_min": "min_similarity",
                "cross_seed_cka": "mean_cka",
            }
        )
        .drop(columns=["consecutive_mean", "n_seeds_consecutive", "tau_low", "tau_high"])
    ),
    "loglik_model_map": map_frame,
    "diffusion_exponents": exponents_frame,
    "mart_loglik_vs_exact": vs_exact_frame,
    "mart_loglik_kl": loglik_kl_frame,
    "mart_loglik_size_kl": size_kl_frame,
    "kishino_reference_kl": reference_kl_frame,
    "mart_trajectory_movement": trajectory_movement_frame,
    "trajectory_exponents": trajectory_exponents_frame,
    "mart_layer_convergence": layer_convergence_frame,
}
