"""Forward precision at PolyPythia's sizes: how far a bf16 (or TF32) body moves the pair KLs.

    python -m benchmarks.precision [--sizes 14m 70m 160m 410m] [--seeds 3] [--tokens 512]

For each size, `--seeds` random-weight checkpoints with PolyPythia's configuration (vocabulary
50,304), saved as the hub's are (fp16 safetensors, `benchmarks.pythia_scale.write_suite`), go
through the project's own extraction (`Extractor`: checkpoint reader, skeleton, fp32 head, exact
pair KLs) on the same Zipf-distributed tokens, once with the body in fp32 (the reference) and once
per opt-in precision: bf16 everywhere, TF32 on a CUDA device only (on a CPU TF32 is exactly fp32,
so it is skipped there). The unembedding, log-softmax and KL are fp32 in every run, as always.

Printed per size and precision, over every token and ordered seed pair: the median and the 99th
percentile of |KL_x - KL_fp32| / KL_fp32, and the shift of E[conv] = -mean KL, absolute (nats)
and relative. Figures only: nothing is asserted.

The KLs are those between independent random initialisations, whatever they come to: their
median (the "KL scale" column) is printed beside the errors, since a relative error means little
without the size of what it is relative to. Random weights give near-uniform distributions, not
a trained model's peaked ones; what this measures is rounding through Pythia's depth and width.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from benchmarks.pythia_scale import PYTHIA_SIZES, VOCAB, synthetic_inputs, write_suite
from extract.config import FORWARD_PRECISIONS, EvalConfig, ExtractionConfig, IclConfig, load_settings
from extract.engine.extractor import Extraction, Extractor, default_device
from extract.inputs.eval_tokens import EvalBatches
from extract.sources.suites import LocalSuite

DEFAULT_SIZES = ("14m", "70m", "160m", "410m")
# The mini suite's figure for its largest size (3 layers), docs/performance.md: bf16's median and
# 99th-percentile relative KL error. Printed beside this benchmark's for comparison.
MINI_BF16 = (0.0019, 0.0129)


@dataclass(frozen=True)
class PrecisionError:
    """One precision's pair KLs against the fp32 body's, over every token and ordered seed pair."""

    precision: str
    n_kls: int
    kl_median: float  # of the fp32 KLs: the scale the relative errors are relative to
    median: float  # of |KL_x - KL_fp32| / KL_fp32
    p99: float
    conv_fp32: float  # E[conv] = -mean KL, fp32 body
    conv_shift: float  # E[conv]_x - E[conv]_fp32, nats
    forward_s: float  # the extraction's forward time with this precision (body and fp32 head)

    @property
    def conv_shift_relative(self) -> float:
        return self.conv_shift / abs(self.conv_fp32)


@dataclass(frozen=True)
class SizeErrors:
    """One size: its parameters, the fp32 reference's forward seconds and each precision's error."""

    size: str
    n_params: int
    entropy: float  # mean entropy of the fp32 body's distributions, nats: how far from uniform they are
    reference_s: float
    errors: list[PrecisionError]

    def table_rows(self) -> list[str]:
        return [
            f"| {self.size} | {self.n_params / 1e6:,.0f}M | {e.precision} | {e.n_kls:,} | {self.entropy:.2f} | "
            f"{e.kl_median:.3f} | {e.median:.3%} | {e.p99:.3%} | {e.conv_fp32:.4f} | {e.conv_shift:+.2e} | "
            f"{e.conv_shift_relative:+.4%} | {self.reference_s:.1f} / {e.forward_s:.1f} |"
            for e in self.errors
        ]


def pair_kls(
    suite: LocalSuite,
    size: str,
    batches: EvalBatches,
    unigram: pa.Table,
    precision: str,
    device: torch.device,
    compile: bool,
) -> tuple[np.ndarray, Extraction]:
    """Every ordered seed pair's KL at every token (an fp64 copy of the stored fp32), and the extraction."""
    extractor = Extractor(
        suite,
        batches,
        unigram,
        [],
        tokenizer_vocab=VOCAB,
        eval=EvalConfig(batch_windows=1),
        extraction=ExtractionConfig(dtype=precision, compile=compile),
        device=device,
    )
    result = extractor.extract(size, 0)
    return result.tables["pair_kl"].column("kl").to_numpy().astype(np.float64), result


def compare(precision: str, reference: np.ndarray, other: np.ndarray, forward_s: float) -> PrecisionError:
    relative = np.abs(other - reference) / np.maximum(reference, 1e-12)
    return PrecisionError(
        precision=precision,
        n_kls=len(reference),
        kl_median=float(np.median(reference)),
        median=float(np.median(relative)),
        p99=float(np.quantile(relative, 0.99)),
        conv_fp32=float(-reference.mean()),
        conv_shift=float(-other.mean() + reference.mean()),
        forward_s=forward_s,
    )


def precision_errors(
    suite: LocalSuite,
    size: str,
    precisions: list[str],
    n_tokens: int,
    window: int,
    device: torch.device,
    compile: bool = False,
) -> SizeErrors:
    """Each precision's error against the fp32 body for `size` of `suite`, at step 0.

    "float32" among `precisions` runs the reference again: its error is zero where the extraction
    is deterministic.
    """
    batches, unigram, _ = synthetic_inputs(n_tokens, window, IclConfig())
    reference, exact = pair_kls(suite, size, batches, unigram, "float32", device, compile)
    errors = []
    for precision in precisions:
        kls, result = pair_kls(suite, size, batches, unigram, precision, device, compile)
        errors.append(compare(precision, reference, kls, result.timings_s["forward"]))
    entropy = float(np.mean(exact.tables["token_stats"].column("entropy").to_numpy()))
    return SizeErrors(size, exact.n_params, entropy, exact.timings_s["forward"], errors)


TABLE_HEADER = [
    "| size | parameters | precision | pair-token KLs | mean entropy, fp32 (nats) "
    "| KL scale (median fp32 KL, nats) | relative KL error, median "
    "| relative KL error, p99 | E[conv], fp32 | E[conv] shift (nats) | E[conv] shift (relative) "
    "| forward s, fp32 / this |",
    "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", choices=list(PYTHIA_SIZES), default=list(DEFAULT_SIZES))
    parser.add_argument("--seeds", type=int, default=3, help="random-weight seeds per size (at least 2)")
    parser.add_argument("--tokens", type=int, default=512, help="evaluation tokens per seed")
    parser.add_argument("--window", type=int, default=512, help="tokens per evaluation window")
    parser.add_argument(
        "--precisions",
        nargs="*",
        choices=FORWARD_PRECISIONS,
        help="compared with fp32 (default: bfloat16, and tf32 on a CUDA device); float32 reruns the reference",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the body, as the extraction does")
    parser.add_argument("--device", default=None)
    parser.add_argument("--root", type=Path, default=None, help="scratch folder (default warehouse/bench/precision)")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error("--seeds must be at least 2: the KLs are between seeds")

    device = torch.device(args.device) if args.device else default_device()
    precisions = args.precisions or (["bfloat16", "tf32"] if device.type == "cuda" else ["bfloat16"])
    root = args.root or load_settings().paths.root / "bench" / "precision"
    seeds = list(range(1, args.seeds + 1))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    print("== forward precision: random-weight PolyPythia configurations, vocabulary 50,304 ==")
    print(
        f"device: {name}, torch threads {torch.get_num_threads()}; {len(seeds)} seeds, {args.tokens:,} tokens "
        f"in windows of {args.window}; body {'compiled' if args.compile else 'eager'}; "
        "unembedding, log-softmax and KL fp32 in every run"
    )
    if device.type != "cuda" and not args.precisions:
        print("tf32: skipped, TF32 is a mode of CUDA's matmuls; on this device it is exactly fp32")
    print(
        "KL scale: the KLs are between independent random initialisations (their median is printed); "
        "relative error = |KL_x - KL_fp32| / KL_fp32 over every token and ordered seed pair; "
        f"E[conv] = -mean KL; a uniform distribution's entropy is log {VOCAB:,} = {np.log(VOCAB):.2f} nats"
    )
    print()
    print("\n".join(TABLE_HEADER), flush=True)
    shutil.rmtree(root / "suite", ignore_errors=True)
    started = time.perf_counter()
    try:
        for size in args.sizes:
            suite = write_suite(root / "suite", size, steps=1, seeds=seeds)
            errors = precision_errors(suite, size, precisions, args.tokens, args.window, device, compile=args.compile)
            print("\n".join(errors.table_rows()), flush=True)
            shutil.rmtree(root / "suite", ignore_errors=True)  # 410m: 0.8 GB per seed
    finally:
        shutil.rmtree(root / "suite", ignore_errors=True)
    print(
        f"\nwall {time.perf_counter() - started:.0f} s. For comparison, the mini suite's largest size "
        f"(3 layers, trained): bf16 median {MINI_BF16[0]:.2%}, p99 {MINI_BF16[1]:.2%} (docs/performance.md)"
    )


if __name__ == "__main__":
    main()
