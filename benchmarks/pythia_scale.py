"""Extraction at PolyPythia's real scale: its architectures, 50,304-token vocabulary, 5 seeds.

    python -m benchmarks.pythia_scale [--sizes 14m 70m ...] [--tokens 4662 466200] [--steps 2]

Writes random-weight checkpoints with the 14m..410m configurations, saved as the hub's are
(fp16 safetensors through save_pretrained, `<size>-seed<n>/step<N>/`), and extracts `--steps`
partitions of 5 seeds per size on synthetic evaluation tokens. Random weights cost the same to
run as trained ones. Prints tokens per second, where the time went, lake bytes per record, and
the projected time of the paper's grid (5 sizes x 20 checkpoints x 5 seeds x 4,662 tokens) from
the measured per-partition time. Defaults: every size and 100 times the paper's tokens on a GPU;
the three smallest sizes at the paper's tokens on a CPU.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
from transformers.utils import logging as transformers_logging

from benchmarks import machine
from benchmarks.extraction import forward_flops_per_token
from extract.config import FORWARD_PRECISIONS, IclConfig, load_settings
from extract.engine.extractor import Extractor, NonFiniteOutputs, Quarantine, default_device
from extract.inputs.eval_tokens import eval_batches
from extract.inputs.icl_sequences import ICL_SEQUENCES_SCHEMA
from extract.lake.partition_store import write_partition
from extract.lake.tables import checkpoint_dir
from extract.measures.icl_scores import IclScores
from extract.sources.suites import LocalSuite

PAPER_TOKENS = 4662
PAPER_CHECKPOINTS = 20
SEEDS = (1, 2, 3, 4, 5)
VOCAB = 50_304
TARGET_GRID_S = 15 * 60
# PolyPythia's configurations (EleutherAI/pythia-<size>): hidden size, layers, heads.
PYTHIA_SIZES = {
    "14m": (128, 6, 4),
    "31m": (256, 6, 8),
    "70m": (512, 6, 8),
    "160m": (768, 12, 12),
    "410m": (1024, 24, 16),
}


def pythia_config(size: str) -> GPTNeoXConfig:
    hidden, layers, heads = PYTHIA_SIZES[size]
    return GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=2048,
        rotary_pct=0.25,
        rotary_emb_base=10_000,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )


def write_suite(
    root: Path, size: str, steps: int, seeds: Sequence[int] = SEEDS, config: GPTNeoXConfig | None = None
) -> LocalSuite:
    """Random-weight checkpoints of `size` for `seeds` and steps 0..steps-1 (reused if present).

    The architecture is PolyPythia's for `size` unless `config` gives another (tests use tiny ones).
    """
    transformers_logging.disable_progress_bar()
    for seed in seeds:
        for step in range(steps):
            folder = root / f"{size}-seed{seed}" / f"step{step}"
            if (folder / "model.safetensors").exists():
                continue
            torch.manual_seed(seed * 1000 + step)
            model = GPTNeoXForCausalLM(config or pythia_config(size)).to(torch.float16)
            staging = folder.with_name(folder.name + ".partial")
            model.save_pretrained(staging)
            staging.rename(folder)
    return LocalSuite("pythia-random", root)


def synthetic_inputs(n_tokens: int, window: int, icl: IclConfig, seed: int = 0):
    """Evaluation windows, unigram counts and ICL sequences of Zipf-distributed token ids."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, VOCAB + 1)
    zipf = 1.0 / ranks
    zipf /= zipf.sum()
    ids = rng.choice(VOCAB, size=n_tokens, p=zipf).astype(np.int32)
    position = np.arange(n_tokens)
    tokens = pa.table(
        {
            "position": position.astype(np.int32),
            "doc_id": pa.array(["synthetic"] * n_tokens, pa.string()),  # one document: no window crosses two
            "token_id": ids,
            "window_id": (position // window).astype(np.int32),
            "context_len": (position % window).astype(np.int32),
        }
    )
    token_ids, counts = np.unique(rng.choice(VOCAB, size=1_000_000, p=zipf), return_counts=True)
    unigram = pa.table({"token_id": token_ids.astype(np.int32), "count": counts.astype(np.int64)})
    sequences = rng.choice(VOCAB, size=(icl.max_sequences, icl.target_position + 1), p=zipf).astype(np.int32)
    icl_sequences = pa.table(
        {
            "sequence_id": np.arange(icl.max_sequences, dtype=np.int32),
            "doc_id": ["synthetic"] * icl.max_sequences,
            "token_ids": list(sequences),
        },
        schema=ICL_SEQUENCES_SCHEMA,
    )
    return eval_batches(tokens, bos_token_id=0), unigram, icl_sequences


def run(size: str, n_tokens: int, steps: int, args, device: torch.device, limits) -> float:
    """Extracts `steps` partitions of `size`; returns the mean seconds per partition."""
    settings = load_settings()
    suite = write_suite(args.root / "suite", size, steps)
    batches, unigram, icl_sequences = synthetic_inputs(n_tokens, args.window, settings.icl)
    extractor = Extractor(
        suite,
        batches,
        unigram,
        [IclScores(icl_sequences, settings.icl)],
        tokenizer_vocab=VOCAB,
        eval=replace(settings.eval, batch_windows=args.batch_windows),
        extraction=replace(settings.extraction, dtype=args.dtype),
        device=device,
    )
    lake = args.root / "lake"
    started = time.perf_counter()
    timings: dict[str, float] = {}
    written = {"token_stats": [0, 0], "pair_kl": [0, 0]}  # bytes, rows
    for result in extractor.extract_many([(size, step) for step in range(steps)]):
        if isinstance(result, Quarantine):
            raise NonFiniteOutputs(result.describe())
        for name, value in result.timings_s.items():
            timings[name] = timings.get(name, 0.0) + value
        tick = time.perf_counter()
        target = checkpoint_dir(lake, suite.name, size, result.step)
        tables = result.tables
        write_partition(lake, target, tables, {"suite": suite.name, "size": size, "step": result.step})
        timings["write"] = timings.get("write", 0.0) + time.perf_counter() - tick
        for name in written:
            written[name][0] += (target / f"{name}.parquet").stat().st_size
            written[name][1] += tables[name].num_rows
    wall = time.perf_counter() - started
    shutil.rmtree(lake, ignore_errors=True)

    flops = forward_flops_per_token(pythia_config(size), args.window) * n_tokens * len(SEEDS) * steps
    # The fp32 matmul rate is measured without TF32, so a TF32 forward is compared with plain fp32.
    dtype = extractor.precision.name if extractor.precision.name in limits.matmul_flops else "float32"
    peak = limits.matmul_flops[dtype]
    token_seeds = n_tokens * len(SEEDS) * steps
    shares = ", ".join(
        f"{name} {timings.get(name, 0.0) / wall:.0%}"
        for name in ("read_wait", "load", "forward", "statistics", "icl", "write")
    )
    print(
        f"{size:>5} {n_tokens:>8,} tokens x {len(SEEDS)} seeds x {steps} partitions: wall {wall:8.2f} s, "
        f"{token_seeds / wall:>10,.0f} token-seeds/s; {shares}"
    )
    print(
        f"      forward {flops / max(timings['forward'], 1e-9) / 1e9:,.1f} GFLOP/s "
        f"({flops / max(timings['forward'], 1e-9) / peak:.0%} of measured {dtype} matmul); "
        f"reads {timings['read']:.2f} s in the background; "
        f"lake {written['token_stats'][0] / written['token_stats'][1]:.0f} B per token-seed, "
        f"{written['pair_kl'][0] / written['pair_kl'][1]:.1f} B per token-pair"
    )
    return wall / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", choices=list(PYTHIA_SIZES))
    parser.add_argument("--tokens", nargs="*", type=int, help="evaluation tokens per run")
    parser.add_argument("--steps", type=int, default=2, help="partitions per size, to measure the steady state")
    parser.add_argument("--window", type=int, default=2048, help="tokens per evaluation window (Pythia's context)")
    parser.add_argument("--batch-windows", type=int, default=4)
    parser.add_argument("--dtype", default="float32", choices=FORWARD_PRECISIONS, help="the body's forward precision")
    parser.add_argument("--device", default=None)
    parser.add_argument("--root", type=Path, default=None, help="scratch folder (default warehouse/bench/pythia)")
    parser.add_argument("--keep", action="store_true", help="keep the random checkpoints for the next run")
    args = parser.parse_args(argv)

    device = torch.device(args.device) if args.device else default_device()
    on_gpu = device.type == "cuda"
    sizes = args.sizes or (list(PYTHIA_SIZES) if on_gpu else ["14m", "31m", "70m"])
    token_counts = args.tokens or ([PAPER_TOKENS, 100 * PAPER_TOKENS] if on_gpu else [PAPER_TOKENS])
    args.root = args.root or load_settings().paths.root / "bench" / "pythia"
    limits = machine.measure(device, args.root)
    print("== extraction at PolyPythia scale: random weights, vocabulary 50,304, 5 seeds ==")
    print("\n".join(machine.describe(limits)))
    per_partition = {}
    try:
        for n_tokens in token_counts:
            for size in sizes:
                seconds = run(size, n_tokens, args.steps, args, device, limits)
                if n_tokens == PAPER_TOKENS:
                    per_partition[size] = seconds
    finally:
        if not args.keep:
            shutil.rmtree(args.root / "suite", ignore_errors=True)

    if per_partition:
        grid = sum(PAPER_CHECKPOINTS * s for s in per_partition.values())
        measured = ", ".join(per_partition)
        print(
            f"\npaper grid ({PAPER_CHECKPOINTS} checkpoints x 5 seeds x {PAPER_TOKENS:,} tokens) over sizes "
            f"{measured}: projected {grid / 60:.1f} min on this device, loading included"
        )
        if set(per_partition) == set(PYTHIA_SIZES):
            print(
                f"target: the whole grid under {TARGET_GRID_S // 60} min on one H100 "
                f"[{'met' if grid <= TARGET_GRID_S else 'MISSED'} on {limits.device}]"
            )
        else:
            missing = [s for s in PYTHIA_SIZES if s not in per_partition]
            print(
                f"target (whole grid under {TARGET_GRID_S // 60} min on one H100) needs every size; "
                f"not run here: {', '.join(missing)}"
            )


if __name__ == "__main__":
    main()
