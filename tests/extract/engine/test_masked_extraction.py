"""Masked language models: the BERT mini suite, MultiBERT's hub layout, and masked-position extraction.

Every evaluated position is masked and its token predicted at that same position; these tests
check that against the Hugging Face model's own logits on the masked copy, and that reading the
neighbouring position (the published code's off-by-one) would give different numbers.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForPreTraining

from extract.config import ConfigError, MiniSizeConfig, MiniSuiteConfig, parse_settings
from extract.engine.extractor import ExtractionError, Extractor, NonFiniteOutputs, Quarantine
from extract.inputs.eval_tokens import masked_eval_batches
from extract.measures.fingerprints import Fingerprints
from extract.registry import suite_table_path
from extract.sources.mini_trainer import train_run, train_wordpiece_tokenizer
from extract.sources.suites import MULTIBERT_STEPS, LocalSuite, MultiBertSuite, SuiteUnavailable, open_suite

CPU = torch.device("cpu")


def _eval_tokens(settings, suite_name):
    return pq.read_table(suite_table_path(settings.paths.lake, "eval_tokens", suite_name))


def _batches(settings, suite):
    tokenizer = suite.load_tokenizer()
    ids = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id, tokenizer.pad_token_id
    return masked_eval_batches(_eval_tokens(settings, suite.name), *ids), tokenizer


def _extractor(settings, suite) -> Extractor:
    from extract.pipeline import build_extractor

    extractor, _ = build_extractor(settings, suite, CPU)
    return extractor


def test_each_copy_masks_exactly_its_target(micro_settings, micro_masked_suite):
    batches, tokenizer = _batches(micro_settings, micro_masked_suite)
    tokens = _eval_tokens(micro_settings, micro_masked_suite.name).to_pandas().sort_values("position")
    seen = []
    for input_ids, attention, columns in batches.batches(7):
        for row, column in zip(input_ids, columns):
            assert int((row == tokenizer.mask_token_id).sum()) == 1
            assert int(row[column]) == tokenizer.mask_token_id
            seen.append(int(column))
        assert int(input_ids[0, 0]) == tokenizer.cls_token_id
        # [CLS] + real tokens + [SEP] attended, padding not
        assert ((input_ids == tokenizer.pad_token_id) == (attention == 0)).all()
    assert len(seen) == len(tokens)
    # the masked column is the target's place in its window, behind [CLS]
    assert seen == (tokens["context_len"] + 1).tolist()
    unmasked = batches.windows[batches.window_index, batches.offset]
    assert torch.equal(unmasked, batches.targets)
    assert batches.targets.tolist() == tokens["token_id"].tolist()


def test_masked_suites_take_the_shorter_window(micro_settings, micro_suite, micro_masked_suite):
    # a window of L tokens costs a masked LM L passes: eval.masked_window, not eval.window
    masked = _eval_tokens(micro_settings, micro_masked_suite.name).to_pandas()
    causal = _eval_tokens(micro_settings, micro_suite.name).to_pandas()
    assert micro_settings.eval.masked_window < micro_settings.eval.window
    assert masked["context_len"].max() == micro_settings.eval.masked_window - 1
    assert masked.groupby("window_id").size().max() == micro_settings.eval.masked_window
    assert causal["context_len"].max() == micro_settings.eval.window - 1


def test_masked_surprisal_is_the_models_own_at_the_masked_position(micro_settings, micro_masked_suite):
    suite = micro_masked_suite
    batches, tokenizer = _batches(micro_settings, suite)
    size, step = suite.sizes()[0], suite.steps(suite.sizes()[0])[-1]
    result = _extractor(micro_settings, suite).extract(size, step)
    assert result.objective == "masked"
    assert set(result.tables) == {
        "token_stats",
        "pair_kl",
        "fingerprints",
        "weight_stats",
        "weight_sketches",
        "layer_kl",
        "layer_final_kl",
        "trajectory_kl",
    }

    seed = suite.seeds(size)[0]
    model = suite.load_model(suite.checkpoint(size, seed, step), CPU)
    input_ids, attention, columns = next(batches.batches(12))
    with torch.no_grad():
        log_p = torch.log_softmax(model(input_ids=input_ids, attention_mask=attention).logits, dim=-1)
    rows = torch.arange(len(columns))
    expected = -log_p[rows, columns, batches.targets[:12]].numpy()
    # the off-by-one reading: the prediction at the next position
    shifted = -log_p[rows, columns + 1, batches.targets[:12]].numpy()

    stats = result.tables["token_stats"].to_pandas()
    ours = stats[stats["seed"] == seed].sort_values("position")["surprisal"].to_numpy()[:12]
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(ours - shifted).max() > 1e-2

    # every ordered seed pair at every position, KL non-negative
    n_seeds, n = len(suite.seeds(size)), len(batches.targets)
    assert result.tables["pair_kl"].num_rows == n_seeds * (n_seeds - 1) * n
    assert float(np.min(result.tables["pair_kl"].column("kl").to_numpy())) >= -1e-6


def test_masking_hides_the_token(micro_settings, micro_masked_suite):
    """With the target left visible a BERT can copy it; masked, it cannot, so the numbers differ."""
    suite = micro_masked_suite
    batches, _ = _batches(micro_settings, suite)
    size = suite.sizes()[0]
    model = suite.load_model(suite.checkpoint(size, suite.seeds(size)[0], suite.steps(size)[-1]), CPU)
    input_ids, attention, columns = next(batches.batches(8))
    rows = torch.arange(len(columns))
    visible = batches.windows[batches.window_index[:8]]
    with torch.no_grad():
        masked = model(input_ids=input_ids, attention_mask=attention).logits[rows, columns]
        leaked = model(input_ids=visible, attention_mask=attention).logits[rows, columns]
    assert not torch.allclose(masked, leaked, atol=1e-3)


def test_multibert_layout_checkpoints_extract(tmp_path, micro_settings, micro_masked_suite):
    """MultiBERT ships BertForPreTraining checkpoints (with a pooler and a next-sentence head) and
    old LayerNorm names; a local suite of such files extracts like the BertForMaskedLM ones."""
    tokenizer = micro_masked_suite.load_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = BertForPreTraining(config)
        model.save_pretrained(tmp_path / f"base-seed{seed}" / "step0")
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    suite = LocalSuite(micro_masked_suite.name, tmp_path)
    assert suite.objective == "masked"
    batches, _ = _batches(micro_settings, suite)
    result = _extractor(micro_settings, suite).extract("base", 0)

    model = BertForPreTraining.from_pretrained(tmp_path / "base-seed1" / "step0").eval()
    input_ids, attention, columns = next(batches.batches(5))
    with torch.no_grad():
        log_p = torch.log_softmax(model(input_ids=input_ids, attention_mask=attention).prediction_logits, dim=-1)
    expected = -log_p[torch.arange(5), columns, batches.targets[:5]].numpy()
    stats = result.tables["token_stats"].to_pandas()
    np.testing.assert_allclose(stats[stats["seed"] == 1]["surprisal"].to_numpy()[:5], expected, rtol=1e-5)


def test_a_causal_checkpoint_in_a_masked_suite_is_named(tmp_path, micro_settings, micro_suite, micro_masked_suite):
    size = micro_masked_suite.sizes()[0]
    step = micro_masked_suite.steps(size)[0]
    shutil.copytree(micro_masked_suite.root / "tokenizer", tmp_path / "tokenizer")
    shutil.copytree(micro_masked_suite.root / f"{size}-seed1" / f"step{step}", tmp_path / "x-seed1" / "step0")
    causal_size = micro_suite.sizes()[0]
    shutil.copytree(micro_suite.root / f"{causal_size}-seed2" / "step0", tmp_path / "x-seed2" / "step0")
    suite = LocalSuite(micro_masked_suite.name, tmp_path)
    batches, tokenizer = _batches(micro_settings, suite)
    with pytest.raises(ExtractionError, match="x-seed2.*causal LM.*masked LMs"):
        _extractor(micro_settings, suite).extract("x", 0)


@pytest.mark.fault
def test_logits_that_overflow_quarantine_the_partition(tmp_path, micro_settings, micro_masked_suite):
    """Finite weights, finite activations and fingerprints, yet logits past fp32's range: the
    unembedding of every evaluation token overflows for one seed, and the partition comes out as
    a quarantine naming that seed, not as rows of NaN."""
    shutil.copytree(micro_masked_suite.root, tmp_path / "suite")
    suite = LocalSuite(micro_masked_suite.name, tmp_path / "suite")
    size = suite.sizes()[0]
    step = suite.steps(size)[-1]
    batches, tokenizer = _batches(micro_settings, suite)
    extractor = _extractor(micro_settings, suite)
    probes = next(measure.batch for measure in extractor.measures if isinstance(measure, Fingerprints))
    fed = set(batches.windows.unique().tolist()) | set(probes.input_ids.unique().tolist())
    unused = max(set(range(len(tokenizer))) - fed - {tokenizer.mask_token_id})  # the body never sees it
    source = suite.checkpoint(size, 2, step).source
    path = tmp_path / "suite" / f"{size}-seed2" / f"step{step}" / "model.safetensors"
    weights = load_file(path)
    weights["cls.predictions.transform.LayerNorm.weight"][:] = 0.0
    weights["cls.predictions.transform.LayerNorm.bias"][:] = 1e30  # the head's input: 1e30 in every unit
    weights["bert.embeddings.word_embeddings.weight"][unused] = 1e10  # the tied output row: 64 x 1e40 = inf
    save_file(weights, path, metadata={"format": "pt"})

    (result,) = extractor.extract_many([(size, step)])
    n = len(batches.targets)
    assert isinstance(result, Quarantine) and result.reasons == {
        2: f"{source}: NaN or infinite logits at {n} of {n} evaluation tokens"
    }
    assert [c["seed"] for c in result.checkpoints] == suite.seeds(size)
    with pytest.raises(NonFiniteOutputs, match=f"{suite.name}\\|{size}\\|step{step} is quarantined: seed 2:"):
        extractor.extract(size, step)


def test_multibert_suite_addresses_the_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    suite = open_suite(
        parse_settings({"suites": [{"name": "multibert", "kind": "multibert", "seeds": [0, 1, 2]}]}, tmp_path).suite(
            "multibert"
        )
    )
    assert isinstance(suite, MultiBertSuite) and suite.objective == "masked"
    assert suite.sizes() == ["base"] and suite.seeds("base") == [0, 1, 2]
    assert suite.steps("base") == list(MULTIBERT_STEPS) and len(MULTIBERT_STEPS) == 29
    assert suite.checkpoint("base", 3, 20_000).source == "google/multiberts-seed_3-step_20k@main"
    assert suite.checkpoint("base", 0, 2_000_000).source == "google/multiberts-seed_0-step_2000k@main"
    with pytest.raises(SuiteUnavailable, match="google/multiberts-seed_0-step_0k"):
        suite.weights_folder(suite.checkpoint("base", 0, 0))
    with pytest.raises(SuiteUnavailable, match="multiples of 1000"):
        MultiBertSuite("multibert", (0, 1), (1500,))


def test_masked_mini_settings(tmp_path):
    settings = parse_settings({}, tmp_path)
    assert [s.name for s in settings.all_suites] == ["mini", "mini-mlm"]
    assert settings.mini_mlm.objective == "masked"
    settings = parse_settings({"mini_mlm": {"enabled": False}}, tmp_path)
    assert [s.name for s in settings.all_suites] == ["mini"]
    with pytest.raises(ConfigError, match="mini_mlm.objective is fixed"):
        parse_settings({"mini_mlm": {"objective": "causal"}}, tmp_path)
    with pytest.raises(ConfigError, match="mini_mlm.mask_probability"):
        parse_settings({"mini_mlm": {"mask_probability": 1.5}}, tmp_path)
    with pytest.raises(ConfigError, match="mini_mlm.sizes.x: hidden_size 30"):
        parse_settings({"mini_mlm": {"sizes": {"x": {"hidden_size": 30, "num_layers": 1, "num_heads": 4}}}}, tmp_path)
    with pytest.raises(ConfigError, match="no suite to evaluate"):
        parse_settings({"mini": {"enabled": False}, "mini_mlm": {"enabled": False}}, tmp_path)
    with pytest.raises(ConfigError, match="needs at least two seeds"):
        parse_settings({"suites": [{"name": "mb", "kind": "multibert", "seeds": [0]}]}, tmp_path)


def test_masked_training_is_seeded(tmp_path, micro_settings):
    """Same seed, same weights (initialisation, data order and masking all follow the seed)."""
    from extract import pipeline
    from extract.sources.mini_trainer import encode_corpus

    train, _ = pipeline.corpus_split(micro_settings)
    texts = [d.text for d in train[:40]]
    tokenizer = train_wordpiece_tokenizer(texts, 300)
    assert tokenizer.mask_token == "[MASK]" and tokenizer.pad_token_id == 0
    tokens = encode_corpus(tokenizer, texts)
    suite = MiniSuiteConfig(
        name="t",
        objective="masked",
        seeds=(1, 2),
        steps=4,
        batch_size=2,
        seq_len=16,
        vocab_size=300,
        warmup_steps=1,
        sizes=(MiniSizeConfig("a", 8, 1, 2, section="mini_mlm"),),
    )
    weights = {}
    for run, seed in (("x", 1), ("y", 1), ("z", 2)):
        train_run(suite.sizes[0], seed, suite, tokens, tokenizer, tmp_path / run)
        config = json.loads((tmp_path / run / "step4" / "config.json").read_text())
        assert config["architectures"] == ["BertForMaskedLM"]
        from safetensors.torch import load_file

        weights[run] = load_file(tmp_path / run / "step4" / "model.safetensors")
    assert all(torch.equal(weights["x"][k], weights["y"][k]) for k in weights["x"])
    assert not all(torch.equal(weights["x"][k], weights["z"][k]) for k in weights["x"])
