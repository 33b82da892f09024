"""Weight statistics of a checkpoint: norms, distances to earlier checkpoints, and a sketch.

Per seed and parameter group: the L2 norm, and the squared L2 distance to the same seed's
previous checkpoint and to its step-0 checkpoint (Kishino et al. 2026 set the diffusion of the weights
beside that of the log-likelihood vectors). The extraction keeps the previous and the step-0
weights of each seed in CPU memory while it works through a size's steps in order, so in a range
run each checkpoint is read once; a partition run alone reads its references from the suite.

The distance between any two checkpoints of a seed (the weight diffusion exponent needs every
pair) comes from a count sketch of the whole weight vector (Charikar et al. 2002): each weight is
added, with a hashed sign, into one of `dim` hashed buckets. The hashes depend only on the
weight's place in the name-sorted parameter list, so they are the same for every checkpoint of
an architecture, and |sketch(a) - sketch(b)|^2 is an unbiased estimate of |a - b|^2 with
relative standard deviation at most sqrt(2 / dim) (2.2 % at dim 4,096). The hashes are integer
arithmetic on tensors, so CPU and GPU give the same buckets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import torch

from extract.engine.skeleton import IGNORED_KEYS
from extract.lake.tables import PARTITION, LakeTable
from extract.measures.base import ExtractionError, Measure, SeedModel, SuiteContext
from extract.sources.suites import CheckpointMissing, Suite

WEIGHT_STATS_SCHEMA = pa.schema(
    [
        ("seed", pa.int32()),
        ("param_group", pa.string()),
        ("n_params", pa.int64()),
        ("l2_norm", pa.float64()),
        ("prev_step", pa.int64()),
        ("sq_dist_prev", pa.float64()),
        ("sq_dist_init", pa.float64()),
    ]
)
WEIGHT_SKETCHES_SCHEMA = pa.schema([("seed", pa.int32()), ("sketch", pa.list_(pa.float32()))])
PARAM_GROUPS = ("embedding", "attention", "mlp", "norm", "head", "other")
ALL = "all"

# The sketch's hashes: cubic polynomials over the prime field of p = 2^31 - 1 with fixed
# coefficients, evaluated by Horner's rule with a reduction after each step, so every product
# stays below 2^62 in int64. Cubic polynomials are a 4-wise independent family, what a count
# sketch's variance bound asks of its signs. A linear hash ((a i + b) mod p), tried first, is
# only pairwise independent and its buckets and signs repeat along the strides of a weight
# matrix: on the mini suite its estimates were off by 11-13 % (sd) against 2 % for this one,
# the same as fully random buckets. Changing a coefficient changes every sketch.
_P = (1 << 31) - 1
_BUCKET_COEFFICIENTS = (1_103_515_245, 12_345, 2_718_281, 31_415_926)
_SIGN_COEFFICIENTS = (2_147_483_629, 1_013_904_223, 1_664_525, 22_695_477)
_CHUNK = 1 << 22  # weights hashed at a time, to bound the index tensors' memory


def _polynomial_hash(index: torch.Tensor, coefficients: tuple[int, ...]) -> torch.Tensor:
    """sum_k c_k index^(3-k) mod p, for int64 indices already reduced mod p."""
    value = torch.full_like(index, coefficients[0])
    for coefficient in coefficients[1:]:
        value = (value * index + coefficient) % _P
    return value


class WeightMismatch(ValueError):
    """Two checkpoints of one seed do not have the same parameters; the message names one."""


def parameter_group(name: str) -> str:
    """The group a parameter's name puts it in (GPT-NeoX, GPT-2, Llama and BERT names)."""
    lowered = name.lower()
    if lowered.startswith(("embed_out", "lm_head")) or ".lm_head" in lowered:
        return "head"
    if "embed" in lowered or ".wte" in lowered or ".wpe" in lowered or lowered.startswith(("wte", "wpe")):
        return "embedding"
    if "norm" in lowered or ".ln_" in lowered or lowered.startswith("ln_"):
        return "norm"
    if "attn" in lowered or "attention" in lowered:
        return "attention"
    if "mlp" in lowered or "feed_forward" in lowered or "ffn" in lowered or "intermediate" in lowered:
        return "mlp"
    return "other"


def parameters(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's floating-point parameters by name, sorted, without rebuilt buffers."""
    return {
        name: state[name]
        for name in sorted(state)
        if state[name].is_floating_point() and not name.endswith(IGNORED_KEYS)
    }


def _squared_distance(a: torch.Tensor, b: torch.Tensor, name: str) -> float:
    if a.shape != b.shape:
        raise WeightMismatch(f"parameter {name} has shape {tuple(a.shape)} here and {tuple(b.shape)} there")
    # fp32 differences are exact for fp16/bf16 weights; the sum accumulates in fp64.
    return float(torch.sum(torch.square(a.float() - b.float()), dtype=torch.float64))


def weight_statistics(
    state: Mapping[str, torch.Tensor],
    previous: Mapping[str, torch.Tensor] | None,
    initial: Mapping[str, torch.Tensor] | None,
) -> dict[str, dict[str, float | int | None]]:
    """Per group (and 'all'): n_params, l2_norm, sq_dist_prev, sq_dist_init (None without a reference)."""
    params = parameters(state)
    references = {"sq_dist_prev": previous, "sq_dist_init": initial}
    for label, reference in references.items():
        if reference is not None and set(parameters(reference)) != set(params):
            extra = sorted(set(params) ^ set(parameters(reference)))
            raise WeightMismatch(f"the {label.removeprefix('sq_dist_')} checkpoint's parameters differ: {extra[:3]}")
    sums: dict[str, dict[str, float]] = {}
    for name, tensor in params.items():
        group = sums.setdefault(
            parameter_group(name), {"n_params": 0, "sq_norm": 0.0, "sq_dist_prev": 0.0, "sq_dist_init": 0.0}
        )
        group["n_params"] += tensor.numel()
        group["sq_norm"] += float(torch.sum(torch.square(tensor.float()), dtype=torch.float64))
        for label, reference in references.items():
            if reference is not None:
                group[label] += _squared_distance(tensor, reference[name], name)
    total = {
        key: sum(group[key] for group in sums.values())
        for key in ("n_params", "sq_norm", "sq_dist_prev", "sq_dist_init")
    }
    out = {}
    for group, values in [*sorted(sums.items()), (ALL, total)]:
        out[group] = {
            "n_params": int(values["n_params"]),
            "l2_norm": math.sqrt(values["sq_norm"]),
            **{label: (values[label] if ref is not None else None) for label, ref in references.items()},
        }
    return out


def count_sketch(state: Mapping[str, torch.Tensor], dim: int) -> np.ndarray:
    """The count sketch [dim] (fp64 sums, returned as float32) of the name-sorted flattened weights."""
    sketch = torch.zeros(dim, dtype=torch.float64)
    offset = 0
    for tensor in parameters(state).values():
        flat = tensor.reshape(-1)
        for start in range(0, flat.numel(), _CHUNK):
            values = flat[start : start + _CHUNK]
            bucket, sign = _hashes(offset + start, values.numel(), dim)
            sketch.index_add_(0, bucket, sign * values.double())
        offset += flat.numel()
    return sketch.numpy().astype(np.float32)


# The hashes of the weights at [start, start + count) depend on nothing else, so they are the
# same for every checkpoint of an architecture: computing them (int64 polynomials, slow on a CPU)
# cost more than the rest of a small model's partition. They are kept for the first weights up
# to this many bytes (8 per weight: 134M weights, all of Pythia-70m's 70M, half of 160m's), the
# rest computed each time.
_HASH_CACHE_BYTES = 1 << 30


class _HashCache:
    def __init__(self, budget: int):
        self.budget, self.used = budget, 0
        self.entries: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, start: int, count: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(bucket [count] int32, sign [count] float32 +-1) of the weights at [start, start + count)."""
        key = (start, count, dim)
        if key in self.entries:
            return self.entries[key]
        index = torch.arange(start, start + count, dtype=torch.int64) % _P
        bucket = (_polynomial_hash(index, _BUCKET_COEFFICIENTS) % dim).int()
        sign = 1.0 - 2.0 * (_polynomial_hash(index, _SIGN_COEFFICIENTS) % 2).float()
        if self.used + 8 * count <= self.budget:
            self.entries[key] = bucket, sign
            self.used += 8 * count
        return bucket, sign


_hashes = _HashCache(_HASH_CACHE_BYTES)


class WeightHistory:
    """The previous and the step-0 weights of each seed of one size, kept while its steps run in order.

    `reference(size, seed, step)` gives the weights of that checkpoint, from memory when it is
    the last one seen or step 0, else read with `read(size, seed, step)`.
    """

    def __init__(self, read):
        self._read = read
        self._size: str | None = None
        self._last: dict[int, tuple[int, dict[str, torch.Tensor]]] = {}
        self._initial: dict[int, dict[str, torch.Tensor]] = {}

    def reference(self, size: str, seed: int, step: int) -> dict[str, torch.Tensor]:
        self._switch(size)
        last = self._last.get(seed)
        if last is not None and last[0] == step:
            return last[1]
        if step == 0 and seed in self._initial:
            return self._initial[seed]
        state = self._read(size, seed, step)
        if step == 0:
            self._initial[seed] = state
        return state

    def remember(self, size: str, seed: int, step: int, state: dict[str, torch.Tensor]) -> None:
        self._switch(size)
        self._last[seed] = (step, state)
        if step == 0:
            self._initial[seed] = state

    def _switch(self, size: str) -> None:
        # One size at a time: another size's weights are dropped rather than held for later.
        if size != self._size:
            self._size, self._last, self._initial = size, {}, {}


def weight_stats_table(rows: dict[int, tuple[int | None, dict[str, dict]]]) -> pa.Table:
    """rows[seed] = (prev_step, weight_statistics(...)); ordered by seed, then group."""
    columns: dict[str, list] = {name: [] for name in WEIGHT_STATS_SCHEMA.names}
    for seed in sorted(rows):
        prev_step, groups = rows[seed]
        for group, values in groups.items():
            columns["seed"].append(seed)
            columns["param_group"].append(group)
            columns["prev_step"].append(prev_step)
            for key in ("n_params", "l2_norm", "sq_dist_prev", "sq_dist_init"):
                columns[key].append(values[key])
    return pa.table(columns, schema=WEIGHT_STATS_SCHEMA)


def weight_sketches_table(sketches: dict[int, np.ndarray]) -> pa.Table:
    seeds = sorted(sketches)
    return pa.table(
        {"seed": np.array(seeds, dtype=np.int32), "sketch": [sketches[s].tolist() for s in seeds]},
        schema=WEIGHT_SKETCHES_SCHEMA,
    )


WEIGHT_STATS = LakeTable(
    "weight_stats",
    WEIGHT_STATS_SCHEMA,
    PARTITION,
    "Per seed and parameter group: L2 norm; squared distance to the previous and the step-0 weights.",
)
WEIGHT_SKETCHES = LakeTable(
    "weight_sketches",
    WEIGHT_SKETCHES_SCHEMA,
    PARTITION,
    "Per seed: a count sketch of the weights, for distances between any two checkpoints.",
)


class WeightStatistics(Measure):
    """Norms, distances to the previous and step-0 checkpoints, and the count sketch of each seed."""

    tables = (WEIGHT_STATS, WEIGHT_SKETCHES)
    phase = "weights"
    needs_model = False

    def __init__(self, suite: Suite, sketch_dim: int):
        self.suite = suite
        self.sketch_dim = sketch_dim
        self._history = WeightHistory(
            lambda size, seed, step: suite.read_weights(suite.checkpoint(size, seed, step)).state_dict
        )

    @classmethod
    def for_suite(cls, context: SuiteContext) -> WeightStatistics:
        return cls(context.suite, context.settings.weights.sketch_dim)

    def measure_seed(self, model: SeedModel) -> tuple[tuple[int | None, dict], np.ndarray]:
        """(prev_step, per-group statistics) and the count sketch of one seed's checkpoint."""
        size, seed, step = model.checkpoint.size, model.checkpoint.seed, model.checkpoint.step
        # The seed's own checkpoints: a step it is missing at is not its previous one.
        steps = [s for s in self.suite.seed_steps(size, seed) if s <= step]
        state = model.weights.state_dict
        try:
            prev_step, previous = self._previous(size, seed, [s for s in steps if s < step])
            initial = None
            if step == 0:
                initial = state
            elif 0 in steps:
                initial = self._history.reference(size, seed, 0)
            statistics = weight_statistics(state, previous, initial)
        except WeightMismatch as error:
            raise ExtractionError(f"{model.weights.source}: {error}") from error
        self._history.remember(size, seed, step, state)
        return (prev_step, statistics), count_sketch(state, self.sketch_dim)

    def _previous(self, size: str, seed: int, earlier: list[int]) -> tuple[int | None, dict | None]:
        """The seed's latest checkpoint before this one, (step, weights); a checkpoint found
        missing only now (the Hub has no such revision) is passed over for the one before it."""
        for prev_step in reversed(earlier):
            try:
                return prev_step, self._history.reference(size, seed, prev_step)
            except CheckpointMissing:
                continue
        return None, None

    def partition_tables(self, per_seed: dict) -> dict[str, pa.Table]:
        return {
            WEIGHT_STATS.name: weight_stats_table({seed: rows for seed, (rows, _) in per_seed.items()}),
            WEIGHT_SKETCHES.name: weight_sketches_table({seed: sketch for seed, (_, sketch) in per_seed.items()}),
        }

    def identity(self) -> dict:
        return {"weight_sketch_dim": self.sketch_dim}
