"""Extraction speed on the mini suite, against this machine's own measured limits.

    python -m benchmarks.extraction [--sizes s m l] [--device cpu|cuda]

Extracts every checkpoint of the chosen sizes into a scratch lake (warehouse/bench/, never the
warehouse's own lake) the way the pipeline does, then prints per partition: tokens per second
and where the time went; and per size: the share of wall time spent loading, in the forward
pass, in KL and top-k and writing, checkpoint bytes per second, and the forward pass's FLOP
rate as a fraction of the matmul rate measured here. The mini suite and its evaluation set are
built first if the warehouse lacks them.
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from benchmarks import machine
from extract import pipeline
from extract.config import Settings, load_settings
from extract.engine.extractor import default_device
from extract.pipeline import build_extractor
from extract.registry import suite_table_path
from extract.sources.suites import open_suite

TARGET_LOAD_WRITE_SHARE = 0.25
TARGET_FORWARD_FRACTION = 0.30


def forward_flops_per_token(config, window: int) -> float:
    """Matmul FLOPs of one token's forward pass, Kaplan et al.'s count plus the unembedding.

    2 x non-embedding parameters + 2 n_layer n_ctx d_model for attention + 2 V d_model for the
    logits (the extraction computes every logit).
    """
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    non_embedding = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
    hidden, layers = config.hidden_size, config.num_hidden_layers
    return 2 * non_embedding + 2 * layers * window * hidden + 2 * config.vocab_size * hidden


@dataclass
class SizeRun:
    size: str
    manifests: list[dict]
    wall_s: float
    flops_per_token: float

    def total(self, timing: str) -> float:
        return sum(m["timings_s"].get(timing, 0.0) for m in self.manifests)

    @property
    def loading_s(self) -> float:
        """Loading the compute waited for: blocked on the reader, plus copying into the skeleton."""
        return self.total("read_wait") + self.total("load")

    @property
    def exposed_write_s(self) -> float:
        """Wall time outside partition compute: the writes not hidden behind the next partition."""
        return max(self.wall_s - self.total("compute"), 0.0)

    def forward_flops(self) -> float:
        computed = sum(len({c["weights"] for c in m["checkpoints"]}) for m in self.manifests)
        return self.flops_per_token * self.manifests[0]["n_tokens"] * computed


def scratch_lake(settings: Settings):
    return settings.paths.root / "bench" / "extraction-lake"


def ensure_inputs(settings: Settings) -> None:
    lake = settings.paths.lake
    name = settings.mini.name
    if not open_suite(settings.suite(name)).partitions():
        print("training the mini suite first (make demo does this too) ...", flush=True)
        pipeline.train_mini_suite(settings, log=lambda message: None)
    if not all(suite_table_path(lake, table, name).exists() for table in ("icl_sequences", "loglik_texts")):
        pipeline.build_eval_set(settings, name)


def run_size(settings: Settings, size: str, device: torch.device) -> SizeRun:
    suite_name = settings.mini.name
    suite = open_suite(settings.suite(suite_name))
    out = scratch_lake(settings)
    shutil.rmtree(out, ignore_errors=True)
    partitions = [(size, step) for step in suite.steps(size)]
    config = AutoConfig.from_pretrained(suite.checkpoint(size, suite.seeds(size)[0], 0).source)
    started = time.perf_counter()
    manifests = list(pipeline.extract_checkpoints(settings, suite_name, partitions, device, output_lake=out))
    wall = time.perf_counter() - started
    quarantined = [m["reason"] for m in manifests if "quarantined" in m]
    if quarantined:  # timings of a suite with broken checkpoints would measure the wrong thing
        raise SystemExit("\n".join(quarantined))
    return SizeRun(size, manifests, wall, forward_flops_per_token(config, settings.eval.window))


def print_partitions(run: SizeRun) -> None:
    print(f"\nsize {run.size}: per partition (seconds; tokens/s = evaluation tokens x every seed / compute)")
    header = ("step", "tokens/s", "compute", "read_wait", "load", "forward", "kl+topk", "icl", "write*")
    print("  ".join(f"{h:>9}" for h in header))
    for m in run.manifests:
        t = m["timings_s"]
        tokens = m["n_tokens"] * len(m["seeds"])
        values = (t["compute"], t["read_wait"], t["load"], t["forward"], t["statistics"], t["icl"], t["write"])
        print(f"{m['step']:>9}  {tokens / t['compute']:>9,.0f}  " + "  ".join(f"{v:>9.3f}" for v in values))
    print("  * written on a background thread while the next partition computes")


def print_summary(run: SizeRun, limits: machine.MachineLimits, forward_dtype: str) -> dict[str, float]:
    wall = run.wall_s
    m0 = run.manifests[0]
    tokens = sum(m["n_tokens"] * len(m["seeds"]) for m in run.manifests)
    shares = {
        "loading (waited on reads + copy into skeleton)": run.loading_s / wall,
        "forward pass (body + fp32 unembedding)": run.total("forward") / wall,
        "KL and top-k statistics": run.total("statistics") / wall,
        "ICL score": run.total("icl") / wall,
        "log-likelihood vector": run.total("loglik") / wall,
        "activation fingerprint": run.total("fingerprint") / wall,
        "BLiMP scores": run.total("blimp") / wall,
        "weight statistics and sketch": run.total("weights") / wall,
        "logit lens, layer by layer": run.total("layer_lens") / wall,
        "trajectory KL": run.total("trajectory") / wall,
        "writing not hidden behind compute": run.exposed_write_s / wall,
    }
    read_rate = sum(m["checkpoint_bytes"] for m in run.manifests) / max(run.total("read"), 1e-9)
    forward_rate = run.forward_flops() / max(run.total("forward"), 1e-9)
    # The first partition compiles the body (a one-off per size); the rest show the forward pass.
    steady = SizeRun(run.size, run.manifests[1:], wall, run.flops_per_token)
    steady_rate = steady.forward_flops() / max(steady.total("forward"), 1e-9) if steady.manifests else forward_rate
    peak = limits.matmul_flops.get(forward_dtype, limits.matmul_flops["float32"])
    print(
        f"\nsize {run.size}: {len(run.manifests)} partitions x {len(m0['seeds'])} seeds x {m0['n_tokens']} tokens, "
        f"{m0['n_params']:,} parameters, forward in {forward_dtype}"
    )
    print(f"  wall {wall:.2f} s, {tokens / wall:,.0f} token-seeds/s overall")
    for name, share in shares.items():
        print(f"  {share:6.1%}  {name}")
    print(f"  background: reads {run.total('read') / wall:.1%} of wall, writes {run.total('write') / wall:.1%}")
    pair_tokens = sum(m["n_tokens"] * m["n_pairs"] for m in run.manifests)
    exact = sum(m["pair_kl_exact"] for m in run.manifests)
    print(
        f"  pair KLs recomputed by the exact per-pair path: {exact:,} of {pair_tokens:,} ({exact / pair_tokens:.3%}; "
        f"by step: {', '.join(str(m['pair_kl_exact']) for m in run.manifests)})"
    )
    print(
        f"  checkpoint bytes/s (reader): {read_rate / 1e6:,.1f} MB/s = "
        f"{read_rate / limits.disk_read_bytes_per_s:.1%} of cold disk read"
    )
    print(
        f"  forward: {run.flops_per_token / 1e6:.2f} MFLOP/token, {forward_rate / 1e9:,.2f} GFLOP/s = "
        f"{forward_rate / peak:.1%} of measured {forward_dtype} matmul over every partition "
        f"(the first compiles); {steady_rate / 1e9:,.2f} GFLOP/s = {steady_rate / peak:.1%} after it"
    )
    return {
        "load_write_share": (run.loading_s + run.exposed_write_s) / wall,
        "forward_fraction": steady_rate / peak,
    }


def bf16_error(settings: Settings, size: str, step: int) -> None:
    """How far a bf16 transformer body moves the stored KLs, on one partition."""
    suite = open_suite(settings.suite(settings.mini.name))
    kl = {}
    for dtype in ("float32", "bfloat16"):
        chosen = replace(settings, extraction=replace(settings.extraction, dtype=dtype))
        extractor, _ = build_extractor(chosen, suite, torch.device("cpu"), measures=[])
        kl[dtype] = extractor.extract(size, step).tables["pair_kl"].column("kl").to_numpy().astype(np.float64)
    relative = np.abs(kl["bfloat16"] - kl["float32"]) / np.maximum(kl["float32"], 1e-12)
    conv_shift = abs(kl["bfloat16"].mean() - kl["float32"].mean())
    print(
        f"\nbf16 body vs fp32 (size {size}, step {step}, {len(relative):,} pair-token KLs): relative KL error "
        f"median {np.median(relative):.2%}, 99th percentile {np.quantile(relative, 0.99):.2%}; "
        f"E[conv] moves by {conv_shift:.2e} nats (of {kl['float32'].mean():.3f})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", help="mini sizes to run (default: all)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--no-bf16-check", action="store_true", help="skip the bf16-versus-fp32 comparison")
    args = parser.parse_args(argv)

    settings = load_settings()
    device = torch.device(args.device) if args.device else default_device()
    ensure_inputs(settings)
    limits = machine.measure(device, settings.paths.root / "bench")
    print("== extraction benchmark: mini suite ==")
    print("\n".join(machine.describe(limits)))

    sizes = args.sizes or [size.name for size in settings.mini.sizes]
    results = {}
    for size in sizes:
        run = run_size(settings, size, device)
        print_partitions(run)
        results[size] = print_summary(run, limits, run.manifests[0]["forward_dtype"])
    shutil.rmtree(scratch_lake(settings), ignore_errors=True)

    largest = sizes[-1]
    print("\ntargets (mini suite, this machine):")
    share = max(r["load_write_share"] for r in results.values())
    print(
        f"  loading + writing <= {TARGET_LOAD_WRITE_SHARE:.0%} of wall: worst size {share:.1%} "
        f"[{'met' if share <= TARGET_LOAD_WRITE_SHARE else 'MISSED'}]"
    )
    fraction = results[largest]["forward_fraction"]
    print(
        f"  forward >= {TARGET_FORWARD_FRACTION:.0%} of measured matmul at the largest size ({largest}, "
        "once compiled): "
        f"{fraction:.1%} [{'met' if fraction >= TARGET_FORWARD_FRACTION else 'MISSED'}]"
    )
    if not args.no_bf16_check:
        suite = open_suite(settings.suite(settings.mini.name))
        bf16_error(settings, largest, suite.steps(largest)[-1])


if __name__ == "__main__":
    main()
