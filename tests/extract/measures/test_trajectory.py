"""Exact KL along each seed's trajectory: known answers, and the lake's rows against the models."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from extract.config import ConfigError, parse_settings
from extract.engine.skeleton import Head
from extract.inputs.eval_tokens import eval_batches
from extract.lake.tables import checkpoint_dir
from extract.measures.token_distributions import log_probs
from extract.measures.trajectory import SeedState, StateStore, directed_kls, earlier_steps
from extract.pipeline import extract_checkpoints
from extract.registry import suite_table_path


def _state(seed: int, n: int = 40, width: int = 8, vocab: int = 50, bias=None) -> SeedState:
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, width, generator=generator)
    weight = torch.randn(vocab, width, generator=generator)
    return SeedState(hidden, Head(weight, bias))


def test_a_checkpoint_against_itself_moves_by_zero():
    state = _state(0)
    ((forward, backward),) = directed_kls(state, [state])
    assert np.array_equal(forward, np.zeros(40, np.float32)) and np.array_equal(backward, np.zeros(40, np.float32))


def test_known_logit_shifts_give_the_known_kl():
    """The earlier checkpoint's logits are the later one's plus a shift d per vocabulary id (its
    head's bias), so q = p exp(d) / E_p[exp d], KL(p || q) = log E_p[exp d] - E_p[d] and
    KL(q || p) = E_q[d] - log E_p[exp d], in float64."""
    later = _state(1)
    shift = torch.linspace(-2.0, 3.0, 50)
    earlier = SeedState(later.hidden, Head(later.head.weight, shift))
    ((forward, backward),) = directed_kls(later, [earlier])

    logits = (later.hidden.double() @ later.head.weight.double().T).numpy()
    d = shift.double().numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = p * np.exp(d)
    q /= q.sum(1, keepdims=True)
    expected_forward = np.log((p * np.exp(d)).sum(1)) - (p * d).sum(1)
    expected_backward = (q * d).sum(1) - np.log((p * np.exp(d)).sum(1))
    assert (expected_forward > 0.01).all()
    np.testing.assert_allclose(forward, expected_forward, rtol=1e-4)
    np.testing.assert_allclose(backward, expected_backward, rtol=1e-4)


def test_chunks_do_not_change_the_kls():
    later, earlier = _state(2), [_state(3), _state(4)]
    whole = directed_kls(later, earlier)
    chunked = directed_kls(later, earlier, rows=3)
    for (a, b), (c, d) in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-5)  # the same up to the matmul's blocking
        np.testing.assert_allclose(b, d, rtol=1e-5)
    # Each earlier state's KLs are those it gets on its own.
    alone = directed_kls(later, [earlier[1]])[0]
    np.testing.assert_array_equal(alone[0], whole[1][0])


def test_the_steps_compared_are_the_previous_one_and_the_anchors_before():
    steps = [0, 1, 2, 4, 8, 16, 32, 50, 64]
    assert earlier_steps(steps, 0, (0, 4, 32)) == []
    assert earlier_steps(steps, 1, (0, 4, 32)) == [0]
    assert earlier_steps(steps, 50, (0, 4, 32)) == [0, 4, 32]
    assert earlier_steps(steps, 64, (0, 4, 32)) == [0, 4, 32, 50]
    # An anchor the seed has no checkpoint at is skipped.
    assert earlier_steps(steps, 64, (3,)) == [50]


def test_the_store_keeps_anchors_and_the_latest(tmp_path):
    store = StateStore(tmp_path)
    for step in (0, 1, 2, 4):
        store.save("a", 1, step, _state(step))
    store.prune("a", 1, keep={0, 4}, before=4)
    assert store.steps("a", 1) == [0, 4]
    loaded = store.load("a", 1, 4, torch.device("cpu"))
    assert torch.equal(loaded.hidden, _state(4).hidden) and loaded.head.bias is None
    assert store.load("a", 1, 2, torch.device("cpu")) is None


@pytest.mark.parametrize("anchors", [[-1], [4, 4], ["0"]])
def test_bad_anchors_are_named(anchors, tmp_path):
    with pytest.raises(ConfigError, match="trajectory.anchors"):
        parse_settings({"trajectory": {"anchors": anchors}}, tmp_path)


def _model_log_probs(suite, settings, size, seed, step):
    tokens = pq.read_table(suite_table_path(settings.paths.lake, "eval_tokens", suite.name))
    batches = eval_batches(tokens, suite.load_tokenizer().bos_token_id)
    model = suite.load_model(suite.checkpoint(size, seed, step), torch.device("cpu"))
    with torch.no_grad():
        logp = log_probs(model(input_ids=batches.input_ids).logits).double()
    keep = batches.position >= 0
    return dict(zip(batches.position[keep].tolist(), logp[keep]))


def test_trajectory_rows_are_the_models_kls_in_a_run_and_alone(warehouse_copy, micro_suite):
    """Steps 1, 2 and 4 of size a in one run (each reads its predecessor from the store), then step 4
    again in a warehouse whose store is empty (it loads steps 0 and 2 itself): the same rows, and
    KL(p_4 || p_2) is the Hugging Face models' own, in float64."""
    settings = warehouse_copy()
    list(extract_checkpoints(settings, "micro", [("a", 0), ("a", 1), ("a", 2), ("a", 4)]))
    lake = settings.paths.lake
    rows = {
        step: pq.read_table(checkpoint_dir(lake, "micro", "a", step) / "trajectory_kl.parquet") for step in (0, 1, 4)
    }
    assert rows[0].num_rows == 0
    assert set(rows[1].column("from_step").to_pylist()) == {0}
    assert set(rows[4].column("from_step").to_pylist()) == {0, 2}  # anchor 0 and the previous step
    assert rows[4].num_rows == 3 * 2 * settings.eval.n_tokens

    alone = warehouse_copy("alone")
    assert not (alone.paths.cache / "trajectory_states").exists()
    list(extract_checkpoints(alone, "micro", [("a", 4)]))
    again = pq.read_table(checkpoint_dir(alone.paths.lake, "micro", "a", 4) / "trajectory_kl.parquet")
    assert again.equals(rows[4])

    later = _model_log_probs(micro_suite, settings, "a", 2, 4)
    earlier = _model_log_probs(micro_suite, settings, "a", 2, 2)
    frame = rows[4].to_pandas()
    frame = frame[(frame.seed == 2) & (frame.from_step == 2)]
    expected = [float((later[p].exp() * (later[p] - earlier[p])).sum()) for p in frame.position]
    reverse = [float((earlier[p].exp() * (earlier[p] - later[p])).sum()) for p in frame.position]
    np.testing.assert_allclose(frame.kl_later_earlier, expected, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(frame.kl_earlier_later, reverse, rtol=1e-3, atol=1e-7)
    assert frame.kl_later_earlier.mean() > 1e-3  # training moved the model
