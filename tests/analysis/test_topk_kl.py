"""The top-k KL estimator (analysis/topk_kl.py) on hand-made and real micro-suite distributions."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from scipy.special import rel_entr

from analysis.topk_kl import (
    PAIR_KL_SCHEMA,
    pair_kl_from_topk,
    pairwise_topk_kl,
    topk_arrays,
    topk_kl,
    vocab_from_token_stats,
)
from extract.inputs.eval_tokens import eval_batches
from extract.lake.tables import checkpoint_dir
from extract.measures.token_distributions import PAIR_KL, log_probs, pairwise_kl, token_statistics
from extract.pipeline import extract_checkpoint
from extract.registry import suite_table_path


@pytest.fixture(scope="module")
def micro_logits(micro_settings, micro_suite):
    """fp32 logits [3 seeds, N, V] of the micro suite's size b at its last step on the eval tokens."""
    tokens = pq.read_table(suite_table_path(micro_settings.paths.lake, "eval_tokens", "micro"))
    batches = eval_batches(tokens, micro_suite.load_tokenizer().bos_token_id)
    keep = batches.position >= 0
    logits = []
    for seed in micro_suite.seeds("b"):
        model = micro_suite.load_model(micro_suite.checkpoint("b", seed, 8), torch.device("cpu"))
        with torch.no_grad():
            logits.append(model(input_ids=batches.input_ids).logits.float()[keep])
    return torch.stack(logits), batches.targets[keep]


def records(logits: torch.Tensor, targets: torch.Tensor, top_k: int):
    """ids [S, N, k], logprobs [S, N, k], tail [S, N] as extraction computes them."""
    vocab = logits.shape[-1]
    stats = [token_statistics(log_probs(z), targets, torch.zeros(vocab), top_k) for z in logits]
    return (
        np.stack([s.topk_ids.numpy() for s in stats]),
        np.stack([s.topk_logprobs.numpy() for s in stats]),
        np.stack([s.tail_mass.numpy() for s in stats]),
    )


def reference_kl(logits: torch.Tensor) -> np.ndarray:
    """KL(seed a || seed b) [S, S, N] in float64 with scipy."""
    p = torch.softmax(logits.double(), -1).numpy()
    return np.array([[rel_entr(p[a], p[b]).sum(-1) for b in range(len(p))] for a in range(len(p))])


def test_exact_when_the_whole_distribution_is_kept(micro_logits):
    logits, targets = micro_logits
    vocab = logits.shape[-1]
    ids, logprobs, tail = records(logits, targets, top_k=vocab)
    assert (tail == 0).all()
    estimate = pairwise_topk_kl(ids, logprobs, tail, vocab)
    np.testing.assert_allclose(estimate, reference_kl(logits), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(estimate, pairwise_kl(logits).numpy(), rtol=1e-3, atol=1e-7)


def test_close_for_peaked_distributions(micro_logits):
    """The micro models' logits sharpened until their top 16 of 384 hold nearly all the mass."""
    logits, targets = micro_logits
    logits = logits * 10.0
    vocab = logits.shape[-1]
    ids, logprobs, tail = records(logits, targets, top_k=16)
    assert np.median(tail) < 1e-3
    estimate = pairwise_topk_kl(ids, logprobs, tail, vocab)
    exact = reference_kl(logits)
    off = ~np.eye(3, dtype=bool)
    relative = (estimate[off] - exact[off]) / exact[off]
    assert np.median(np.abs(relative)) < 0.1
    assert abs(estimate[off].mean() / exact[off].mean() - 1) < 0.05


def test_hand_computed_example():
    """V = 8, k = 3; b's rows in another order, to show order within a row does not matter."""
    vocab = 8
    p_a = {0: 0.4, 1: 0.3, 2: 0.1}  # tail 0.2 on tokens 3..7
    p_b = {1: 0.35, 0: 0.25, 3: 0.2}  # tail 0.2 on 2, 4..7
    tail_a = tail_b = 0.2
    # a's token 2 is outside b's top 3: b's tail spread over its 5 tail tokens.
    q = {0: p_b[0], 1: p_b[1], 2: tail_b / 5}
    q_rest = p_b[3] + tail_b * 4 / 5  # b's token 3, and four fifths of b's tail
    assert sum(q.values()) + q_rest == pytest.approx(1.0)
    coarse = sum(p_a[i] * np.log(p_a[i] / q[i]) for i in p_a) + tail_a * np.log(tail_a / q_rest)
    # The shared tokens {0, 1}, renormalised in each seed.
    shared_a = np.array([0.4, 0.3]) / 0.7
    shared_b = np.array([p_b[0], p_b[1]]) / (p_b[0] + p_b[1])
    within = float(np.sum(shared_a * np.log(shared_a / shared_b)))
    expected = coarse + tail_a * within

    estimate = topk_kl(
        np.array([[0, 1, 2]]),
        np.log(np.array([[0.4, 0.3, 0.1]], dtype=np.float32)),
        np.array([tail_a], dtype=np.float32),
        np.array([[3, 0, 1]]),
        np.log(np.array([[0.2, 0.25, 0.35]], dtype=np.float32)),
        np.array([tail_b], dtype=np.float32),
        vocab,
    )
    assert estimate[0] == pytest.approx(expected, rel=1e-6)


def test_edge_cases_stay_finite_and_non_negative():
    vocab, k = 50, 4
    logprobs = np.log(np.array([[0.5, 0.3, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1]], dtype=np.float32))
    zero_tail = np.zeros(2, dtype=np.float32)
    same = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    disjoint = np.array([[10, 11, 12, 13], [14, 15, 16, 17]])

    identical = topk_kl(same, logprobs, zero_tail, same, logprobs, zero_tail, vocab)
    np.testing.assert_allclose(identical, 0.0, atol=1e-7)

    cases = [
        # tail mass 0 on both sides, disjoint top-k: every token of a is "impossible" under b
        (same, logprobs, zero_tail, disjoint, logprobs, zero_tail),
        # a has a tail, b none
        (same, logprobs * 2, np.float32([0.3, 0.2]), same, logprobs, zero_tail),
        # disjoint with tails, and all of a's mass in its tail
        (same, logprobs - 40, np.float32([1.0, 1.0]), disjoint, logprobs, np.float32([0.5, 0.0])),
    ]
    for case in cases:
        estimate = topk_kl(*case, vocab)
        assert np.isfinite(estimate).all() and (estimate >= 0).all()
    assert (topk_kl(*cases[0], vocab) > 10).all()  # large, as the KL truly is (infinite)

    one = topk_kl(same[:, :1], logprobs[:, :1], np.float32([0.5, 0.6]), same[:, :1], logprobs[:, :1], zero_tail, vocab)
    assert np.isfinite(one).all()
    assert topk_kl(
        np.zeros((0, k), int),
        np.zeros((0, k)),
        np.zeros(0),
        np.zeros((0, k), int),
        np.zeros((0, k)),
        np.zeros(0),
        vocab,
    ).shape == (0,)
    with pytest.raises(ValueError, match="larger than the vocabulary"):
        topk_kl(same, logprobs, zero_tail, same, logprobs, zero_tail, 3)


@pytest.fixture(scope="module")
def extracted_partition(micro_settings):
    extract_checkpoint(micro_settings, "micro", "b", 8)
    return checkpoint_dir(micro_settings.paths.lake, "micro", "b", 8)


def test_pair_kl_from_topk_lines_up_with_pair_kl(extracted_partition, micro_logits):
    token_stats = pq.read_table(extracted_partition / "token_stats.parquet")
    exact = pq.read_table(extracted_partition / "pair_kl.parquet")
    vocab = micro_logits[0].shape[-1]
    assert vocab_from_token_stats(token_stats) == vocab

    estimated = pair_kl_from_topk(token_stats, vocab)
    assert PAIR_KL_SCHEMA == PAIR_KL.schema == estimated.schema
    exact = exact.sort_by([("seed_a", "ascending"), ("seed_b", "ascending"), ("position", "ascending")])
    for key in ("seed_a", "seed_b", "position"):
        assert estimated.column(key).to_pylist() == exact.column(key).to_pylist()
    kl = estimated.column("kl").to_numpy()
    assert np.isfinite(kl).all() and (kl >= 0).all()

    # The same numbers as the array function, from rows in any order.
    shuffled = token_stats.take(np.random.default_rng(0).permutation(token_stats.num_rows))
    seeds, positions, ids, logprobs, tail = topk_arrays(shuffled)
    direct = pairwise_topk_kl(ids, logprobs, tail, vocab)
    np.testing.assert_allclose(kl[: len(positions)], direct[0, 1].astype(np.float32))

    # Positions that one seed lacks are left out.
    partial = token_stats.filter(
        ~((token_stats.column("seed").to_numpy() == 1) & (token_stats.column("position").to_numpy() == 0))
    )
    assert 0 not in pair_kl_from_topk(partial, vocab).column("position").to_pylist()
    with pytest.raises(ValueError, match="needs two"):
        pair_kl_from_topk(token_stats.filter(token_stats.column("seed").to_numpy() == 1), vocab)
