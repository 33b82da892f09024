import shutil
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from extract.engine.extractor import ExtractionError, Extractor, chunk_shape
from extract.engine.skeleton import Head, cuda_tf32, forward_precision
from extract.inputs.eval_tokens import eval_batches
from extract.lake.partition_store import read_manifest
from extract.lake.tables import checkpoint_dir
from extract.measures.base import SeedModel
from extract.measures.icl_scores import IclScores
from extract.measures.token_distributions import StatisticsKernels, log_probs
from extract.pipeline import build_extractor, extract_checkpoint, extract_checkpoints
from extract.registry import suite_table_path
from extract.sources.suites import LocalSuite, SuiteUnavailable


@pytest.fixture(scope="module")
def extracted(micro_settings):
    manifest = extract_checkpoint(micro_settings, "micro", "b", 8)
    partition = checkpoint_dir(micro_settings.paths.lake, "micro", "b", 8)
    return manifest, partition


def test_partition_rows_and_manifest(extracted, micro_settings):
    manifest, partition = extracted
    n, seeds = micro_settings.eval.n_tokens, 3
    token_stats = pq.read_table(partition / "token_stats.parquet")
    pair_kl = pq.read_table(partition / "pair_kl.parquet")
    assert token_stats.num_rows == n * seeds
    assert pair_kl.num_rows == n * seeds * (seeds - 1)
    assert read_manifest(partition) == manifest
    assert manifest["rows"] == {
        "token_stats": n * seeds,
        "pair_kl": n * seeds * (seeds - 1),
        "icl_scores": seeds * micro_settings.icl.max_sequences,
        "fingerprints": seeds * 10,  # the micro config's 4 + 2 + 2 + 2 probes
        "weight_stats": seeds * 6,  # embedding, attention, mlp, norm, head, all
        "weight_sketches": seeds,
        "loglik": seeds * micro_settings.loglik.n_texts,
        "blimp_scores": seeds * 67 * micro_settings.blimp.pairs_per_paradigm,
        # the lens at layers 0 and 1 (the micro sizes have one layer)
        "layer_kl": 2 * n * seeds * (seeds - 1),
        "layer_final_kl": 2 * n * seeds,
        # step 8 against step 4 (its previous checkpoint) and anchor 0
        "trajectory_kl": 2 * n * seeds,
    }
    assert manifest["objective"] == "causal" and manifest["blimp_set_hash"].startswith("sha256:")
    for name, rows in manifest["rows"].items():
        assert pq.read_metadata(partition / f"{name}.parquet").num_rows == rows
    assert manifest["weight_sketch_dim"] == micro_settings.weights.sketch_dim
    assert manifest["probe_set_hash"].startswith("sha256:") and manifest["loglik_set_hash"].startswith("sha256:")
    assert [c["seed"] for c in manifest["checkpoints"]] == [1, 2, 3]
    assert all(c["weights"].startswith("sha256:") for c in manifest["checkpoints"])
    assert manifest["device"] == "cpu"
    pairs = set(zip(pair_kl.column("seed_a").to_pylist(), pair_kl.column("seed_b").to_pylist()))
    assert pairs == {(a, b) for a in (1, 2, 3) for b in (1, 2, 3) if a != b}
    assert min(pair_kl.column("kl").to_pylist()) >= 0
    topk = token_stats.column("topk_ids").to_pylist()[0]
    assert len(topk) == micro_settings.eval.top_k


def test_blimp_scores_are_the_models_sentence_log_probabilities(extracted, micro_settings, micro_suite):
    """log P(sentence) behind BOS, summed from the Hugging Face model's own token log-probabilities."""
    _, partition = extracted
    pairs = pq.read_table(suite_table_path(micro_settings.paths.lake, "blimp_pairs", "micro")).to_pylist()
    scores = pq.read_table(partition / "blimp_scores.parquet").to_pandas()
    tokenizer = micro_suite.load_tokenizer()
    model = micro_suite.load_model(micro_suite.checkpoint("b", 2, 8), torch.device("cpu"))
    ours = scores[scores["seed"] == 2].set_index("pair_index")
    for pair in pairs[::37]:
        for kind in ("good", "bad"):
            ids = [tokenizer.bos_token_id, *tokenizer(pair[f"sentence_{kind}"], add_special_tokens=False)["input_ids"]]
            with torch.no_grad():
                log_p = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
            expected = sum(float(log_p[t, ids[t + 1]]) for t in range(len(ids) - 1))
            assert ours.loc[pair["pair_index"], f"logprob_{kind}"] == pytest.approx(expected, abs=1e-4)


def test_pair_kl_matches_an_independent_computation(extracted, micro_settings, micro_suite):
    """Recompute KL(seed 1 || seed 3) from the saved checkpoints with torch's kl_div."""
    _, partition = extracted
    tokens = pq.read_table(suite_table_path(micro_settings.paths.lake, "eval_tokens", "micro"))
    tokenizer = micro_suite.load_tokenizer()
    batches = eval_batches(tokens, tokenizer.bos_token_id)
    models = [micro_suite.load_model(micro_suite.checkpoint("b", seed, 8), torch.device("cpu")) for seed in (1, 3)]
    with torch.no_grad():
        logp = [log_probs(m(input_ids=batches.input_ids).logits).double() for m in models]
    expected = torch.nn.functional.kl_div(logp[1], logp[0], log_target=True, reduction="none").sum(-1)
    keep = batches.position >= 0
    by_position = dict(zip(batches.position[keep].tolist(), expected[keep].tolist()))

    pair_kl = pq.read_table(partition / "pair_kl.parquet").to_pandas()
    rows = pair_kl[(pair_kl.seed_a == 1) & (pair_kl.seed_b == 3)]
    reference = np.array([by_position[p] for p in rows.position])
    np.testing.assert_allclose(rows.kl, reference, rtol=1e-3, atol=1e-7)

    token_stats = pq.read_table(partition / "token_stats.parquet").to_pandas()
    seed1 = token_stats[token_stats.seed == 1].set_index("position")
    targets = dict(zip(batches.position[keep].tolist(), batches.targets[keep].tolist()))
    surprisal = {p: -logp[0][batches.position == p][0, targets[p]].item() for p in list(targets)[:20]}
    for position, value in surprisal.items():
        assert seed1.loc[position, "surprisal"] == pytest.approx(value, rel=1e-4)


def test_seeds_disagree_at_initialisation_like_pythia(micro_settings):
    # Random inits with Pythia's logit spread (std ~0.45) disagree by KL ~ 0.45^2 ~ 0.2 nats.
    extract_checkpoint(micro_settings, "micro", "a", 0)
    partition = checkpoint_dir(micro_settings.paths.lake, "micro", "a", 0)
    mean_kl = np.mean(pq.read_table(partition / "pair_kl.parquet").column("kl").to_numpy())
    assert 0.1 < mean_kl < 0.4


def test_rerun_gives_the_same_rows(extracted, micro_settings):
    _, partition = extracted
    before = pq.read_table(partition / "pair_kl.parquet")
    extract_checkpoint(micro_settings, "micro", "b", 8)
    assert pq.read_table(partition / "pair_kl.parquet").equals(before)


def test_a_seed_that_skipped_the_step_is_left_out_and_named(warehouse_copy, tmp_path):
    """A seed folder without a step its run has gone past (the local twin of a revision the Hub
    never published): the partition compares the other seeds and its manifest names the missing
    one and why; their rows are exactly those of the full partition; and the skipped seed's
    weight statistics at its next step measure from the step before the gap."""
    settings = warehouse_copy()
    full = tmp_path / "full"
    list(extract_checkpoints(settings, "micro", [("a", 4)], output_lake=full))
    shutil.rmtree(settings.paths.suites / "micro" / "a-seed2" / "step4")
    short, after = extract_checkpoints(settings, "micro", [("a", 4), ("a", 8)])
    assert (short["seeds"], short["seeds_missing"], short["n_pairs"]) == ([1, 3], [2], 2)
    assert short["final_step"] == after["final_step"] == settings.mini.steps  # the micro suite trains to step 8
    (gap,) = short["missing_checkpoints"]
    assert gap["seed"] == 2 and gap["source"].endswith("a-seed2/step4") and "later checkpoints" in gap["reason"]
    assert [c["seed"] for c in short["checkpoints"]] == [1, 3]
    assert (after["seeds"], after["seeds_missing"], after["missing_checkpoints"]) == ([1, 2, 3], [], [])
    partition = checkpoint_dir(settings.paths.lake, "micro", "a", 4)
    for name, seed_columns in (("token_stats", ["seed"]), ("pair_kl", ["seed_a", "seed_b"])):
        everyone = pq.read_table(checkpoint_dir(full, "micro", "a", 4) / f"{name}.parquet").to_pandas()
        kept = everyone[everyone[seed_columns].isin([1, 3]).all(axis=1)].reset_index(drop=True)
        stored = pq.read_table(partition / f"{name}.parquet").to_pandas()
        if name == "token_stats":
            assert stored.equals(kept), name
        else:
            # A pair's KL is taken against the reference of the seeds compared (the mean of their
            # logits), so without seed 2 it differs in fp32 rounding only.
            assert stored[seed_columns + ["position"]].equals(kept[seed_columns + ["position"]])
            np.testing.assert_allclose(stored.kl, kept.kl, rtol=1e-4, atol=1e-9)
    weight_stats = pq.read_table(checkpoint_dir(settings.paths.lake, "micro", "a", 8) / "weight_stats.parquet")
    previous = weight_stats.to_pandas().groupby("seed")["prev_step"].first().to_dict()
    assert previous == {1: 4, 2: 2, 3: 4}


@pytest.fixture
def suite_copy(micro_suite, tmp_path):
    copy = tmp_path / "suite"
    shutil.copytree(micro_suite.root, copy)
    return LocalSuite("micro", copy)  # reads the micro suite's inputs


def _extract(suite, settings, step=4):
    return _extractor(suite, settings).extract("a", step)


@pytest.mark.fault
def test_nan_weights_are_named(suite_copy, micro_settings):
    weights_path = suite_copy.root / "a-seed2" / "step4" / "model.safetensors"
    weights = load_file(weights_path)
    name = next(k for k in weights if k.endswith("embed_out.weight"))
    weights[name][0, 0] = float("nan")
    save_file(weights, weights_path, metadata={"format": "pt"})
    with pytest.raises(ExtractionError, match="a-seed2/step4.*NaN"):
        _extract(suite_copy, micro_settings)


@pytest.mark.fault
def test_corrupt_checkpoint_is_named(suite_copy, micro_settings):
    (suite_copy.root / "a-seed3" / "step4" / "model.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(SuiteUnavailable, match="a-seed3/step4"):
        _extract(suite_copy, micro_settings)


@pytest.mark.fault
def test_seeds_with_different_vocabularies_are_refused(suite_copy, micro_settings, micro_suite):
    # Put a checkpoint of another size's architecture but a larger vocabulary in seed 2's place.
    from transformers import GPTNeoXForCausalLM

    model = micro_suite.load_model(micro_suite.checkpoint("a", 2, 4), torch.device("cpu"))
    model.resize_token_embeddings(len(micro_suite.load_tokenizer()) + 8)
    target = suite_copy.root / "a-seed2" / "step4"
    shutil.rmtree(target)
    model.save_pretrained(target)
    assert isinstance(model, GPTNeoXForCausalLM)
    with pytest.raises(ExtractionError, match="different vocabulary sizes"):
        _extract(suite_copy, micro_settings)


def _extractor(suite, settings, **extraction):
    """The suite's extractor on CPU with the ICL measure alone, and `extraction` settings changed."""
    settings = replace(settings, extraction=replace(settings.extraction, **extraction))
    extractor, _ = build_extractor(settings, suite, torch.device("cpu"), measures=[IclScores])
    return extractor


def _assert_same(first, second, rtol=0.0, atol=0.0):
    for name in ("token_stats", "pair_kl", "icl_scores"):
        a, b = first.tables[name].to_pandas(), second.tables[name].to_pandas()
        assert list(a.columns) == list(b.columns)
        for column in a.columns:
            if a[column].dtype == object:  # top-k lists
                np.testing.assert_allclose(np.stack(a[column]), np.stack(b[column]), rtol=rtol, atol=atol)
            else:
                np.testing.assert_allclose(a[column], b[column], rtol=rtol, atol=atol)


def test_a_reused_skeleton_gives_what_a_fresh_one_gives(micro_suite, micro_settings):
    """Partitions run back to back share one skeleton per size and must not leak weights into each other."""
    extractor = _extractor(micro_suite, micro_settings)
    together = list(extractor.extract_many([("a", 2), ("a", 8), ("b", 8)]))
    assert len(extractor._skeletons) == 2  # one per size, however many checkpoints
    for result in together:
        alone = _extractor(micro_suite, micro_settings).extract(result.size, result.step)
        _assert_same(result, alone)
    assert (
        together[0].tables["pair_kl"].column("kl").to_pylist() != together[1].tables["pair_kl"].column("kl").to_pylist()
    )


def test_chunks_do_not_change_the_numbers(micro_suite, micro_settings):
    whole = _extractor(micro_suite, micro_settings).extract("b", 8)
    # A budget below one token's vocabulary-sized tensors: one token per block and per kernel.
    assert chunk_shape(3, 384, 1, 1) == (1, 1)
    extractor = _extractor(micro_suite, micro_settings)
    extractor.chunk_bytes = 1  # below extraction.chunk_mib's smallest setting, 1 MiB
    chunked = extractor.extract("b", 8)
    # A matmul of another shape sums in another order: fp32 rounding, not a different result.
    _assert_same(whole, chunked, rtol=1e-4, atol=1e-6)


def test_chunk_shape_keeps_within_both_budgets():
    row = 50_304 * 4
    for seeds, chunk, cache in [(10, 1 << 30, 1 << 30), (5, 1 << 30, 16 << 20), (2, 64 << 20, 4 << 20)]:
        block, kernel = chunk_shape(seeds, 50_304, chunk, cache)
        assert block % kernel == 0 and block >= kernel
        kernel_bytes = (3 * seeds + 3) * kernel * row  # logits and two reference terms per seed, three more
        assert kernel_bytes <= min(chunk, cache) < kernel_bytes + (3 * seeds + 3) * row
        assert kernel_bytes + seeds * (block - kernel) * row <= chunk
        assert kernel_bytes + seeds * block * row > chunk  # one more kernel's rows would not fit


def test_identical_checkpoints_are_computed_once(suite_copy, micro_settings, monkeypatch):
    shutil.rmtree(suite_copy.root / "a-seed2" / "step4")
    shutil.copytree(suite_copy.root / "a-seed1" / "step4", suite_copy.root / "a-seed2" / "step4")
    runs = []
    original = Extractor._run_seed
    monkeypatch.setattr(Extractor, "_run_seed", lambda self, *args: runs.append(args[2].seed) or original(self, *args))
    result = _extractor(suite_copy, micro_settings).extract("a", 4)
    assert runs == [1, 3]
    digests = {c["seed"]: c["weights"] for c in result.checkpoints}
    assert digests[1] == digests[2] != digests[3]
    pair_kl = result.tables["pair_kl"].to_pandas()
    assert (pair_kl[(pair_kl.seed_a == 1) & (pair_kl.seed_b == 2)].kl == 0).all()
    assert (pair_kl[(pair_kl.seed_a == 1) & (pair_kl.seed_b == 3)].kl > 0).all()


def test_bf16_forward_stays_close_to_fp32(micro_suite, micro_settings):
    fp32 = _extractor(micro_suite, micro_settings, dtype="float32").extract("b", 8)
    bf16 = _extractor(micro_suite, micro_settings, dtype="bfloat16").extract("b", 8)
    assert (fp32.forward_dtype, bf16.forward_dtype) == ("float32", "bfloat16")
    exact, approximate = fp32.tables["pair_kl"].column("kl").to_numpy(), bf16.tables["pair_kl"].column("kl").to_numpy()
    assert not np.array_equal(exact, approximate)  # the body really ran in bf16
    assert np.median(np.abs(approximate - exact) / exact) < 0.05


def test_tf32_is_fp32_on_a_cpu(micro_suite, micro_settings):
    fp32 = _extractor(micro_suite, micro_settings, dtype="float32").extract("b", 8)
    tf32 = _extractor(micro_suite, micro_settings, dtype="tf32").extract("b", 8)
    assert tf32.forward_dtype == "tf32"  # the manifest says what was asked for
    _assert_same(fp32, tf32)  # TF32 is a mode of CUDA's matmuls: a CPU's stay fp32
    assert torch.backends.cuda.matmul.allow_tf32 is False  # switched on only during the body's forward


def test_the_tf32_switch_is_set_for_the_body_alone_and_restored():
    tf32, fp32, bf16 = forward_precision("tf32"), forward_precision("float32"), forward_precision("bfloat16")
    assert (tf32.dtype, bf16.dtype) == (torch.float32, torch.bfloat16)
    assert (fp32.exact, tf32.exact, bf16.exact) == (True, False, False)
    seen = []
    head = Head(torch.eye(3))
    original = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True  # as a process might have set it
        with fp32.body():
            seen.append(torch.backends.cuda.matmul.allow_tf32)
            with cuda_tf32(True):
                seen.append(torch.backends.cuda.matmul.allow_tf32)
            seen.append(torch.backends.cuda.matmul.allow_tf32)
        seen.append(torch.backends.cuda.matmul.allow_tf32)
        with tf32.body():
            seen.append(torch.backends.cuda.matmul.allow_tf32)
        head.logits(torch.ones(2, 3))
        seen.append(torch.backends.cuda.matmul.allow_tf32)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = original
    assert seen == [False, True, False, True, True, True]
    with pytest.raises(ValueError, match="float32, tf32, bfloat16"):
        forward_precision("auto")


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_target_logprobs_in_chunks_are_the_log_softmax_at_the_targets(compiled):
    generator = torch.Generator().manual_seed(0)
    head = Head(torch.randn(300, 16, generator=generator), torch.randn(300, generator=generator))
    hidden = torch.randn(50, 16, generator=generator)
    targets = torch.randint(0, 300, (50,), generator=generator)
    whole = torch.log_softmax((hidden.double() @ head.weight.double().T + head.bias.double()), -1)
    expected = whole.gather(-1, targets[:, None])[:, 0]
    kernels = StatisticsKernels(compile=compiled)
    for rows in (1, 7, 50, 1000):  # one row at a time, ragged chunks (the last padded), all at once
        model = SeedModel(None, None, None, head, torch.device("cpu"), False, kernels, chunk_bytes=rows * 300 * 4)
        torch.testing.assert_close(model.target_logprobs(hidden, targets).double(), expected, rtol=1e-5, atol=1e-5)
    out = torch.empty(50, 300)
    assert head.logits(hidden, out=out).data_ptr() == out.data_ptr()  # written into the reused buffer


def test_manifest_records_how_the_partition_was_computed(extracted):
    manifest, _ = extracted
    assert manifest["forward_dtype"] == "float32"
    assert manifest["checkpoint_bytes"] == sum(c["bytes"] for c in manifest["checkpoints"]) > 0
    assert manifest["n_tokens"] == manifest["rows"]["token_stats"] // len(manifest["seeds"])
    assert {
        "read_wait",
        "load",
        "forward",
        "statistics",
        "icl",
        "fingerprint",
        "loglik",
        "weights",
        "compute",
        "write",
    } <= set(manifest["timings_s"])


def test_a_compiled_body_gives_the_eager_numbers(micro_suite, micro_settings):
    eager = _extractor(micro_suite, micro_settings).extract("b", 8)
    extractor = _extractor(micro_suite, micro_settings, compile=True)
    compiled = extractor.extract("b", 8)
    assert all(skeleton.compiled for skeleton in extractor._skeletons.values())  # no silent fallback
    # Fused kernels round differently: fp32 rounding, not a different result.
    _assert_same(eager, compiled, rtol=1e-3, atol=1e-5)
