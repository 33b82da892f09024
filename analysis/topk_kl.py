"""KL between two seeds' next-token distributions, estimated from the lake's top-k copy.

`token_stats` keeps, per (token, seed), the k most probable token ids, their fp32
log-probabilities and `tail_mass`, the probability of the other V - k tokens (summed directly
on the device, so it is accurate even when tiny). `pair_kl` holds the exact KL, computed from
the full distributions. This module re-derives an approximate KL from the top-k copy alone, for
re-analysis where the full distributions are gone; docs/storage.md says when that is good enough.

What `topk_kl` estimates, for one token, seeds a and b, A = a's top-k ids, S = A ∩ (b's top-k
ids), t_a = a's tail mass. By the chain rule, KL(p_a || p_b) over the partition {each token of
A} + {the rest R} is

    KL = [sum_{i in A} p_a(i) log(p_a(i) / p_b(i)) + t_a log(t_a / p_b(R))] + t_a KL(p_a|R || p_b|R)
       = [the KL coarse-grained over that partition]                       + [the KL within the rest]

(p|R: p renormalised on R). The estimate is

    KL_k = coarse-grained KL with q_b in place of p_b  +  t_a KL(p_a|S || p_b|S)

- q_b(i) = p_b(i) (exact) when i is in b's top-k; otherwise b's tail mass spread uniformly over
  its V - k tail tokens, tail_mass_b / (V - k);
- q_b(R) = 1 - sum_{i in A} q_b(i), computed without cancellation as (b's probability on its
  top-k tokens outside A) + tail_mass_b (V - k - m) / (V - k), m = |A| - |S|;
- the within-rest term, which the top-k copy cannot see, is extrapolated from the shared head:
  the two seeds are assumed to disagree inside their tails as much, per unit of a's mass, as
  they do between the tokens both keep (p|S: renormalised on S; 0 when S is empty).

Tail masses of 0 and q_b(R) are kept at least the smallest positive fp32 (1.2e-38), so the
estimate is always finite: a tail mass of 0 with disjoint top-k sets gives 90 to 100 nats,
not infinity. Every KL is summed as sum over cells of p (e^r - 1 - r), r = log(q / p), whose terms
are >= 0 and which equals the KL because p and q each sum to 1 over the cells: the estimate is
never negative, and an error common to a row's log-probabilities (the fp32 rounding of the
normaliser) cancels to second order, so small KLs keep their digits.

When it is exact, and its bias:
- with k = V (whole distributions stored) A is the vocabulary, t_a = 0 and the estimate is the
  exact KL (to the fp32 rounding of the stored log-probabilities); more generally it is exact
  when t_a = 0 and a's top-k lies in b's;
- without the extrapolation term, the coarse-grained KL with exact p_b is a lower
  bound (log-sum inequality); the uniform spread puts a token that a keeps but b does not at
  b's average tail probability, below its true one (b's tail is skewed to its head), which
  pushes the other way; the extrapolation adds back part of what the coarse-graining loses;
- measured on the mini suite (docs/storage.md), per (token, pair): while both tail masses are
  below 0.9 the median error is 13-20 % and the mean error +3 % (tail masses below 0.1) to +9 %
  (0.5 to 0.9), i.e. slightly too high; for near-uniform distributions (a tail mass >= 0.9, as
  at random initialisation) it is far too small (-79 % on average), since the kept head is then
  an unrepresentative sliver of the distribution. On synthetic seeds that differ only by a small
  logit perturbation the uniform spread makes it too high, by up to 2x at KLs of 0.03-0.2 nats.

Variants measured and dropped (docs/storage.md): the same without the extrapolation; b's
missing tokens at b's k-th probability, or at a truncated-lognormal guess fitted on the shared
head; and reconstructing both distributions over the whole vocabulary with uniform tails.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The smallest positive normal fp32: a floor for probabilities that the stored copy says are 0.
PROBABILITY_FLOOR = float(np.finfo(np.float32).tiny)
# The lake's pair_kl schema (extract.measures.token_distributions.PAIR_KL), repeated here so that analysis
# code does not import the extraction (and torch); a test checks that the two agree.
PAIR_KL_SCHEMA = pa.schema(
    [("seed_a", pa.int32()), ("seed_b", pa.int32()), ("position", pa.int32()), ("kl", pa.float32())]
)


def _match(ids_a: np.ndarray, ids_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (n, i): a column j with ids_b[n, j] == ids_a[n, i], and whether there is one.

    Each row of ids_b is sorted and offset by row * (largest id + 1), so one searchsorted over
    the flattened array finds every id in its own row's list.
    """
    n, k_b = ids_b.shape
    order = np.argsort(ids_b, axis=1, kind="stable")
    stride = int(max(ids_a.max(initial=0), ids_b.max(initial=0))) + 1
    offset = np.arange(n, dtype=np.int64)[:, None] * stride
    haystack = (np.take_along_axis(ids_b, order, axis=1).astype(np.int64) + offset).ravel()
    needles = ids_a.astype(np.int64) + offset
    at = np.searchsorted(haystack, needles.ravel()).reshape(needles.shape)
    found = haystack[np.minimum(at, haystack.size - 1)] == needles
    column = np.clip(at - np.arange(n)[:, None] * k_b, 0, k_b - 1)
    return np.take_along_axis(order, column, axis=1), found


def _kl_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """p log(p / q) - p + q per cell (>= 0; q where p = 0), accurate when p and q are close."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = np.log(q) - np.log(p)
        terms = p * (np.expm1(r) - r)
    return np.where(p > 0, terms, q)


def topk_kl(
    ids_a: np.ndarray,
    logprobs_a: np.ndarray,
    tail_a: np.ndarray,
    ids_b: np.ndarray,
    logprobs_b: np.ndarray,
    tail_b: np.ndarray,
    vocab: int,
) -> np.ndarray:
    """Estimated KL(p_a || p_b) in nats per row, from two seeds' top-k records of the same tokens.

    ids [N, k] and logprobs [N, k] (any order within a row), tail [N], `vocab` = V, the model's
    output vocabulary. See the module docstring for what is estimated. Returns float64 [N].
    """
    ids_a, ids_b = np.asarray(ids_a), np.asarray(ids_b)
    p_a = np.exp(np.asarray(logprobs_a, dtype=np.float64))
    p_b = np.exp(np.asarray(logprobs_b, dtype=np.float64))
    tail_a = np.asarray(tail_a, dtype=np.float64)
    tail_b = np.asarray(tail_b, dtype=np.float64)
    if ids_a.shape != p_a.shape or ids_b.shape != p_b.shape or ids_a.shape[0] != ids_b.shape[0]:
        raise ValueError(f"top-k shapes disagree: {ids_a.shape}, {p_a.shape}, {ids_b.shape}, {p_b.shape}")
    k = ids_b.shape[1]
    if k > vocab:
        raise ValueError(f"top-k ({k}) larger than the vocabulary ({vocab})")
    if ids_a.shape[0] == 0:
        return np.zeros(0)

    column, found = _match(ids_a, ids_b)  # where each of a's top-k sits in b's
    _, b_in_a = _match(ids_b, ids_a)
    tail_tokens = max(vocab - k, 1)  # with k = V there is no tail and every id is found
    p_b_on_a = np.take_along_axis(p_b, column, axis=1)
    spread = np.maximum(tail_b, PROBABILITY_FLOOR) / tail_tokens
    q_b = np.where(found, p_b_on_a, spread[:, None])
    missing = (~found).sum(axis=1)
    q_rest = np.where(b_in_a, 0.0, p_b).sum(axis=1) + tail_b * np.maximum(tail_tokens - missing, 0) / tail_tokens
    q_rest = np.maximum(q_rest, PROBABILITY_FLOOR)
    coarse = _kl_terms(p_a, q_b).sum(axis=1) + _kl_terms(tail_a, q_rest)
    return coarse + tail_a * _shared_kl(p_a, p_b_on_a, found)


def _shared_kl(p_a: np.ndarray, p_b: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """KL between a and b, each renormalised on the `shared` cells of its row (0 if none)."""
    on_a, on_b = np.where(shared, p_a, 0.0), np.where(shared, p_b, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = _kl_terms(on_a / on_a.sum(1, keepdims=True), on_b / on_b.sum(1, keepdims=True))
    return np.where(shared, terms, 0.0).sum(axis=1)


def pairwise_topk_kl(ids: np.ndarray, logprobs: np.ndarray, tail: np.ndarray, vocab: int) -> np.ndarray:
    """[S, S, N] estimated KL(seed a || seed b) from ids [S, N, k], logprobs [S, N, k], tail [S, N].

    Zeros on the diagonal, like extract.measures.token_distributions.pairwise_kl.
    """
    seeds, n = tail.shape
    kl = np.zeros((seeds, seeds, n))
    for a in range(seeds):
        for b in range(seeds):
            if a != b:
                kl[a, b] = topk_kl(ids[a], logprobs[a], tail[a], ids[b], logprobs[b], tail[b], vocab)
    return kl


def topk_arrays(token_stats: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """seeds [S], positions [N], ids [S, N, k], logprobs [S, N, k], tail [S, N] from token_stats rows.

    Rows may come in any order; only positions that every seed has are kept.
    """
    table = token_stats.select(["seed", "position", "topk_ids", "topk_logprobs", "tail_mass"])
    table = table.sort_by([("seed", "ascending"), ("position", "ascending")])
    seed = table.column("seed").to_numpy()
    position = table.column("position").to_numpy()
    seeds = np.unique(seed)
    per_seed = [np.unique(position[seed == s]) for s in seeds]
    if any(len(p) != (seed == s).sum() for p, s in zip(per_seed, seeds)):
        raise ValueError("token_stats holds a (seed, position) twice")
    common = per_seed[0]
    for positions in per_seed[1:]:
        common = np.intersect1d(common, positions, assume_unique=True)
    keep = np.isin(position, common)
    table = table.filter(pa.array(keep))
    s, n = len(seeds), len(common)
    ids = _fixed_width(table.column("topk_ids"), s * n).reshape(s, n, -1)
    logprobs = _fixed_width(table.column("topk_logprobs"), s * n).reshape(s, n, -1)
    tail = table.column("tail_mass").to_numpy().reshape(s, n)
    return seeds, common, ids, logprobs, tail


def _fixed_width(column: pa.ChunkedArray, rows: int) -> np.ndarray:
    """A list column whose lists all have the same length, as a [rows, k] array."""
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if rows and (lengths != lengths[0]).any():
        raise ValueError("top-k lists of different lengths")
    values = pc.list_flatten(column).to_numpy()
    return values.reshape(rows, -1) if rows else values.reshape(0, 0)


def pair_kl_from_topk(token_stats: pa.Table, vocab: int) -> pa.Table:
    """Estimated KL for every ordered pair of seeds at every position all seeds share.

    `token_stats` holds rows of two or more seeds of one (suite, size, step). The result has
    pair_kl's schema and row order (seed_a, seed_b, position ascending), so its rows line up
    with the exact pair_kl table of the same partition.
    """
    seeds, positions, ids, logprobs, tail = topk_arrays(token_stats)
    if len(seeds) < 2:
        raise ValueError(f"comparing seeds needs two, token_stats holds {len(seeds)}")
    kl = pairwise_topk_kl(ids, logprobs, tail, vocab)
    a, b = np.nonzero(~np.eye(len(seeds), dtype=bool))  # row-major: ordered by (a, b)
    n = len(positions)
    return pa.table(
        {
            "seed_a": np.repeat(seeds[a], n).astype(np.int32),
            "seed_b": np.repeat(seeds[b], n).astype(np.int32),
            "position": np.tile(positions, len(a)).astype(np.int32),
            "kl": kl[a, b].reshape(-1).astype(np.float32),
        },
        schema=PAIR_KL_SCHEMA,
    )


def vocab_from_token_stats(token_stats: pa.Table) -> int:
    """The output vocabulary V, recovered from kl_uniform = log V - entropy (no other column holds it)."""
    log_vocab = pc.add(
        token_stats.column("kl_uniform").cast(pa.float64()), token_stats.column("entropy").cast(pa.float64())
    )
    return int(round(float(np.exp(np.median(log_vocab.to_numpy())))))
