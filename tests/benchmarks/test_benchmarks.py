"""The benchmarks' own arithmetic: architectures, FLOP counts and measured limits."""

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from benchmarks.extraction import forward_flops_per_token
from benchmarks.machine import disk_read_bandwidth, matmul_flops
from benchmarks.pythia_scale import PYTHIA_SIZES, pythia_config, synthetic_inputs
from extract.config import IclConfig


@pytest.mark.parametrize(
    "size, parameters",
    # Total parameters of EleutherAI/pythia-<size>, as published with the suite.
    [("14m", 14_067_712), ("31m", 30_494_720), ("70m", 70_426_624), ("160m", 162_322_944), ("410m", 405_334_016)],
)
def test_pythia_configurations_have_the_published_sizes(size, parameters):
    with torch.device("meta"):
        model = GPTNeoXForCausalLM(pythia_config(size))
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert set(PYTHIA_SIZES) == {"14m", "31m", "70m", "160m", "410m"}


def test_forward_flops_count_by_hand():
    config = GPTNeoXConfig(
        vocab_size=100,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        tie_word_embeddings=False,
    )
    # Per layer: 2 layer norms (2 x 2 x 8), QKV 8 x 24 + 24, output 8 x 8 + 8, MLP 8 x 32 + 32 + 32 x 8 + 8;
    # plus the final layer norm (2 x 8).
    per_layer = 2 * 2 * 8 + (8 * 24 + 24) + (8 * 8 + 8) + (8 * 32 + 32) + (32 * 8 + 8)
    non_embedding = 2 * per_layer + 2 * 8
    window = 16
    expected = 2 * non_embedding + 2 * 2 * window * 8 + 2 * 100 * 8
    assert forward_flops_per_token(config, window) == expected


def test_machine_limits_are_measured(tmp_path):
    flops = matmul_flops(torch.device("cpu"), torch.float32, n=256, min_seconds=0.05)
    assert 1e8 < flops < 1e14
    assert disk_read_bandwidth(tmp_path, n_bytes=16 << 20) > 1e6
    assert list(tmp_path.iterdir()) == []  # the scratch file is gone


def test_synthetic_inputs_have_the_requested_shape():
    icl = IclConfig(short_context=4, long_context=8, target_position=10, max_sequences=3, batch_sequences=2)
    batches, unigram, sequences = synthetic_inputs(n_tokens=100, window=32, icl=icl)
    assert int((batches.position >= 0).sum()) == 100
    assert batches.input_ids.shape == (4, 32)
    assert int(batches.targets.max()) < 50_304
    assert sequences.num_rows == 3 and len(sequences.column("token_ids")[0]) == 11
    assert unigram.column("count").to_numpy().sum() == 1_000_000
