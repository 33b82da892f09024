"""Per-token statistics of next-token distributions and the exact pair KL, computed where the logits are.

The engine's second phase (extract/engine/extractor.py) takes these from every seed's fp32 logits at
once, chunk by chunk, and writes them as the partition's `token_stats` and `pair_kl`.

Everything here takes fp32 logits or log-probabilities on the model's device and returns small tensors:
the full distributions never leave the device, and no KL is ever computed from a compressed
(top-k or fp16) copy, which is what made the published numbers wrong at small KL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from extract.lake.tables import PARTITION, LakeTable


@dataclass
class TokenStatistics:
    """One row per predicted token (all tensors share the leading dimension N)."""

    surprisal: torch.Tensor  # -log p(s_t | s_<t), nats
    entropy: torch.Tensor  # H(p), nats
    kl_uniform: torch.Tensor  # KL(p || uniform over the vocabulary), nats
    kl_unigram: torch.Tensor  # KL(p || unigram distribution of the reference corpus), nats
    topk_ids: torch.Tensor  # [N, k], most probable first
    topk_logprobs: torch.Tensor  # [N, k]
    tail_mass: torch.Tensor  # probability outside the top k


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """fp32 log-softmax, whatever precision the model ran in."""
    return torch.log_softmax(logits.float(), dim=-1)


def token_statistics(
    logp: torch.Tensor, targets: torch.Tensor, unigram_logp: torch.Tensor, top_k: int
) -> TokenStatistics:
    """Statistics of N distributions `logp` [N, V] against their target tokens [N]."""
    vocab = logp.shape[-1]
    if not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be in [1, {vocab}] (the vocabulary size), got {top_k}")
    p = logp.exp()
    negative_entropy = (p * logp).sum(-1)
    top = logp.topk(top_k, dim=-1)
    # The tail is summed directly rather than taken as 1 - sum(top k), which in fp32 loses
    # every digit below 1e-7 and can go negative.
    tail_mass = p.scatter(-1, top.indices, 0.0).sum(-1)
    return TokenStatistics(
        surprisal=-logp.gather(-1, targets[:, None]).squeeze(-1),
        entropy=-negative_entropy,
        kl_uniform=negative_entropy + math.log(vocab),
        kl_unigram=(p * (logp - unigram_logp)).sum(-1),
        topk_ids=top.indices,
        topk_logprobs=top.values,
        tail_mass=tail_mass,
    )


# Above this, exp() of a log-ratio nears fp32's limit (exp(88) overflows).
_MAX_EXPONENT = 80.0


def pairwise_kl(logits: torch.Tensor) -> torch.Tensor:
    """Exact KL(p_a || p_b) for every ordered pair of seeds, in fp32, from fp32 logits.

    `logits` is [S, N, V] (seed, token, vocabulary); the result is [S, S, N] with zeros on the
    diagonal.

    Why not sum p_a (log p_a - log p_b): each log p carries a rounding error near 1e-7 |log p|,
    and the normaliser difference lse_a - lse_b one near 1e-6, which swamps a KL of 1e-5 between
    seeds that nearly agree. Instead, with d = z_a - z_b (exact in floating point when the
    logits are close) and its mean m under p_a, the identity
        KL = E[d - m] + log E[exp(-(d - m))]      (expectations under p_a)
    holds exactly for any m, needs no normaliser of p_b, and with expm1/log1p keeps every digit
    of a small KL. Where a log-ratio is too large for exp, the direct sum is used instead; a KL that large has
    no small digits to lose.

    Speed: every pair works in place in two preallocated [N, V] buffers, so a pair costs a
    handful of passes over its logits and no allocation.
    """
    logits = logits.float()
    seeds = logits.shape[0]
    lse = torch.logsumexp(logits, dim=-1)  # [S, N]
    p = torch.exp(logits - lse[..., None])
    kl = torch.zeros(seeds, seeds, logits.shape[1], dtype=logits.dtype, device=logits.device)
    buffers = (torch.empty_like(logits[0]), torch.empty_like(logits[0]))
    for a in range(seeds):
        for b in range(seeds):
            if a != b:
                kl[a, b] = _kl_from_logits(p[a], logits[a], logits[b], lse[a] - lse[b], buffers)
    return kl


def _dot(p: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """sum_v p[n, v] values[n, v] per row, as a batched dot product: fast, no [N, V] temporary."""
    return torch.bmm(p[:, None, :], values[:, :, None])[:, 0, 0]


def _accurate_dot(p: torch.Tensor, values: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """The same sum through torch.sum's cascade summation, for sums whose terms cancel.

    A KL of 5e-7 is the sum of terms of size ~1e-3 that cancel; a plain fp32 dot product over a
    50k vocabulary loses a thousandth of it, the cascade sum keeps it.
    """
    return torch.mul(p, values, out=scratch).sum(-1)


def _kl_from_logits(
    p_a: torch.Tensor,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    lse_diff: torch.Tensor,
    buffers: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """KL(p_a || p_b) per row from p_a, both logits [N, V] and lse_a - lse_b [N]; `buffers` are scratch [N, V]."""
    buffer, scratch = buffers
    # buffer := m - d = -(d - m), in place: first -d, then its mean under p_a added back. m only
    # centres the exponent (the identity holds for any m), so the fast dot product serves.
    minus_d = torch.sub(z_b, z_a, out=buffer)
    m = -_dot(p_a, minus_d)
    exponent = minus_d.add_(m[:, None])
    # E[d - m]: zero but for p_a's rounding, which it cancels in the second term.
    centred_mean = -_accurate_dot(p_a, exponent, scratch)
    overflow = exponent.amax(-1) > _MAX_EXPONENT
    kl = centred_mean + torch.log1p(_accurate_dot(p_a, exponent.clamp_(max=_MAX_EXPONENT).expm1_(), scratch))
    if overflow.any():
        rows = overflow.nonzero()[:, 0]
        kl[rows] = (p_a[rows] * (z_a[rows] - z_b[rows] - lse_diff[rows, None])).sum(-1)
    return kl


def unigram_log_probs(counts: torch.Tensor) -> torch.Tensor:
    """Add-one smoothed unigram log-probabilities, so no token has probability zero."""
    counts = counts.double() + 1.0
    return (counts / counts.sum()).log().float()


TOKEN_STATS_SCHEMA = pa.schema(
    [
        ("seed", pa.int32()),
        ("position", pa.int32()),
        ("surprisal", pa.float32()),
        ("entropy", pa.float32()),
        ("kl_uniform", pa.float32()),
        ("kl_unigram", pa.float32()),
        ("topk_ids", pa.list_(pa.int32())),
        ("topk_logprobs", pa.list_(pa.float32())),
        ("tail_mass", pa.float32()),
    ]
)


PAIR_KL_SCHEMA = pa.schema(
    [("seed_a", pa.int32()), ("seed_b", pa.int32()), ("position", pa.int32()), ("kl", pa.float32())]
)


SCALAR_STATISTICS = ("surprisal", "entropy", "kl_uniform", "kl_unigram", "tail_mass")


def _fixed_lists(values: np.ndarray, value_type: pa.DataType) -> pa.Array:
    n, k = values.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), type=value_type))


def token_stats_table(
    seeds: np.ndarray,
    positions: np.ndarray,
    scalars: dict[str, np.ndarray],
    topk_ids: np.ndarray,
    topk_logprobs: np.ndarray,
) -> pa.Table:
    """Rows ordered by (seed, position): the arrays are seed-major with positions ascending."""
    n_seeds, n = len(seeds), len(positions)
    k = topk_ids.shape[-1]
    columns = {
        "seed": np.repeat(seeds.astype(np.int32), n),
        "position": np.tile(positions, n_seeds),
        **{name: values.reshape(-1) for name, values in scalars.items()},
        "topk_ids": _fixed_lists(topk_ids.reshape(-1, k), pa.int32()),
        "topk_logprobs": _fixed_lists(topk_logprobs.reshape(-1, k), pa.float32()),
    }
    return pa.table({f.name: columns[f.name] for f in TOKEN_STATS_SCHEMA}, schema=TOKEN_STATS_SCHEMA)


def pair_kl_table(seeds: np.ndarray, positions: np.ndarray, kl: np.ndarray) -> pa.Table:
    """Rows ordered by (seed_a, seed_b, position), every ordered pair a != b."""
    n_seeds, n = len(seeds), len(positions)
    a, b = np.nonzero(~np.eye(n_seeds, dtype=bool))  # row-major: ordered by (a, b)
    return pa.table(
        {
            "seed_a": np.repeat(seeds[a].astype(np.int32), n),
            "seed_b": np.repeat(seeds[b].astype(np.int32), n),
            "position": np.tile(positions, len(a)),
            "kl": kl[a, b].reshape(-1),
        },
        schema=PAIR_KL_SCHEMA,
    )


TOKEN_STATS = LakeTable(
    "token_stats",
    TOKEN_STATS_SCHEMA,
    PARTITION,
    "Per token and seed: surprisal, entropy, KL to uniform and unigram, top-k.",
)
PAIR_KL = LakeTable(
    "pair_kl", PAIR_KL_SCHEMA, PARTITION, "Per token and ordered seed pair: exact KL(p_a || p_b), fp32."
)
