"""Per-token statistics of next-token distributions and the exact pair KL, computed where the logits are.

The engine's second phase (extract/engine/extractor.py) takes these from every seed's fp32 logits at
once, chunk by chunk, and writes them as the partition's `token_stats` and `pair_kl`.

Everything here takes fp32 logits [S, N, V] (seed, token, vocabulary) on the model's device and
returns small tensors: the full distributions never leave the device, and no KL is ever computed
from a compressed (top-k or fp16) copy, which is what made the published numbers wrong at small KL.

Cost grows linearly in seeds: each seed's logits are read a fixed number of times, whatever the
number of seeds, and the S x S pair KLs of a token come from one small matrix product
(`pair_divergences`). The two functions that walk the vocabulary, `token_statistics` and
`reference_terms`, are written as chains of elementwise work and reductions that torch.compile
fuses into one or two passes each (`StatisticsKernels`); run eagerly they give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from extract.engine.skeleton import cuda_tf32
from extract.lake.tables import PARTITION, LakeTable


@dataclass
class TokenStatistics:
    """One row per predicted token: tensors share the leading dimensions [..., N] of the logits."""

    surprisal: torch.Tensor  # -log p(s_t | s_<t), nats
    entropy: torch.Tensor  # H(p), nats
    kl_uniform: torch.Tensor  # KL(p || uniform over the vocabulary), nats
    kl_unigram: torch.Tensor  # KL(p || unigram distribution of the reference corpus), nats
    topk_ids: torch.Tensor  # [..., N, k], most probable first
    topk_logprobs: torch.Tensor  # [..., N, k]
    tail_mass: torch.Tensor  # probability outside the top k
    log_normaliser: torch.Tensor  # logsumexp of the logits, which the pair KL starts from


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """fp32 log-softmax, whatever precision the model ran in."""
    return torch.log_softmax(logits.float(), dim=-1)


def token_statistics(
    logits: torch.Tensor, targets: torch.Tensor, unigram_logp: torch.Tensor, top_k: int
) -> TokenStatistics:
    """Statistics of the distributions softmax(logits) [..., N, V] against their target tokens [N].

    Log-probabilities serve as logits too (the softmax of either is the same distribution). One
    read of the logits for the top k, then one fused pass with a single exp per logit: the largest
    logit (the top-1) shifts every exponent, so no separate max pass is needed and nothing
    overflows, and every statistic is a ratio of sums of w = exp(z - max):
    log Z = max + log sum w, E_p[f] = sum w f / sum w.
    """
    vocab = logits.shape[-1]
    if not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be in [1, {vocab}] (the vocabulary size), got {top_k}")
    # An unsorted top k, then a sort of its k values: on a CPU twice as fast as a sorted top k.
    unsorted, unsorted_ids = logits.topk(top_k, dim=-1, sorted=False)
    top_values, order = unsorted.sort(dim=-1, descending=True, stable=True)
    top_ids = unsorted_ids.gather(-1, order)
    peak, kth = top_values[..., :1], top_values[..., -1:]
    centred = logits - peak  # <= 0
    weights = torch.exp(centred)
    mass = weights.sum(-1)
    log_mass = torch.log(mass)  # log Z - max
    mean_centred = (weights * centred).sum(-1) / mass  # E_p[z] - max
    mean_unigram = (weights * unigram_logp).sum(-1) / mass
    # The tail is summed directly rather than taken as 1 - sum(top k), which in fp32 loses every
    # digit below 1e-7 and can go negative. Logits tied with the k-th but left out of the top k
    # belong to the tail too.
    left_out_ties = (logits == kth).sum(-1) - (top_values == kth).sum(-1)
    tail = torch.where(logits < kth, weights, 0.0).sum(-1) + left_out_ties * torch.exp(kth - peak)[..., 0]
    entropy = log_mass - mean_centred
    target_logits = logits.gather(-1, targets.expand(logits.shape[:-1])[..., None])[..., 0]
    return TokenStatistics(
        surprisal=log_mass - (target_logits - peak[..., 0]),
        entropy=entropy,
        kl_uniform=math.log(vocab) - entropy,
        kl_unigram=-entropy - mean_unigram,
        topk_ids=top_ids,
        topk_logprobs=top_values - peak - log_mass[..., None],
        tail_mass=tail / mass,
        log_normaliser=peak[..., 0] + log_mass,
    )


# -- the pair KL ---------------------------------------------------------------------------------
#
# All ordered pairs from O(S) passes. Take a reference distribution r (softmax of the seeds' mean
# logits) and, per seed, the log-ratio l_s = log p_s - log p_r and e_s = p_s - p_r = p_r expm1(l_s).
# Then, exactly,
#     KL(p_a || p_b) = sum_v p_a (l_a - l_b) = k_b - k_a + sum_v e_a (l_a - l_b),   k_s = KL(r || p_s),
# so with G[a, b] = sum_v e_a(v) l_b(v), one [S, V] x [V, S] product per token,
#     KL(a || b) = G[a, a] - G[a, b] + k_b - k_a.
# Every term is second order in the seeds' differences: nothing of size |log p| is subtracted, so
# small KLs keep their digits where l and k are accurate (`reference_terms`). What is left is
# cancellation when a pair is far closer to each other than to the reference (two nearly equal
# seeds among distant ones): the terms are then much larger than their difference, and the
# matrix product's rounding (~1e-6 of the terms) would show. Such (pair, token) entries, and any
# whose terms overflowed, are recomputed by the exact per-pair path (`_kl_from_logits`), so every
# stored KL holds about four digits (docs/architecture.md has the measured errors).

# A (pair, token) whose terms exceed its KL by more than this goes to the exact path: the product's
# relative error is about 1e-6 of the terms, so at most 1e-4 of the KL is lost here.
CANCELLATION_LIMIT = 100.0


@dataclass
class ReferenceTerms:
    """Per seed and token, everything the pair KL needs of the vocabulary (see above)."""

    log_ratio: torch.Tensor  # [S, N, V] l_s + L_s: the log-ratio up to a per-token constant L_s
    excess: torch.Tensor  # [S, N, V] p_r expm1(l_s + L_s)
    centred_mean: torch.Tensor  # [S, N] float64: sum_v p_r (l_s + L_s) = L_s - k_s
    excess_sum: torch.Tensor  # [S, N] float64: sum_v excess = expm1(L_s)


# 1/8!, 1/7!, ..., 1/1!: the Taylor coefficients of expm1, highest first for Horner's rule.
_EXPM1_SERIES = tuple(1 / math.factorial(n) for n in range(8, 0, -1))


def _expm1(x: torch.Tensor) -> torch.Tensor:
    """expm1, written out: torch.compile's CPU code generator turns torch.expm1 into exp(x) - 1,
    which loses the digits of small arguments that the pair KL needs. Below 1/2 the Taylor series
    to x^8 (relative error under 1e-8), above it exp(x) - 1, which has no digits to lose there."""
    small = x.clamp(-0.5, 0.5)
    series = small * _EXPM1_SERIES[0] + _EXPM1_SERIES[1]
    for coefficient in _EXPM1_SERIES[2:]:
        series = series * small + coefficient
    return torch.where(x.abs() < 0.5, series * small, torch.exp(x) - 1)


def reference_terms(logits: torch.Tensor, log_normaliser: torch.Tensor) -> ReferenceTerms:
    """The reference distribution's terms from logits [S, N, V] and their logsumexp [S, N].

    The log-ratio is taken as z_s - r - (lse_s - lse_r): each difference is exact or nearly so in
    floating point, and the fp32 rounding of lse_s - lse_r (~1e-6) is a per-token constant L_s that
    the sums carry exactly (`_combine` takes it out). The two sums accumulate in float64: in fp32 a
    sum of 50,000 terms of size 1e-3 that cancel to 1e-7 keeps only three digits.
    """
    reference = logits.mean(0)
    reference_lse = torch.logsumexp(reference, -1)
    p_reference = torch.exp(reference - reference_lse[:, None])
    log_ratio = logits - reference - (log_normaliser - reference_lse)[..., None]
    excess = p_reference * _expm1(log_ratio)
    return ReferenceTerms(
        log_ratio=log_ratio,
        excess=excess,
        centred_mean=(p_reference * log_ratio).sum(-1, dtype=torch.float64),
        excess_sum=excess.sum(-1, dtype=torch.float64),
    )


@dataclass
class PairDivergences:
    kl: torch.Tensor  # [S, S, N] KL(p_a || p_b), zeros on the diagonal
    exact: int  # (ordered pair, token) entries recomputed by the exact per-pair path


def pair_divergences(
    logits: torch.Tensor,
    log_normaliser: torch.Tensor,
    terms: Callable[[torch.Tensor, torch.Tensor], ReferenceTerms] = reference_terms,
    valid: int | None = None,
) -> PairDivergences:
    """Exact KL(p_a || p_b) for every ordered pair of seeds, in fp32, from fp32 logits [S, N, V].

    `log_normaliser` is the logits' logsumexp [S, N]; `terms` is `reference_terms` or its compiled
    form (StatisticsKernels). Only the first `valid` tokens are wanted (the rest pad a fixed
    shape): the others are left to the fast path whatever their precision.
    """
    seeds, n = logits.shape[:2]
    parts = terms(logits, log_normaliser)
    with cuda_tf32(False):  # fp32 products: TF32's 10-bit inputs would cost the small KLs their digits
        product = torch.bmm(parts.excess.transpose(0, 1), parts.log_ratio.permute(1, 2, 0)).double()  # [N, S, S]
    kl, size = _combine(parts.centred_mean, parts.excess_sum, product)
    off_diagonal = ~torch.eye(seeds, dtype=torch.bool, device=logits.device)[..., None]
    # A token whose logits are not finite has no KL to recover (the engine quarantines it).
    wanted = torch.isfinite(log_normaliser).all(0) & (torch.arange(n, device=logits.device) < (valid or n))
    redo = (~torch.isfinite(kl) | (size > CANCELLATION_LIMIT * kl)) & off_diagonal & wanted
    exact = int(redo.sum())
    if exact:
        _exact_pairs(logits.float(), log_normaliser, redo, kl)
    kl = torch.where(off_diagonal, kl, 0.0)
    return PairDivergences(kl=kl.float(), exact=exact)


def pairwise_kl(logits: torch.Tensor) -> torch.Tensor:
    """Exact KL(p_a || p_b) for every ordered pair, [S, S, N], from fp32 logits [S, N, V]."""
    logits = logits.float()
    return pair_divergences(logits, torch.logsumexp(logits, -1)).kl


def _combine(
    centred_mean: torch.Tensor, excess_sum: torch.Tensor, product: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """KL [S, S, N] and the size of the terms it was taken from, in float64, from the per-token sums.

    With c_s = l_s + L_s: L_s = log(1 + sum excess_s), k_s = L_s - sum p_r c_s, and the product
    sum_v p_r expm1(c_a) c_b = e^{L_a} G[a, b] + expm1(L_a) (L_b - k_b), solved for G.
    """
    shift = torch.log1p(excess_sum).T  # [N, S]
    to_reference = shift - centred_mean.T  # k_s = KL(r || p_s)
    gram = torch.exp(-shift)[..., None] * (product - torch.expm1(shift)[..., None] * (shift - to_reference)[:, None, :])
    own = torch.diagonal(gram, dim1=1, dim2=2)[..., None]  # G[a, a] = KL(a || r) + KL(r || a)
    kl = own - gram + to_reference[:, None, :] - to_reference[..., None]
    size = own.abs() + gram.abs() + to_reference[:, None, :].abs() + to_reference[..., None].abs()
    return kl.permute(1, 2, 0), size.permute(1, 2, 0)


def _exact_pairs(logits: torch.Tensor, log_normaliser: torch.Tensor, redo: torch.Tensor, kl: torch.Tensor) -> None:
    """Recomputes kl[a, b, n] where redo[a, b, n], pair by pair, by the exact path; in place."""
    for a, b in redo.any(-1).nonzero().tolist():
        rows = redo[a, b].nonzero()[:, 0]
        z_a, z_b = logits[a, rows], logits[b, rows]
        if torch.equal(z_a, z_b):  # seeds with the same weights (a data-seed suite's step 0)
            kl[a, b, rows] = 0.0
            continue
        p_a = torch.exp(z_a - log_normaliser[a, rows, None])
        buffers = (torch.empty_like(z_a), torch.empty_like(z_a))
        lse_diff = log_normaliser[a, rows] - log_normaliser[b, rows]
        kl[a, b, rows] = _kl_from_logits(p_a, z_a, z_b, lse_diff, buffers).to(kl.dtype)


def target_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) [...] from logits [..., V]: the target's logit minus their logsumexp."""
    return logits.gather(-1, targets[..., None])[..., 0] - torch.logsumexp(logits, -1)


def kl_from(p: torch.Tensor, log_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row, float64, from p's float64 probabilities and log-probabilities and q's
    fp32 logits: one direction of one pair, taken directly (cheaper than the reference
    decomposition of `pair_divergences`, which pays for every ordered pair). Float64 keeps the
    digits of small KLs, whose terms of size |log p| cancel."""
    log_q = torch.log_softmax(logits_q.double(), dim=-1)
    return (p * (log_p - log_q)).sum(-1)


def kl_both_ways(log_p: torch.Tensor, logits_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(KL(p || q), KL(q || p)) per row, float64, from p's float64 log-probabilities and q's fp32
    logits: the two directions between one model and another, as `kl_from` takes one."""
    log_q = torch.log_softmax(logits_q.double(), dim=-1)
    difference = log_p - log_q
    return (log_p.exp() * difference).sum(-1), -(log_q.exp() * difference).sum(-1)


class StatisticsKernels:
    """`token_statistics`, `reference_terms`, `target_log_probs`, `kl_from` and `kl_both_ways`,
    compiled by torch.compile or as they are, and the reused buffer their logits are written into.

    Compiled, each becomes one or two fused loops over the vocabulary (on a CPU, vectorised C++;
    on a GPU, Triton) with no vocabulary-sized temporaries; they are compiled once per shape,
    which their callers keep fixed.
    """

    def __init__(self, compile: bool):
        self.compiled = compile
        functions = (token_statistics, reference_terms, target_log_probs, kl_from, kl_both_ways)
        if compile:
            functions = tuple(torch.compile(function, dynamic=False) for function in functions)
        (self.token_statistics, self.reference_terms, self.target_log_probs, self.kl_from, self.kl_both_ways) = (
            functions
        )
        self._buffers: dict[tuple, torch.Tensor] = {}

    def buffer(self, *shape: int, device: torch.device) -> torch.Tensor:
        """An fp32 tensor of `shape`, the same one on every call: a fresh vocabulary-sized tensor
        per chunk costs more in page faults than the product written into it. Zeros at first, so
        rows a caller leaves unwritten hold finite numbers."""
        key = (shape, str(device))
        if key not in self._buffers:
            self._buffers[key] = torch.zeros(shape, device=device)
        return self._buffers[key]


def statistics_bytes(n_seeds: int, n_tokens: int, vocab: int) -> int:
    """fp32 vocabulary-sized bytes the statistics phase reads and writes, as the kernels above are
    written (what a memory-bound phase could not do in less time than bytes / bandwidth).

    Per seed: the top k and the fused statistics read its logits (2); the reference terms read
    its logits, the reference and its probabilities and write the two terms (5), after the mean
    read its logits (1); the product reads both terms (2). Per token, the reference is written,
    read twice for its logsumexp and probabilities, which are written (4).
    """
    return (10 * n_seeds + 4) * n_tokens * vocab * 4


# Above this, exp() of a log-ratio nears fp32's limit (exp(88) overflows).
_MAX_EXPONENT = 80.0


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
    """KL(p_a || p_b) per row, the exact per-pair path, from p_a, both logits [N, V] and lse_a - lse_b [N].

    Why not sum p_a (log p_a - log p_b): each log p carries a rounding error near 1e-7 |log p|,
    and the normaliser difference lse_a - lse_b one near 1e-6, which swamps a KL of 1e-5 between
    seeds that nearly agree. Instead, with d = z_a - z_b (exact in floating point when the
    logits are close) and its mean m under p_a, the identity
        KL = E[d - m] + log E[exp(-(d - m))]      (expectations under p_a)
    holds exactly for any m, needs no normaliser of p_b, and with expm1/log1p keeps every digit
    of a small KL. Where a log-ratio is too large for exp, the direct sum is used instead; a KL
    that large has no small digits to lose. `buffers` are scratch [N, V].
    """
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
