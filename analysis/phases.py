"""Where Fehlauer et al.'s four phases of convergence begin and end, per model size.

The paper (sec. 4, fig. 1) describes four phases of E[conv] = -E[KL between seeds] over
training: a uniform phase (E[conv] barely moves), a sharp-convergence phase (the seeds' KL
falls), a sharp-divergence phase (it rises again) and a slow-reconvergence phase (it falls
slowly); it reads their boundaries off the plot. Here they are located by a stated rule, on the
curve of KL = -E[conv] over checkpoint steps, as four turning points:

    uniform_end          the last step of the uniform phase: the step before the first at which
                         the KL has moved from its step-0 value by more than the tolerance;
    convergence_peak     where E[conv] is highest, i.e. the seeds' KL lowest, between the sharp-
                         convergence and the sharp-divergence phases: the KL's first minimum;
    divergence_bottom    where E[conv] is lowest after that, i.e. the KL highest, where the
                         sharp divergence stops: the KL's first maximum after the minimum;
    reconvergence_start  the last step before the KL has fallen from that maximum by more than
                         the tolerance: the end of the top. On a sharp peak it is the maximum's
                         own step; where the seeds linger near their most divergent before
                         reconverging, it is where the lingering ends.

A minimum or maximum counts only once the curve has turned away from it by more than the
tolerance (the zigzag rule: every change smaller than that is noise), so a turning point still
ahead of the last extracted step, or never reached, is not located (NULL, status `not_reached`)
rather than guessed at the last step, and the reason says how far the curve went. A curve whose
KL rises straight out of the uniform phase has no sharp-convergence phase: its convergence peak
is `absent`, and its divergence bottom is the end of that first rise (MultiBERT's checkpoints,
0 then 20k, skip the sharp convergence, as the paper notes). Later turns, after the first
maximum, are not phases of the paper and are not reported.

Every step reported is a checkpoint step of the curve: nothing is interpolated between the
log-spaced steps. Nor is the curve smoothed first: the mini suite has one checkpoint per octave
of steps, and averaging neighbours would move a turning point by an octave; the tolerance does
the smoothing's work instead.

The interval of each turning point is the spread of the seed pairs: the same rule applied to each
pair of seeds' own curve (the mean of the pair's KL in both directions; the two directions are the
same two runs, so they count once), the pairs' located steps trimmed of the lowest and highest
tenth (`TRIM`: floor(n / 10) at each end; with fewer than ten pairs, min to max). It says how
much the turning point moves from one pair of runs to another, as the band of E[conv] says how
much the value does; it is not a confidence interval of the mean curve's step, which a bootstrap
over pairs would claim to be but cannot deliver, since pairs that share a seed are not
independent draws.

The first part is pure (numpy); the second builds the warehouse table `convergence_phases` from an
open DuckDB connection, so the Dagster asset is a thin wrapper and the table testable without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

TURNING_POINTS = ("uniform_end", "convergence_peak", "divergence_bottom", "reconvergence_start")
# The smallest change of the seeds' KL that counts: 10 %, as a factor of 1.1 either way. It must
# stay below the moves that make the phases: the mini suite's sharp convergence takes only 16 to
# 27 % off the KL (size m 0.204 to 0.172 nats, l 0.205 to 0.163, s 0.205 to 0.150), and at 20 % size
# m's is missed. On the demo warehouse every turning point but the uniform phase's end is the same
# from 5 % to 15 %; the uniform phase ends where a slow drift crosses the tolerance, so that one
# moves by a checkpoint with it (step 4 at 3 %, 8 at 5 to 15 % for size l).
TOLERANCE = 0.1
# KLs below this are taken as this before their logarithm: identical seeds give exactly 0, and fp32
# KLs are not meaningful much below it (docs/architecture.md, the pair KL's precision).
KL_FLOOR = 1e-6
# The share of the seed pairs' located steps left out at each end of the interval.
TRIM = 0.1

LOCATED, NOT_REACHED, ABSENT = "located", "not_reached", "absent"


@dataclass(frozen=True)
class TurningPoint:
    """One turning point of one curve: its checkpoint step when located, else why not."""

    name: str
    step: int | None
    status: str  # located, not_reached (ahead of the last step, or never reached) or absent
    reason: str | None = None  # None when located


def _factor(tolerance: float) -> str:
    return f"a factor {1 + tolerance:g}"


def locate_turning_points(steps, expected_conv, tolerance: float = TOLERANCE) -> dict[str, TurningPoint]:
    """The four turning points of one E[conv] curve (module docstring: the rule), by name.

    `steps` are checkpoint steps, `expected_conv` E[conv] = -mean KL at each (nats, <= 0), in
    any order; a NaN value leaves its step out. Two values of one step are an error.
    """
    steps = np.asarray(steps, dtype=np.int64)
    conv = np.asarray(expected_conv, dtype=float)
    if steps.shape != conv.shape:
        raise ValueError(f"{steps.size} steps but {conv.size} values")
    keep = ~np.isnan(conv)
    steps, conv = steps[keep], conv[keep]
    order = np.argsort(steps, kind="stable")
    steps, conv = steps[order], conv[order]
    if np.any(np.diff(steps) == 0):
        raise ValueError(f"a step appears twice: {sorted(set(steps[:-1][np.diff(steps) == 0].tolist()))}")
    # The rule reads changes by a factor, so in log KL a turn is a move of more than delta.
    y = np.log(np.maximum(-conv, KL_FLOOR))
    delta = math.log1p(tolerance)
    factor = _factor(tolerance)

    def point(name: str, index: int | None = None, status: str = LOCATED, reason: str | None = None) -> TurningPoint:
        return TurningPoint(name, int(steps[index]) if index is not None else None, status, reason)

    def missing(status: str, reason: str, names=TURNING_POINTS) -> dict[str, TurningPoint]:
        return {name: point(name, status=status, reason=reason) for name in names}

    if steps.size < 2:
        return missing(NOT_REACHED, f"{steps.size} checkpoint(s): no curve yet")
    last = int(steps[-1])
    found: dict[str, TurningPoint] = {}

    # The uniform phase: every step within the tolerance of the first.
    departed = np.flatnonzero(np.abs(y - y[0]) > delta)
    if departed.size == 0:
        return missing(NOT_REACHED, f"the KL stays within {factor} of its step-{steps[0]} value through step {last}")
    start = int(departed[0])
    if steps[0] != 0:
        found["uniform_end"] = point(
            "uniform_end", status=ABSENT, reason=f"the curve starts at step {steps[0]}, not 0: no uniform phase seen"
        )
    else:
        found["uniform_end"] = point("uniform_end", start - 1)

    # Zigzag from the departure: follow the running extreme of the current move and confirm it as
    # a turning point when the KL has come back from it by more than the tolerance.
    first_falls = bool(y[start] < y[0])
    falling, extreme, turns = first_falls, start, []  # turns: (extreme's index, confirming index)
    for i in range(start + 1, y.size):
        if (y[i] < y[extreme]) if falling else (y[i] > y[extreme]):
            extreme = i
        elif abs(y[i] - y[extreme]) > delta:
            turns.append((extreme, i))
            falling, extreme = not falling, i
            if len(turns) == 2:
                break

    if not first_falls:
        # No sharp convergence: the first move out of the uniform phase is already the divergence.
        found["convergence_peak"] = point(
            "convergence_peak",
            status=ABSENT,
            reason=f"the KL rises out of the uniform phase (step {steps[start]}): no sharp-convergence phase",
        )
    elif not turns:
        found["convergence_peak"] = point(
            "convergence_peak",
            status=NOT_REACHED,
            reason=f"by step {last} the KL has not risen by more than {factor} from its lowest so far "
            f"(step {steps[extreme]})",
        )
        found.update(missing(NOT_REACHED, f"the convergence peak is not located by step {last}", TURNING_POINTS[2:]))
        return found
    else:
        found["convergence_peak"] = point("convergence_peak", turns.pop(0)[0])

    if not turns:
        found.update(
            missing(
                NOT_REACHED,
                f"by step {last} the KL has not fallen by more than {factor} from its highest so far "
                f"(step {steps[extreme]})",
                TURNING_POINTS[2:],
            )
        )
        return found
    maximum, confirmed = turns[0]
    found["divergence_bottom"] = point("divergence_bottom", maximum)
    # The last step still within the tolerance of the maximum: the end of the top.
    found["reconvergence_start"] = point("reconvergence_start", confirmed - 1)
    return found


def pair_interval(located_steps, trim: float = TRIM) -> tuple[int | None, int | None]:
    """The located steps of the seed pairs, less floor(trim * n) at each end: (low, high).

    Both are steps some pair located (no interpolation); (None, None) when no pair located it.
    """
    values = np.sort(np.asarray([step for step in located_steps if step is not None], dtype=np.int64))
    if values.size == 0:
        return None, None
    cut = int(math.floor(trim * values.size))
    return int(values[cut]), int(values[values.size - 1 - cut])


# --------------------------------------------------------------------------------------------
# The warehouse table
# --------------------------------------------------------------------------------------------

# (column, DuckDB type): written with these casts, so an empty table has them too.
COLUMNS: list[tuple[str, str]] = [
    ("suite", "varchar"),
    ("size", "varchar"),
    ("n_params", "bigint"),
    ("turning_point", "varchar"),
    ("turning_order", "integer"),
    ("step", "bigint"),
    ("expected_conv", "double"),
    ("status", "varchar"),
    ("reason", "varchar"),
    ("step_low", "bigint"),
    ("step_high", "bigint"),
    ("n_seed_pairs", "integer"),
    ("n_pairs_located", "integer"),
    ("n_steps", "integer"),
    ("last_step", "bigint"),
]
TABLE = "convergence_phases"
# The relations it is computed from (dbt models: the asset's deps).
INPUTS = ("mart_expected_convergence", "int_pair_convergence")

CURVES_QUERY = "select suite, size, n_params, step, expected_conv from mart_expected_convergence"
# Each unordered pair of seeds once: the mean of its two directions' mean KL at each step.
PAIRS_QUERY = """
    select suite, size, step, least(seed_a, seed_b) as seed_a, greatest(seed_a, seed_b) as seed_b,
           -avg(mean_kl) as pair_conv
    from int_pair_convergence
    group by all
"""


def phases_frame(curves: pd.DataFrame, pairs: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """convergence_phases: four rows per (suite, size), one per turning point.

    `curves`: suite, size, n_params, step, expected_conv (mart_expected_convergence);
    `pairs`: suite, size, step, seed_a, seed_b, pair_conv, one curve per unordered seed pair.
    """
    pair_groups = dict(tuple(pairs.groupby(["suite", "size"], sort=False))) if len(pairs) else {}
    rows = []
    for (suite, size), curve in curves.groupby(["suite", "size"], sort=True):
        curve = curve.sort_values("step")
        mean_points = locate_turning_points(curve["step"], curve["expected_conv"], tolerance)
        conv_at = dict(zip(curve["step"].astype("int64"), curve["expected_conv"]))
        by_pair = [
            locate_turning_points(pair["step"], pair["pair_conv"], tolerance)
            for _, pair in pair_groups.get((suite, size), pairs.iloc[0:0]).groupby(["seed_a", "seed_b"], sort=True)
        ]
        for order, name in enumerate(TURNING_POINTS, start=1):
            located = [points[name].step for points in by_pair if points[name].status == LOCATED]
            low, high = pair_interval(located)
            found = mean_points[name]
            rows.append(
                {
                    "suite": suite,
                    "size": size,
                    "n_params": int(curve["n_params"].max()),
                    "turning_point": name,
                    "turning_order": order,
                    "step": found.step,
                    "expected_conv": conv_at[found.step] if found.step is not None else None,
                    "status": found.status,
                    "reason": found.reason,
                    "step_low": low,
                    "step_high": high,
                    "n_seed_pairs": len(by_pair),
                    "n_pairs_located": len(located),
                    "n_steps": int(curve["expected_conv"].notna().sum()),
                    "last_step": int(curve["step"].max()),
                }
            )
    frame = pd.DataFrame(rows, columns=[name for name, _ in COLUMNS])
    return frame.sort_values(["suite", "n_params", "size", "turning_order"], ignore_index=True)


def compute_table(connection, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """convergence_phases from the warehouse's marts (`INPUTS`) over a DuckDB connection."""
    return phases_frame(connection.execute(CURVES_QUERY).df(), connection.execute(PAIRS_QUERY).df(), tolerance)


def write_table(connection, frame: pd.DataFrame) -> None:
    """`create or replace table convergence_phases`, cast to COLUMNS' types."""
    frame = frame.reindex(columns=[name for name, _ in COLUMNS])
    casts = ", ".join(f'cast("{name}" as {kind}) as "{name}"' for name, kind in COLUMNS)
    connection.register("_phases_frame", frame)
    try:
        connection.execute(f"create or replace table {TABLE} as select {casts} from _phases_frame")
    finally:
        connection.unregister("_phases_frame")
