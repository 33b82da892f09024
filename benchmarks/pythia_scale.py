"""Extraction at PolyPythia's real scale: its architectures, 50,304-token vocabulary, 5 seeds.

    python -m benchmarks.pythia_scale [--sizes 14m 70m ...] [--tokens 4662 466200] [--seed-counts 2 5 10] [--steps 3]

Writes random-weight checkpoints with the 14m..410m configurations, saved as the hub's are
(fp16 safetensors through save_pretrained, `<size>-seed<n>/step<N>/`), and extracts `--steps`
partitions of 5 seeds per size on synthetic evaluation tokens, every measure of the ICL kind on
(the one whose cost grows with a model's size). Random weights cost the same to run as trained
ones. The first partition of a run warms up (torch.compile); the figures are the mean of the
others, the steady state. Prints seconds per partition, where they went, the forward's share of
the measured matmul rate, the statistics phase's bytes against the measured memory bandwidth,
lake bytes per record, and the projected time of the paper's grid (5 sizes x 20 checkpoints x 5
seeds x 4,662 tokens). Then the seed-scaling table: the Pythia-14m configuration at the paper's
tokens with 2, 5 and 10 seeds side by side, and the growth from 5 to 10 seeds, beside their
targets. Defaults: every size and 100 times the paper's tokens on a GPU; 14m and 70m at the
paper's tokens on a CPU.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
from extract.inputs.eval_tokens import EvalSetError, eval_batches
from extract.inputs.icl_sequences import ICL_SEQUENCES_SCHEMA
from extract.lake.partition_store import write_partition
from extract.lake.tables import checkpoint_dir
from extract.measures import BlimpScores, Fingerprints, LoglikVectors, Measure, WeightStatistics
from extract.measures.base import SuiteContext
from extract.measures.icl_scores import IclScores
from extract.measures.token_distributions import statistics_bytes
from extract.sources.suites import LocalSuite, open_suite

PAPER_TOKENS = 4662
PAPER_CHECKPOINTS = 20
SEEDS = (1, 2, 3, 4, 5)
VOCAB = 50_304
TARGET_GRID_S = 15 * 60
# On a 2-core CPU, for the Pythia-14m configuration at the paper's tokens (docs/performance.md).
TARGET_PARTITION_S = 20
TARGET_GROWTH = 2.5  # 10 seeds against 5
TARGET_BOUND_FACTOR = 3  # the statistics phase against its memory-bandwidth bound
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


def text_tokens(measures: list[Measure]) -> int:
    """Tokens the log-likelihood vectors and BLiMP scores unembed per seed: each needs all 50,304
    logits of every one, for the normaliser."""
    return sum(int(m.batch.mask.sum()) for m in measures if isinstance(m, LoglikVectors | BlimpScores))


def text_measures(settings) -> tuple[list[Measure], str]:
    """The fingerprints, log-likelihood vectors and BLiMP scores on the demo's inputs, and a line
    saying where they came from.

    Their inputs are tokenized text, and Pythia's tokenizer is on the Hub: they are read as the
    first causal mini suite's (built by `make demo`), whose token ids are valid for the 50,304-token
    vocabulary and whose texts, probes and sentences are as many and as long as a real run's.
    """
    for mini in settings.mini_suites:
        suite = open_suite(settings.suite(mini.name))
        if mini.objective != "causal" or not suite.sizes():
            continue
        try:
            tokenizer = suite.load_tokenizer()
            bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
            context = SuiteContext(settings, suite, tokenizer, bos)
            built = [measure.for_suite(context) for measure in (Fingerprints, LoglikVectors, BlimpScores)]
        except (EvalSetError, OSError) as error:
            return [], f"fingerprints, log-likelihood vectors and BLiMP left out: {error} (run make demo first)"
        return built, f"fingerprints, log-likelihood vectors and BLiMP on suite {suite.name!r}'s inputs"
    return [], "fingerprints, log-likelihood vectors and BLiMP left out: no causal mini suite (run make demo first)"


@dataclass
class ScaleRun:
    """One (size, tokens, seeds) run: steady-state seconds per partition and where they went."""

    size: str
    n_tokens: int
    n_seeds: int
    partition_s: float  # mean wall seconds of the partitions after the first (compilation, warm-up)
    phases: dict[str, float]  # mean seconds per steady-state partition, by phase
    forward_share_of_peak: float  # forward FLOP/s over the measured matmul rate
    statistics_bytes: int  # per partition
    exact_pair_kl: float  # share of (pair, token) KLs recomputed by the exact path
    lake_bytes: dict[str, float]  # bytes per row of token_stats and pair_kl
    memory_bytes_per_s: float  # the machine's, measured
    text_bound_s: float  # the log-likelihood and BLiMP unembedding's FLOPs at the measured matmul rate

    @property
    def without_text_s(self) -> float:
        """Seconds per partition without the log-likelihood vectors and BLiMP scores."""
        return self.partition_s - self.phases["loglik"] - self.phases["blimp"]

    @property
    def statistics_bound_s(self) -> float:
        """The least time the statistics phase's bytes take at the measured memory bandwidth."""
        return self.statistics_bytes / self.memory_bytes_per_s


PHASES = ("read_wait", "load", "forward", "statistics", "icl", "fingerprint", "loglik", "blimp", "weights", "write")


def run(size: str, n_tokens: int, n_seeds: int, args, device: torch.device, limits) -> ScaleRun:
    """Extracts `args.steps` partitions of `size` with `n_seeds` seeds; the first warms up."""
    settings = load_settings()
    seeds = tuple(range(1, n_seeds + 1))
    written = write_suite(args.root / "suite", size, args.steps, seeds=seeds)
    # A suite of exactly these seeds: links to the checkpoints written once for every run.
    view = args.root / f"suite-{n_seeds}-seeds"
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    for seed in seeds:
        (view / f"{size}-seed{seed}").symlink_to(written.root / f"{size}-seed{seed}", target_is_directory=True)
    suite = LocalSuite(written.name, view)
    batches, unigram, icl_sequences = synthetic_inputs(n_tokens, args.window, settings.icl)
    measures = [
        WeightStatistics(suite, settings.weights.sketch_dim),
        IclScores(icl_sequences, settings.icl),
        *args.text_measures,
    ]
    extractor = Extractor(
        suite,
        batches,
        unigram,
        measures,
        tokenizer_vocab=VOCAB,
        eval=replace(settings.eval, batch_windows=args.batch_windows),
        extraction=replace(settings.extraction, dtype=args.dtype),
        device=device,
    )
    lake = args.root / "lake"
    walls, timings, exact = [], [], 0
    lake_bytes = {"token_stats": [0, 0], "pair_kl": [0, 0]}  # bytes, rows
    started = time.perf_counter()
    for result in extractor.extract_many([(size, step) for step in range(args.steps)]):
        if isinstance(result, Quarantine):
            raise NonFiniteOutputs(result.describe())
        phases = dict(result.timings_s)
        tick = time.perf_counter()
        target = checkpoint_dir(lake, suite.name, size, result.step)
        write_partition(lake, target, result.tables, {"suite": suite.name, "size": size, "step": result.step})
        phases["write"] = time.perf_counter() - tick
        walls.append(time.perf_counter() - started)
        timings.append(phases)
        exact += result.exact_pair_kl
        for name in lake_bytes:
            lake_bytes[name][0] += (target / f"{name}.parquet").stat().st_size
            lake_bytes[name][1] += result.tables[name].num_rows
        started = time.perf_counter()
    shutil.rmtree(lake, ignore_errors=True)

    steady = slice(1, None) if len(walls) > 1 else slice(None)
    mean = {name: float(np.mean([t.get(name, 0.0) for t in timings[steady]])) for name in PHASES}
    flops = forward_flops_per_token(pythia_config(size), args.window) * n_tokens * n_seeds
    # The fp32 matmul rate is measured without TF32, so a TF32 forward is compared with plain fp32.
    dtype = extractor.precision.name if extractor.precision.name in limits.matmul_flops else "float32"
    outcome = ScaleRun(
        size=size,
        n_tokens=n_tokens,
        n_seeds=n_seeds,
        partition_s=float(np.mean(walls[steady])),
        phases=mean,
        forward_share_of_peak=flops / max(mean["forward"], 1e-9) / limits.matmul_flops[dtype],
        statistics_bytes=statistics_bytes(n_seeds, n_tokens, VOCAB),
        exact_pair_kl=exact / max(1, lake_bytes["pair_kl"][1]),
        lake_bytes={name: b / max(rows, 1) for name, (b, rows) in lake_bytes.items()},
        memory_bytes_per_s=limits.memory_bytes_per_s,
        text_bound_s=text_tokens(args.text_measures)
        * 2
        * VOCAB
        * pythia_config(size).hidden_size
        * n_seeds
        / limits.matmul_flops["float32"],
    )
    return outcome


def describe_run(run: ScaleRun, steps: int) -> list[str]:
    shares = ", ".join(f"{name} {run.phases[name] / run.partition_s:.0%}" for name in PHASES)
    return [
        f"{run.size:>5} {run.n_tokens:>8,} tokens x {run.n_seeds:>2} seeds: {run.partition_s:7.2f} s per partition "
        f"(steady state, mean of {max(steps - 1, 1)}), {run.n_tokens * run.n_seeds / run.partition_s:>9,.0f} "
        f"token-seeds/s; {shares}",
        f"      forward at {run.forward_share_of_peak:.0%} of the measured matmul rate; statistics "
        f"{run.phases['statistics']:.2f} s for {run.statistics_bytes / 1e9:,.1f} GB moved "
        f"({run.phases['statistics'] / run.statistics_bound_s:.1f}x the memory-bandwidth bound "
        f"{run.statistics_bound_s:.2f} s); exact-path pair KLs {run.exact_pair_kl:.2%}; lake "
        f"{run.lake_bytes['token_stats']:.0f} B per token-seed, {run.lake_bytes['pair_kl']:.1f} B per token-pair",
    ]


def seed_scaling_table(runs: list[ScaleRun]) -> list[str]:
    """Side by side: per-partition seconds, the phases' shares and the statistics against their
    bandwidth bound, at each number of seeds; then the growth from 5 to 10 seeds."""
    lines = [
        f"{'seeds':>5} {'pairs':>5} {'partition':>10} "
        + " ".join(f"{name:>10}" for name in PHASES)
        + f" {'stats GB':>9} {'bound':>7} {'x bound':>7}"
    ]
    for run in runs:
        lines.append(
            f"{run.n_seeds:>5} {run.n_seeds * (run.n_seeds - 1):>5} {run.partition_s:>9.2f}s "
            + " ".join(f"{run.phases[name] / run.partition_s:>10.0%}" for name in PHASES)
            + f" {run.statistics_bytes / 1e9:>9.1f} {run.statistics_bound_s:>6.2f}s "
            f"{run.phases['statistics'] / run.statistics_bound_s:>7.1f}"
        )
    by_seeds = {run.n_seeds: run for run in runs}
    if 5 in by_seeds:
        five = by_seeds[5]
        verdict = {True: "met", False: "MISSED"}
        lines.append(
            f"target: a 5-seed partition in {TARGET_PARTITION_S} s or less, every measure on "
            f"[{verdict[five.partition_s <= TARGET_PARTITION_S]}: {five.partition_s:.1f} s]; without "
            f"the log-likelihood vectors and BLiMP [{verdict[five.without_text_s <= TARGET_PARTITION_S]}: "
            f"{five.without_text_s:.1f} s]; their unembedding alone takes {five.text_bound_s:.1f} s at the measured "
            "matmul rate"
        )
        statistics = by_seeds[5].phases["statistics"] / by_seeds[5].statistics_bound_s
        lines.append(
            f"target: statistics within {TARGET_BOUND_FACTOR:g}x the memory-bandwidth bound at 5 seeds "
            f"[{'met' if statistics <= TARGET_BOUND_FACTOR else 'MISSED'}: {statistics:.1f}x]"
        )
    if 5 in by_seeds and 10 in by_seeds:
        growth = by_seeds[10].partition_s / by_seeds[5].partition_s
        lines.append(
            f"growth from 5 to 10 seeds: {growth:.2f}x the time for 4.5x the pairs "
            f"(target at most {TARGET_GROWTH:g}x) [{'met' if growth <= TARGET_GROWTH else 'MISSED'}]"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", choices=list(PYTHIA_SIZES))
    parser.add_argument("--tokens", nargs="*", type=int, help="evaluation tokens per run")
    parser.add_argument(
        "--seed-counts", nargs="*", type=int, default=[2, 5, 10], help="seeds per partition in the seed-scaling table"
    )
    parser.add_argument("--steps", type=int, default=3, help="partitions per run; the first warms up (compilation)")
    parser.add_argument("--window", type=int, default=2048, help="tokens per evaluation window (Pythia's context)")
    parser.add_argument("--batch-windows", type=int, default=4)
    parser.add_argument("--dtype", default="float32", choices=FORWARD_PRECISIONS, help="the body's forward precision")
    parser.add_argument("--device", default=None)
    parser.add_argument("--root", type=Path, default=None, help="scratch folder (default warehouse/bench/pythia)")
    parser.add_argument("--keep", action="store_true", help="keep the random checkpoints for the next run")
    parser.add_argument(
        "--no-text-measures", action="store_true", help="leave out the log-likelihood vectors, BLiMP and fingerprints"
    )
    args = parser.parse_args(argv)

    device = torch.device(args.device) if args.device else default_device()
    on_gpu = device.type == "cuda"
    sizes = args.sizes or (list(PYTHIA_SIZES) if on_gpu else ["14m", "70m"])
    token_counts = args.tokens or ([PAPER_TOKENS, 100 * PAPER_TOKENS] if on_gpu else [PAPER_TOKENS])
    args.root = args.root or load_settings().paths.root / "bench" / "pythia"
    limits = machine.measure(device, args.root)
    args.text_measures, provenance = text_measures(load_settings())
    if args.no_text_measures:
        args.text_measures = []
        provenance = "fingerprints, log-likelihood vectors and BLiMP left out (--no-text-measures)"
    print(f"== extraction at PolyPythia scale: random weights, vocabulary 50,304, {len(SEEDS)} seeds ==")
    print("\n".join(machine.describe(limits)))
    print(f"measures: weight statistics, ICL on synthetic sequences; {provenance}")
    per_partition, done = {}, {}
    try:
        for n_tokens in token_counts:
            for size in sizes:
                result = done[size, n_tokens, len(SEEDS)] = run(size, n_tokens, len(SEEDS), args, device, limits)
                print("\n".join(describe_run(result, args.steps)), flush=True)
                if n_tokens == PAPER_TOKENS:
                    per_partition[size] = result.partition_s
        if args.seed_counts:
            print(f"\n== seeds: Pythia-14m configuration, {PAPER_TOKENS:,} tokens, every measure on ==")
            scaling = []
            for n_seeds in args.seed_counts:
                if ("14m", PAPER_TOKENS, n_seeds) not in done:  # the 5-seed run above serves again
                    result = run("14m", PAPER_TOKENS, n_seeds, args, device, limits)
                    print("\n".join(describe_run(result, args.steps)), flush=True)
                scaling.append(done.setdefault(("14m", PAPER_TOKENS, n_seeds), result))
            print("\n".join(seed_scaling_table(scaling)))
    finally:
        if not args.keep:
            shutil.rmtree(args.root / "suite", ignore_errors=True)
        for view in args.root.glob("suite-*-seeds"):
            shutil.rmtree(view, ignore_errors=True)

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
