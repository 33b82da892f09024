"""Activation fingerprints, weight statistics and log-likelihood vectors from the extraction,
checked against independent computations on the micro suite's real checkpoints."""

import math
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from extract.config import ConfigError, FingerprintConfig, LoglikConfig, WeightsConfig
from extract.inputs.fingerprint_probes import ProbeSetError, default_probes, file_probes, probe_batch
from extract.measures.fingerprints import masked_mean
from extract.measures.weight_stats import count_sketch, parameter_group, parameters, weight_statistics
from extract.pipeline import build_extractor, corpus_split
from extract.registry import suite_table_path
from extract.sources.suites import LocalSuite

CPU = torch.device("cpu")


def _extractor(suite, settings):
    extractor, _ = build_extractor(settings, suite, CPU)
    return extractor


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / math.sqrt((a @ a) * (b @ b)))


def _fingerprint(result, seed) -> np.ndarray:
    rows = result.tables["fingerprints"].to_pandas()
    return np.stack(rows[rows.seed == seed].sort_values("probe_id").fingerprint.to_list())


def _loglik(result, seed) -> np.ndarray:
    rows = result.tables["loglik"].to_pandas()
    return rows[rows.seed == seed].sort_values("text_id").logprob.to_numpy()


@pytest.fixture
def twin_suite(micro_suite, tmp_path):
    """Seed 2 of size a at step 4 is seed 1's weights, saved again (another digest, so computed again)."""
    root = tmp_path / "suite"
    shutil.copytree(micro_suite.root, root)
    weights = load_file(root / "a-seed1" / "step4" / "model.safetensors")
    shutil.rmtree(root / "a-seed2" / "step4")
    shutil.copytree(root / "a-seed1" / "step4", root / "a-seed2" / "step4")
    save_file(weights, root / "a-seed2" / "step4" / "model.safetensors", metadata={"format": "pt", "copy": "yes"})
    return LocalSuite("micro", root)  # reads the micro suite's inputs


def test_identical_models_have_similarity_one_and_no_log_likelihood_difference(twin_suite, micro_settings):
    result = _extractor(twin_suite, micro_settings).extract("a", 4)
    digests = {c["seed"]: c["weights"] for c in result.checkpoints}
    assert digests[1] != digests[2]  # computed twice, not deduplicated
    assert _cosine(_fingerprint(result, 1), _fingerprint(result, 2)) == pytest.approx(1.0, abs=1e-7)
    np.testing.assert_array_equal(_loglik(result, 1), _loglik(result, 2))
    assert _cosine(_fingerprint(result, 1), _fingerprint(result, 3)) < 0.9999
    assert np.var(_loglik(result, 1) - _loglik(result, 3)) > 0
    stats = result.tables["weight_stats"].to_pandas().set_index(["seed", "param_group"])
    assert stats.loc[(1, "all"), "l2_norm"] == stats.loc[(2, "all"), "l2_norm"]


def test_masked_pooling_ignores_padding():
    hidden = torch.randn(2, 5, 3)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    poisoned = hidden.clone()
    poisoned[0, 3:] = float("nan")  # whatever a model leaves on padding
    pooled = masked_mean(poisoned, mask)
    torch.testing.assert_close(pooled[0], hidden[0, :3].mean(dim=0))
    torch.testing.assert_close(pooled[1], hidden[1].mean(dim=0))


def test_a_probe_pools_the_same_alone_and_padded_in_a_batch(micro_suite, micro_settings):
    tokenizer = micro_suite.load_tokenizer()
    probes = pq.read_table(suite_table_path(micro_settings.paths.lake, "fingerprint_probes", "micro"))
    batch = probe_batch(probes, tokenizer)
    lengths = batch.mask.sum(dim=1)
    short = int(torch.argmin(lengths))
    assert lengths[short] < batch.mask.shape[1]  # the shortest probe is padded in the batch
    model = micro_suite.load_model(micro_suite.checkpoint("b", 1, 8), CPU)
    with torch.inference_mode():
        # Unmasked, as the extraction runs it: a causal model's padding comes after the probe.
        hidden = model.base_model(input_ids=batch.input_ids).last_hidden_state
        batched = masked_mean(hidden, batch.mask)[short]
        alone_ids = batch.input_ids[short : short + 1, : int(lengths[short])]
        alone = model.base_model(input_ids=alone_ids).last_hidden_state[0].mean(dim=0)
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)


def test_log_likelihood_is_the_models_own_sum_of_token_log_probabilities(micro_suite, micro_settings):
    result = _extractor(micro_suite, micro_settings).extract("b", 8)
    tokenizer = micro_suite.load_tokenizer()
    texts = pq.read_table(suite_table_path(micro_settings.paths.lake, "loglik_texts", "micro")).to_pylist()
    model = micro_suite.load_model(micro_suite.checkpoint("b", 3, 8), CPU)
    expected = []
    for text in texts[:5]:
        ids = tokenizer(text["text"], add_special_tokens=False)["input_ids"]
        assert len(ids) == text["n_tokens"] and len(text["text"].encode()) == text["n_bytes"]
        inputs = torch.tensor([[tokenizer.bos_token_id, *ids[:-1]]])
        with torch.inference_mode():
            log_p = torch.log_softmax(model(input_ids=inputs).logits[0].double(), dim=-1)
        expected.append(float(log_p[torch.arange(len(ids)), torch.tensor(ids)].sum()))
    np.testing.assert_allclose(_loglik(result, 3)[:5], expected, rtol=1e-5)


def test_weight_statistics_match_the_checkpoint_files(micro_suite, micro_settings):
    extractor = _extractor(micro_suite, micro_settings)
    results = {r.step: r for r in extractor.extract_many([("a", 0), ("a", 1), ("a", 2), ("a", 4)])}
    files = {step: load_file(micro_suite.root / "a-seed2" / f"step{step}" / "model.safetensors") for step in (0, 2, 4)}

    def flat(state):
        return np.concatenate([v.double().numpy().reshape(-1) for _, v in sorted(parameters(state).items())])

    stats = results[4].tables["weight_stats"].to_pandas().set_index(["seed", "param_group"])
    row = stats.loc[(2, "all")]
    assert row.prev_step == 2
    assert row.sq_dist_prev == pytest.approx(np.sum((flat(files[4]) - flat(files[2])) ** 2), rel=1e-9)
    assert row.sq_dist_init == pytest.approx(np.sum((flat(files[4]) - flat(files[0])) ** 2), rel=1e-9)
    assert row.l2_norm == pytest.approx(np.linalg.norm(flat(files[4])), rel=1e-9)
    groups = stats.loc[2].drop(index="all")
    assert groups.n_params.sum() == row.n_params == sum(v.numel() for v in parameters(files[4]).values())
    assert (groups.l2_norm**2).sum() == pytest.approx(row.l2_norm**2, rel=1e-12)
    assert set(groups.index) >= {"embedding", "attention", "mlp", "norm", "head"}

    first = results[0].tables["weight_stats"].to_pandas()
    assert first.prev_step.isna().all() and first.sq_dist_prev.isna().all()
    assert (first.sq_dist_init == 0).all()
    # A partition run alone reads its references from the suite: the same numbers.
    alone = _extractor(micro_suite, micro_settings).extract("a", 4).tables["weight_stats"].to_pandas()
    np.testing.assert_allclose(
        alone[["sq_dist_prev", "sq_dist_init"]], stats.reset_index()[["sq_dist_prev", "sq_dist_init"]]
    )


def test_count_sketch_estimates_squared_distances(micro_suite):
    steps = (0, 1, 2, 4, 8)
    states = {step: load_file(micro_suite.root / "b-seed1" / f"step{step}" / "model.safetensors") for step in steps}
    sketches = {step: count_sketch(state, 4096).astype(np.float64) for step, state in states.items()}
    ratios = []
    for i, a in enumerate(steps):
        for b in steps[i + 1 :]:
            first, second = parameters(states[a]), parameters(states[b])
            exact = sum(float(((first[k].double() - second[k].double()) ** 2).sum()) for k in first)
            ratios.append(float(np.sum((sketches[a] - sketches[b]) ** 2)) / exact)
    ratios = np.array(ratios)
    # Relative standard deviation at most sqrt(2 / 4096) = 2.2 %: every pair within 4 sigma, and
    # no bias beyond what ten pairs can show. A structured hash fails this (its errors were 12 %).
    assert np.all(np.abs(ratios - 1) < 0.09), ratios
    assert abs(ratios.mean() - 1) < 0.03, ratios
    # The same hash for every call: a sketch is a fixed linear map of the weights.
    np.testing.assert_array_equal(count_sketch(states[4], 4096), count_sketch(states[4], 4096))


def test_parameter_groups_of_common_architectures():
    assert parameter_group("gpt_neox.embed_in.weight") == "embedding"
    assert parameter_group("embed_out.weight") == "head"
    assert parameter_group("lm_head.weight") == "head"
    assert parameter_group("gpt_neox.layers.0.attention.query_key_value.weight") == "attention"
    assert parameter_group("gpt_neox.layers.0.mlp.dense_h_to_4h.weight") == "mlp"
    assert parameter_group("gpt_neox.layers.0.input_layernorm.weight") == "norm"
    assert parameter_group("gpt_neox.final_layer_norm.bias") == "norm"
    assert parameter_group("transformer.h.0.ln_1.weight") == "norm"
    assert parameter_group("transformer.wte.weight") == "embedding"
    assert parameter_group("bert.encoder.layer.0.intermediate.dense.weight") == "mlp"


def test_weight_statistics_refuse_mismatched_references():
    state = {"a.weight": torch.ones(2, 2)}
    with pytest.raises(ValueError, match="a.weight"):
        weight_statistics(state, {"a.weight": torch.ones(3, 2)}, None)


def test_default_probes_are_distinct_deterministic_and_of_every_kind(micro_settings):
    _, heldout = corpus_split(micro_settings)
    config = FingerprintConfig()
    probes = default_probes(config, heldout)
    assert probes == default_probes(config, heldout)
    assert len({p.text for p in probes}) == len(probes) == config.n_generated
    kinds = [p.kind for p in probes]
    for kind, n in (("corpus", 32), ("arithmetic", 16), ("factual", 16), ("random", 16)):
        assert kinds.count(kind) == n
    arithmetic = [p.text for p in probes if p.kind == "arithmetic"]
    assert all(eval(text.replace("=", "==")) for text in arithmetic)  # noqa: S307 - our own digits


def test_probe_file_errors_name_the_problem(tmp_path):
    path = tmp_path / "probes.txt"
    path.write_text("one probe\nanother probe\n\none probe\n")
    with pytest.raises(ProbeSetError, match="line 4 repeats the probe of line 1"):
        file_probes(path)
    path.write_text("\n\n")
    with pytest.raises(ProbeSetError, match="holds no probes"):
        file_probes(path)
    with pytest.raises(ProbeSetError, match="does not exist"):
        file_probes(tmp_path / "missing.txt")
    path.write_text("first\nsecond\n")
    assert [p.text for p in file_probes(path)] == ["first", "second"]


def test_settings_out_of_range_are_named():
    with pytest.raises(ConfigError, match="needs probes"):
        FingerprintConfig(corpus_probes=0, arithmetic_probes=0, factual_probes=0, random_probes=0)
    with pytest.raises(ConfigError, match="loglik.min_tokens"):
        LoglikConfig(min_tokens=10, max_tokens=5)
    with pytest.raises(ConfigError, match="weights.sketch_dim"):
        WeightsConfig(sketch_dim=0)
