"""What the logit lens and the trajectory KL cost, on the mini suite.

    python -m benchmarks.depth_and_time [--size l] [--device cpu|cuda]

At one checkpoint of one size (its last): the logit lens's seconds per partition for each choice
of `[layers] layers` (the output only, the embeddings and the output, every layer) beside the
partition's forward pass; and the trajectory KL's seconds with its earlier states in the store
(a partition extracted after its predecessor, as a backfill runs them) and without (a partition
run on its own, which loads its previous checkpoint and its anchors again), with the store's
bytes. The lens's device memory per seed and a trajectory state's bytes are then worked out for
PolyPythia's sizes from their configurations (arithmetic, not measured). Nothing is written to
the warehouse's lake; the states go to a scratch store under warehouse/bench/.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import replace

import torch

from benchmarks.extraction import ensure_inputs
from benchmarks.pythia_scale import PYTHIA_SIZES, VOCAB
from extract.config import LayersConfig, load_settings
from extract.engine.extractor import default_device
from extract.measures.layer_lens import LayerLens
from extract.measures.trajectory import StateStore, Trajectory
from extract.pipeline import build_extractor
from extract.sources.suites import open_suite


def scratch_store(settings):
    return settings.paths.root / "bench" / "trajectory-states"


def lens_seconds(settings, suite, size: str, step: int, layers: tuple[int, ...], device) -> tuple[float, float]:
    """(lens seconds, forward seconds) of one partition with the lens at `layers` only."""
    chosen = replace(settings, layers=LayersConfig(layers))
    extractor, _ = build_extractor(chosen, suite, device, measures=[LayerLens])
    extractor.extract(size, step)  # the first run compiles; the second is timed
    result = extractor.extract(size, step)
    return result.timings_s["layer_lens"], result.timings_s["forward"]


def trajectory_seconds(settings, suite, size: str, steps: list[int], device) -> float:
    """The trajectory phase's seconds at the last of `steps`, extracted in one run after the others."""
    root = scratch_store(settings)

    class ScratchTrajectory(Trajectory):
        @classmethod
        def for_suite(cls, context):
            measure = super().for_suite(context)
            measure.store = StateStore(root)
            return measure

    extractor, _ = build_extractor(settings, suite, device, measures=[ScratchTrajectory])
    results = list(extractor.extract_many([(size, step) for step in steps]))
    return results[-1].timings_s["trajectory"]


def store_bytes(settings) -> int:
    return sum(path.stat().st_size for path in scratch_store(settings).rglob("*.safetensors"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default=None, help="mini size (default: the largest)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    args = parser.parse_args(argv)
    settings = load_settings()
    device = torch.device(args.device) if args.device else default_device()
    ensure_inputs(settings)
    suite = open_suite(settings.suite(settings.mini.name))
    size = args.size or settings.mini.sizes[-1].name
    steps = suite.steps(size)
    step = steps[-1]
    depth = next(s.num_layers for s in settings.mini.sizes if s.name == size)
    seeds = len(suite.seeds_at(size, step))
    n_tokens = settings.eval.n_tokens
    print(
        f"== the logit lens and the trajectory KL: mini size {size}, step {step}, {seeds} seeds, {n_tokens} tokens =="
    )

    print("\nlogit lens, per partition (seconds; the second of two runs):")
    print(f"  {'layers':>22}  {'lens':>8}  {'forward':>8}  lens / forward")
    for layers in ((depth,), (0, depth), ()):
        lens, forward = lens_seconds(settings, suite, size, step, layers, device)
        shown = "every layer" if not layers else ", ".join(map(str, layers))
        print(f"  {shown:>22}  {lens:8.3f}  {forward:8.3f}  {lens / forward:6.2f}")

    shutil.rmtree(scratch_store(settings), ignore_errors=True)
    warm = trajectory_seconds(settings, suite, size, steps[-2:], device)
    kept = store_bytes(settings)
    shutil.rmtree(scratch_store(settings), ignore_errors=True)
    cold = trajectory_seconds(settings, suite, size, [step], device)
    anchors = [a for a in settings.trajectory.anchors if a in steps and a < step]
    print(f"\ntrajectory KL at step {step} against step {steps[-2]} and anchors {anchors} (seconds per partition):")
    print(f"  earlier states in the store (a backfill in step order): {warm:.3f}")
    reloaded = len({steps[-2], *anchors})
    print(f"  store empty (the partition run on its own; reloads {reloaded} checkpoints per seed): {cold:.3f}")
    print(f"  store after the in-order run: {kept / 1e6:.2f} MB ({kept / seeds / 1e6:.2f} MB per seed)")
    shutil.rmtree(scratch_store(settings), ignore_errors=True)

    print(f"\nPolyPythia, worked out from the configurations ({n_tokens} tokens, fp32, per seed):")
    print(f"  {'size':>6}  {'lens, every layer':>18}  {'lens, 4 layers':>15}  {'trajectory state':>17}")
    for name, (hidden, layers, _) in PYTHIA_SIZES.items():
        every = (layers + 1) * n_tokens * hidden * 4
        four = 4 * n_tokens * hidden * 4
        state = (n_tokens * hidden + VOCAB * hidden) * 4
        print(f"  {name:>6}  {every / 1e6:15.0f} MB  {four / 1e6:12.0f} MB  {state / 1e6:14.0f} MB")


if __name__ == "__main__":
    main()
