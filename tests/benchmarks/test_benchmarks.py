"""The benchmarks' own arithmetic: architectures, FLOP counts, measured limits and precision errors."""

import math

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from benchmarks.extraction import forward_flops_per_token
from benchmarks.machine import disk_read_bandwidth, matmul_flops, memory_bandwidth
from benchmarks.precision import precision_errors
from benchmarks.pythia_scale import (
    PHASES,
    PYTHIA_SIZES,
    VOCAB,
    ScaleRun,
    pythia_config,
    seed_scaling_table,
    synthetic_inputs,
    write_suite,
)
from extract.config import IclConfig
from extract.measures.token_distributions import statistics_bytes


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
    assert 1e8 < memory_bandwidth(torch.device("cpu"), n_bytes=64 << 20, repeats=2) < 1e13
    assert list(tmp_path.iterdir()) == []  # the scratch file is gone


def test_synthetic_inputs_have_the_requested_shape():
    icl = IclConfig(short_context=4, long_context=8, target_position=10, max_sequences=3, batch_sequences=2)
    batches, unigram, sequences = synthetic_inputs(n_tokens=100, window=32, icl=icl)
    assert int((batches.position >= 0).sum()) == 100
    assert batches.input_ids.shape == (4, 32)
    assert int(batches.targets.max()) < 50_304
    assert sequences.num_rows == 3 and len(sequences.column("token_ids")[0]) == 11
    assert unigram.column("count").to_numpy().sum() == 1_000_000


def test_precision_errors_on_a_tiny_model(tmp_path):
    # Pythia's vocabulary (the synthetic tokens use all of it), a body far smaller than 14m's.
    config = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        rotary_pct=0.25,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    suite = write_suite(tmp_path, "tiny", steps=1, seeds=(1, 2), config=config)
    result = precision_errors(
        suite, "tiny", ["float32", "bfloat16"], n_tokens=64, window=32, device=torch.device("cpu")
    )
    fp32, bf16 = result.errors
    assert result.n_params > 0 and 0 < result.entropy <= math.log(VOCAB) + 1e-3
    assert fp32.n_kls == bf16.n_kls == 2 * 64  # every token, both ordered pairs
    assert (fp32.median, fp32.p99, fp32.conv_shift) == (0.0, 0.0, 0.0)  # the fp32 reference, run again
    assert 0 < bf16.median <= bf16.p99 and bf16.conv_shift != 0
    numbers = [bf16.kl_median, bf16.median, bf16.p99, bf16.conv_fp32, bf16.conv_shift, bf16.conv_shift_relative]
    assert all(math.isfinite(x) for x in numbers) and bf16.conv_fp32 < 0
    assert len(result.table_rows()) == 2


def _scale_run(n_seeds: int, partition_s: float, statistics_s: float) -> ScaleRun:
    phases = dict.fromkeys(PHASES, 0.0) | {"statistics": statistics_s, "blimp": partition_s / 2}
    return ScaleRun(
        size="14m", n_tokens=4662, n_seeds=n_seeds, partition_s=partition_s, phases=phases,
        forward_share_of_peak=0.5, statistics_bytes=statistics_bytes(n_seeds, 4662, VOCAB), exact_pair_kl=0.0,
        lake_bytes={"token_stats": 131.0, "pair_kl": 2.5}, memory_bytes_per_s=30e9, text_bound_s=10.0,
    )  # fmt: skip


def test_seed_scaling_table_states_growth_and_targets():
    lines = seed_scaling_table([_scale_run(2, 8.0, 1.0), _scale_run(5, 18.0, 2.0), _scale_run(10, 50.0, 9.0)])
    assert len(lines) == 1 + 3 + 3
    assert lines[1].split()[:3] == ["2", "2", "8.00s"] and lines[3].split()[:3] == ["10", "90", "50.00s"]
    # 5 seeds: 18 s [met]; without BLiMP 9 s; statistics 2 s against 50.7 GB / 30 GB/s = 1.69 s
    assert "[met: 18.0 s]" in lines[4] and "[met: 9.0 s]" in lines[4]
    assert "[met: 1.2x]" in lines[5]
    assert lines[6].startswith("growth from 5 to 10 seeds: 2.78x") and lines[6].endswith("[MISSED]")
    # ten passes of [tokens, V] per seed and four per token
    assert statistics_bytes(5, 4662, VOCAB) == (10 * 5 + 4) * 4662 * VOCAB * 4
