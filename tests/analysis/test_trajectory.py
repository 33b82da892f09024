"""The exact diffusion exponents: a known power law is recovered, with an interval that covers it."""

import numpy as np
import pandas as pd
import pytest

from analysis.trajectory import exact_exponent, exponents_frame


def _windows(alpha: float, deltas: np.ndarray, n_windows: int, rng, noise: float = 0.2):
    """Per window and later step, KL summed over 10 contexts: c * delta^alpha times window noise."""
    scale = np.exp(rng.normal(0, noise, size=(n_windows, 1)))  # a window is harder or easier throughout
    per_context = 0.01 * deltas[None, :] ** alpha * scale
    return per_context * 10, np.full((n_windows, len(deltas)), 10.0)


def test_a_power_law_is_recovered_with_an_interval_around_it():
    rng = np.random.default_rng(3)
    deltas = np.array([1.0, 2, 4, 8, 16, 32, 50])
    sums, counts = _windows(0.6, deltas, 40, rng)
    n_points, exponent, low, high = exact_exponent(deltas, sums, counts, n_boot=400, level=0.95, random_state=0)
    assert n_points == 7 and exponent == pytest.approx(0.6, abs=1e-9)  # the same law in every window
    # Window noise that changes with delta widens the interval, which still holds the truth.
    wobble = np.exp(rng.normal(0, 0.3, size=sums.shape))
    n_points, exponent, low, high = exact_exponent(deltas, sums * wobble, counts, 400, 0.95, 0)
    assert low < 0.6 < high and high - low < 0.2 and low < exponent < high


def test_too_few_later_checkpoints_give_no_exponent():
    deltas = np.array([4.0, 8.0])
    sums, counts = _windows(1.0, deltas, 5, np.random.default_rng(0))
    n_points, exponent, low, high = exact_exponent(deltas, sums, counts, 100, 0.95, 0)
    assert n_points == 2 and np.isnan(exponent) and np.isnan(low) and np.isnan(high)


def test_the_frame_fits_each_seed_and_anchor_from_its_window_sums():
    rng = np.random.default_rng(1)
    rows = []
    for seed, alpha in ((1, 0.5), (2, 1.0)):
        steps = np.array([1, 2, 4, 8, 16])
        sums, counts = _windows(alpha, steps - 0.0, 6, rng, noise=0.0)
        for window in range(6):
            for index, step in enumerate(steps):
                rows.append(("s", "m", seed, 0, int(step), window, sums[window, index], counts[window, index]))
    frame = pd.DataFrame(
        rows, columns=["suite", "size", "seed", "from_step", "step", "window_id", "kl_sum", "n_contexts"]
    )
    fitted = exponents_frame(frame, n_boot=50, level=0.9, random_state=0)
    assert list(fitted["seed"]) == [1, 2] and list(fitted["anchor_step"]) == [0, 0]
    np.testing.assert_allclose(fitted["exact_exponent"], [0.5, 1.0], atol=1e-9)
