"""Seed convergence layer by layer, through the logit lens.

Fehlauer et al. measure convergence at the output only. Here every seed's residual stream after
each configured layer (0: the embeddings' output; L: the last layer) is put through the model's
own final norm and output embedding (for a masked LM, its MLM transform and decoder, at the
masked position), which gives a next-token (or masked-token) distribution per layer: the logit
lens. Per layer and token the partition keeps

- `layer_kl`: KL(p_a || p_b) between every ordered pair of seeds, exact, from fp32 logits, as
  `pair_kl` is at the output (at the last layer the two are the same numbers);
- `layer_final_kl`: KL(p_final || p_layer), how far each seed's layer is from its own output.

Each seed's lens states [L, N, H] stay on the device until every seed has run, as the engine's
last hidden states do; the layers are a setting (`[layers] layers`) because that memory and the
extra eager forward pass grow with depth (benchmarks/ measures both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from extract.engine.skeleton import Head
from extract.lake.tables import PARTITION, LakeTable
from extract.measures.base import ExtractionError, Measure, NonFiniteOutputs, SeedModel, SuiteContext
from extract.measures.token_distributions import StatisticsKernels, pair_divergences

LAYER_KL_SCHEMA = pa.schema(
    [
        ("layer", pa.int32()),
        ("n_layers", pa.int32()),
        ("seed_a", pa.int32()),
        ("seed_b", pa.int32()),
        ("position", pa.int32()),
        ("kl", pa.float32()),
    ]
)
LAYER_FINAL_KL_SCHEMA = pa.schema(
    [
        ("layer", pa.int32()),
        ("n_layers", pa.int32()),
        ("seed", pa.int32()),
        ("position", pa.int32()),
        ("kl", pa.float32()),
    ]
)
LAYER_KL = LakeTable(
    "layer_kl",
    LAYER_KL_SCHEMA,
    PARTITION,
    "Per layer, token and ordered seed pair: exact KL(p_a || p_b) of the logit lens at that layer, fp32.",
)
LAYER_FINAL_KL = LakeTable(
    "layer_final_kl",
    LAYER_FINAL_KL_SCHEMA,
    PARTITION,
    "Per layer, token and seed: exact KL(p_final || p_layer) from the seed's output to its logit lens at that layer.",
)

# Tokens per call of the pair KL: a fixed shape, so its compiled form (the engine's, when
# `[extraction] compile` is on) is compiled once per seed count and vocabulary; 256 rows of five
# seeds' fp32 logits at a 2,048-token vocabulary is 10 MiB, about a CPU's last-level cache.
LENS_ROWS = 256


@dataclass
class LensStates:
    """What the partition keeps of one seed: its lens states and the output's, on the device."""

    layers: tuple[int, ...]
    n_layers: int
    states: torch.Tensor  # [L, N, H] forward dtype
    final: torch.Tensor  # [N, H] the engine's own states (the model's output)
    head: Head
    positions: np.ndarray
    kernels: StatisticsKernels  # the engine's statistics kernels, compiled or as they are


def token_rows(n_seeds: int, vocab: int, chunk_bytes: int) -> int:
    """Tokens per call: LENS_ROWS, or fewer where `chunk_bytes` says so (the pair KL keeps about
    three fp32 vocabulary-sized rows per seed and token; KL to the output, two float64 ones)."""
    return max(1, min(LENS_ROWS, chunk_bytes // (4 * n_seeds * vocab * 4)))


def layer_divergences(per_seed: dict[int, LensStates], chunk_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(cross-seed KL [L, S, S, N], KL to the own output [L, S, N]) for seeds in `per_seed`'s order.

    The cross-seed KLs go through `pair_divergences` with the engine's kernels, as `pair_kl` does
    (the last layer's are the same numbers), on chunks of one fixed shape: the last one is padded
    with zero logits, whose KLs are computed and dropped."""
    kept = list(per_seed.values())
    first = kept[0]
    n_layers, n = len(first.layers), first.states.shape[1]
    n_seeds, vocab = len(kept), first.head.vocab
    cross = np.zeros((n_layers, n_seeds, n_seeds, n), dtype=np.float32)
    to_final = np.zeros((n_layers, n_seeds, n), dtype=np.float32)
    rows = token_rows(n_seeds, vocab, chunk_bytes)
    kernels, device = first.kernels, first.states.device
    # One shape for every call (the last chunk's padding rows are zeros, computed and dropped).
    final, lens = (torch.zeros(n_seeds, rows, vocab, device=device) for _ in range(2))
    with torch.inference_mode():
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            valid = stop - start
            for seed_index, seed in enumerate(kept):
                final[seed_index, :valid] = seed.head.logits(seed.final[start:stop])
            final[:, valid:] = 0.0
            final_log_p = torch.log_softmax(final.double(), dim=-1)
            final_p = final_log_p.exp()
            for index in range(n_layers):
                for seed_index, seed in enumerate(kept):
                    lens[seed_index, :valid] = seed.head.logits(seed.states[index, start:stop])
                lens[:, valid:] = 0.0
                pairs = pair_divergences(lens, torch.logsumexp(lens, -1), kernels.reference_terms, valid)
                cross[index, :, :, start:stop] = pairs.kl[:, :, :valid].cpu().numpy()
                # KL(p_final || p_lens) per seed, taken directly (token_distributions.kl_from).
                to_final[index, :, start:stop] = (
                    kernels.kl_from(final_p, final_log_p, lens)[:, :valid].float().cpu().numpy()
                )
    return cross, to_final


def layer_tables(seeds: list[int], kept: LensStates, cross: np.ndarray, to_final: np.ndarray) -> dict[str, pa.Table]:
    """The partition's layer_kl and layer_final_kl, ordered by (layer, seeds, position)."""
    positions, layers = kept.positions.astype(np.int32), np.array(kept.layers, dtype=np.int32)
    n, n_seeds, n_layers = len(positions), len(seeds), len(layers)
    seed_ids = np.array(seeds, dtype=np.int32)
    a, b = np.nonzero(~np.eye(n_seeds, dtype=bool))
    pairs = len(a)
    cross_table = pa.table(
        {
            "layer": np.repeat(layers, pairs * n),
            "n_layers": np.full(n_layers * pairs * n, kept.n_layers, dtype=np.int32),
            "seed_a": np.tile(np.repeat(seed_ids[a], n), n_layers),
            "seed_b": np.tile(np.repeat(seed_ids[b], n), n_layers),
            "position": np.tile(positions, n_layers * pairs),
            "kl": cross[:, a, b].reshape(-1),
        },
        schema=LAYER_KL_SCHEMA,
    )
    final_table = pa.table(
        {
            "layer": np.repeat(layers, n_seeds * n),
            "n_layers": np.full(n_layers * n_seeds * n, kept.n_layers, dtype=np.int32),
            "seed": np.tile(np.repeat(seed_ids, n), n_layers),
            "position": np.tile(positions, n_layers * n_seeds),
            "kl": to_final.reshape(-1),
        },
        schema=LAYER_FINAL_KL_SCHEMA,
    )
    return {LAYER_KL.name: cross_table, LAYER_FINAL_KL.name: final_table}


class LayerLens(Measure):
    """Each seed's logit lens at the configured layers; the cross-seed and to-output KLs per layer."""

    tables = (LAYER_KL, LAYER_FINAL_KL)
    phase = "layer_lens"

    def __init__(self, layers: tuple[int, ...], chunk_bytes: int):
        self.layers = layers
        self.chunk_bytes = chunk_bytes

    @classmethod
    def for_suite(cls, context: SuiteContext) -> LayerLens:
        return cls(context.settings.layers.layers, context.settings.extraction.chunk_bytes)

    def layers_of(self, depth: int, source: str) -> tuple[int, ...]:
        if not self.layers:
            return tuple(range(depth + 1))
        if max(self.layers) > depth:
            raise ExtractionError(
                f"{source} has {depth} layers, but [layers] layers asks for layer {max(self.layers)}: "
                f"choose layers in 0 .. {depth}"
            )
        return tuple(sorted(self.layers))

    def measure_seed(self, model: SeedModel) -> LensStates:
        depth = model.skeleton.n_layers
        layers = self.layers_of(depth, model.checkpoint.source)
        with torch.inference_mode():
            states = model.eval_states(layers)
            if not bool(torch.isfinite(states).all()):
                raise NonFiniteOutputs(f"{model.checkpoint.source}: the logit lens gives NaN or infinite states")
        return LensStates(layers, depth, states, model.eval_hidden, model.head, model.positions, model.kernels)

    def partition_tables(self, per_seed: dict[int, LensStates]) -> dict[str, pa.Table]:
        cross, to_final = layer_divergences(per_seed, self.chunk_bytes)
        return layer_tables(list(per_seed), next(iter(per_seed.values())), cross, to_final)

    def identity(self) -> dict:
        return {"lens_layers": list(self.layers) or "all"}
