import numpy as np
import pytest
import torch
from scipy.special import log_softmax as np_log_softmax
from scipy.special import rel_entr
from scipy.stats import entropy as scipy_entropy

from extract.measures.token_distributions import (
    StatisticsKernels,
    _expm1,
    log_probs,
    pair_divergences,
    pairwise_kl,
    token_statistics,
    unigram_log_probs,
)


def random_logits(seeds=3, tokens=40, vocab=200, scale=3.0, generator_seed=0):
    generator = torch.Generator().manual_seed(generator_seed)
    return torch.randn(seeds, tokens, vocab, generator=generator) * scale


def reference_kl(logits: np.ndarray) -> np.ndarray:
    """KL(p_a || p_b) in float64 with scipy, as an independent check."""
    p = np.exp(np_log_softmax(logits.astype(np.float64), axis=-1))
    seeds = p.shape[0]
    return np.array([[rel_entr(p[a], p[b]).sum(-1) for b in range(seeds)] for a in range(seeds)])


def test_pairwise_kl_matches_scipy_and_torch():
    logits = random_logits()
    kl = pairwise_kl(logits).numpy()
    np.testing.assert_allclose(kl, reference_kl(logits.numpy()), rtol=1e-4, atol=1e-6)

    logp = log_probs(logits)
    torch_kl = torch.nn.functional.kl_div(logp[1], logp[0], log_target=True, reduction="none").sum(-1)
    np.testing.assert_allclose(kl[0, 1], torch_kl.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(np.diag(kl[:, :, 0]) == 0)
    assert not np.allclose(kl[0, 1], kl[1, 0]), "KL is not symmetric; both directions are kept"


@pytest.mark.parametrize("noise, expected_kl", [(0.01, 5e-5), (0.001, 5e-7)])
def test_small_kl_keeps_its_digits_in_fp32(noise, expected_kl):
    # Seeds that nearly agree, over a Pythia-sized vocabulary: the published fp16 copies were
    # 50% off at 4e-4 nats; exact fp32 must hold to a thousandth.
    base = random_logits(seeds=1, tokens=50, vocab=50_000, generator_seed=1)
    perturbation = torch.randn(1, 50, 50_000, generator=torch.Generator().manual_seed(2)) * noise
    logits = torch.cat([base, base + perturbation])
    kl = pairwise_kl(logits).numpy()[0, 1]
    reference = reference_kl(logits.numpy())[0, 1]
    assert reference.mean() == pytest.approx(expected_kl, rel=0.2)
    assert (np.abs(kl - reference) / reference).max() < 1e-3


def test_kl_with_extreme_log_ratios_stays_finite_and_exact():
    logits = torch.zeros(2, 3, 10)
    logits[1, :, 0] = 200.0  # seed 1 puts all its mass on token 0; exp(200) overflows fp32
    kl = pairwise_kl(logits).numpy()
    np.testing.assert_allclose(kl, reference_kl(logits.numpy()), rtol=1e-5)
    assert np.isfinite(kl).all()


def test_token_statistics_against_numpy():
    logits = random_logits(seeds=1, tokens=30, vocab=100)[0]
    targets = torch.randint(0, 100, (30,), generator=torch.Generator().manual_seed(3))
    counts = torch.arange(100, dtype=torch.float64)  # token 0 never seen: smoothing must cover it
    unigram_logp = unigram_log_probs(counts)
    stats = token_statistics(log_probs(logits), targets, unigram_logp, top_k=5)

    logp = np_log_softmax(logits.numpy().astype(np.float64), axis=-1)
    p = np.exp(logp)
    unigram = (counts.numpy() + 1) / (counts.numpy() + 1).sum()
    np.testing.assert_allclose(stats.surprisal, -logp[np.arange(30), targets.numpy()], rtol=1e-5)
    np.testing.assert_allclose(stats.entropy, scipy_entropy(p, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(stats.kl_uniform, np.log(100) - scipy_entropy(p, axis=-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats.kl_unigram, rel_entr(p, unigram).sum(-1), rtol=1e-4, atol=1e-6)

    order = np.argsort(-p, axis=-1)[:, :5]
    np.testing.assert_array_equal(stats.topk_ids.numpy(), order)
    np.testing.assert_allclose(stats.topk_logprobs, np.take_along_axis(logp, order, -1), rtol=1e-5)
    tail = 1 - np.take_along_axis(p, order, -1).sum(-1)
    np.testing.assert_allclose(stats.tail_mass, tail, rtol=1e-4)


def test_tail_mass_is_exact_for_a_peaked_distribution():
    # One token holds nearly all the mass: 1 - sum(top-k) in fp32 would round the tail to 0.
    logits = torch.full((1, 1000), -20.0)
    logits[0, 0] = 0.0
    stats = token_statistics(log_probs(logits), torch.tensor([0]), unigram_log_probs(torch.ones(1000)), top_k=1)
    expected = 999 * np.exp(-20.0) / (1 + 999 * np.exp(-20.0))
    assert stats.tail_mass.item() == pytest.approx(expected, rel=1e-4)


def test_top_k_out_of_range_is_refused():
    logp = log_probs(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="top_k"):
        token_statistics(logp, torch.tensor([0, 1]), unigram_log_probs(torch.ones(10)), top_k=11)


def ten_seeds(tokens=20, vocab=50_000):
    """Ten seeds' logits whose pairs range from identical to unrelated: a base model, an exact
    copy, copies perturbed by 1e-3 to 3 (KLs from ~5e-7 nats up), and three independent models."""
    generator = torch.Generator().manual_seed(7)
    base = torch.randn(tokens, vocab, generator=generator) * 3
    noise = [0.0, 1e-3, 3e-3, 1e-2, 0.1, 1.0, 3.0]
    seeds = [base + scale * torch.randn(tokens, vocab, generator=generator) for scale in noise]
    seeds.insert(1, base.clone())
    seeds += [torch.randn(tokens, vocab, generator=generator) * 3 for _ in range(2)]
    return torch.stack(seeds)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_ten_seeds_from_identical_to_far_apart_keep_their_digits(compiled):
    logits = ten_seeds()
    kernels = StatisticsKernels(compile=compiled)
    stats = kernels.token_statistics(logits, torch.zeros(logits.shape[1], dtype=torch.int64), torch.zeros(50_000), 8)
    result = pair_divergences(logits, stats.log_normaliser, kernels.reference_terms)
    reference = reference_kl(logits.numpy())
    kl = result.kl.numpy()
    assert (kl[0, 1] == 0).all() and (kl[1, 0] == 0).all()  # seed 1 is a copy of seed 0
    distinct = ~np.eye(10, dtype=bool)
    distinct[0, 1] = distinct[1, 0] = False
    assert reference[distinct].min() < 1e-6 and reference[distinct].max() > 10  # the whole range
    relative = np.abs(kl - reference)[distinct] / reference[distinct]
    assert relative.max() < 1e-3
    # The pairs close to each other but far from the seeds' mean lose digits on the fast path and
    # are recomputed exactly; most pairs are not.
    total = 90 * logits.shape[1]
    assert 0 < result.exact < total / 2
    np.testing.assert_allclose(stats.log_normaliser, torch.logsumexp(logits.double(), -1), rtol=1e-6)


def test_compiled_statistics_give_the_eager_numbers():
    logits = random_logits(seeds=3, tokens=16, vocab=500)
    targets = torch.randint(0, 500, (16,), generator=torch.Generator().manual_seed(4))
    unigram_logp = unigram_log_probs(torch.arange(500, dtype=torch.float64))
    eager = StatisticsKernels(compile=False).token_statistics(logits, targets, unigram_logp, 5)
    compiled = StatisticsKernels(compile=True).token_statistics(logits, targets, unigram_logp, 5)
    for name in ("surprisal", "entropy", "kl_uniform", "kl_unigram", "tail_mass", "topk_logprobs"):
        np.testing.assert_allclose(getattr(compiled, name), getattr(eager, name), rtol=1e-5, atol=1e-6, err_msg=name)
    assert torch.equal(compiled.topk_ids, eager.topk_ids)


def test_tail_mass_counts_ties_left_out_of_the_top_k():
    # Four tokens tie for second place; the top 2 keeps one of them, the tail holds the other three.
    logits = torch.tensor([[2.0, 1.0, 1.0, 1.0, 1.0, -1.0]])
    stats = token_statistics(logits, torch.tensor([0]), unigram_log_probs(torch.ones(6)), top_k=2)
    p = torch.softmax(logits.double(), -1)[0]
    assert stats.tail_mass.item() == pytest.approx(float(3 * p[1] + p[5]), rel=1e-6)


def test_the_written_out_expm1_keeps_every_digit_of_small_arguments():
    # What torch.compile would make of torch.expm1 on a CPU, exp(x) - 1, is 1e-4 off at x = 1e-3.
    x = torch.cat([torch.linspace(-3, 3, 20_001), torch.logspace(-12, -1, 1_000), -torch.logspace(-12, -1, 1_000)])
    exact = torch.expm1(x.double())
    relative = (_expm1(x).double() - exact).abs() / exact.abs().clamp(min=1e-300)
    assert relative.max() < 3e-7
    assert ((torch.exp(x) - 1).double() - exact).abs().div(exact.abs()).max() > 1e-3
