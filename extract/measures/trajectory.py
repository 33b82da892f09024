"""Exact KL along each seed's training trajectory.

Kishino et al. estimate how far a model moves between checkpoints from log-likelihood vectors and
fit diffusion exponents to that estimate. Here the same movement is measured exactly, per token:
for each seed, its next-token distribution at this checkpoint t against the seed's own at an
earlier checkpoint e, in both directions,

    kl_later_earlier = KL(p_t || p_e),    kl_earlier_later = KL(p_e || p_t),

from fp32 logits, for e = the seed's checkpoint just before t (its consecutive movement) and every
configured anchor step before t (`[trajectory] anchors`; the diffusion exponents are fitted from
each anchor, analysis/trajectory.py).

What is kept of an earlier checkpoint is small: its states at the evaluation tokens [N, H] and
its fp32 output embedding [V, H] (`SeedState`), not its distributions [N, V]. Each seed's state is
written to a store under the warehouse's cache when its partition is extracted, so a later
partition reads its predecessor's from there. A partition run on its own, whose earlier states
the store lacks, loads those checkpoints into the model skeleton and runs them on the evaluation
tokens again, and stores them. Because that refills the skeleton, this measure runs after every
other measure that reads the loaded model (its place in extract/measures/__init__.py).

An earlier checkpoint whose model gives NaN or infinite outputs (its own partition was
quarantined) is left out of the comparison: no rows, while this checkpoint's are stored as usual
(the engine quarantines a checkpoint for its own non-finite outputs, never for an earlier one's).

The store keeps a seed's anchor states and the state of its latest extracted checkpoint; an earlier
one is deleted once a later checkpoint has been compared with it, so in step order the store holds
at most (anchors + 1) states per seed and size. A store entry is keyed by the evaluation set's hash, so
changing the evaluation tokens starts a new one.

Workers extracting neighbouring ranges of a seed at once (docs/distributed.md) share the store:
each entry is written atomically, and one another worker pruned is recomputed from its
checkpoint like any missing entry. The rows are the same; what changes is the cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from safetensors.torch import load_file, save_file

from extract.engine.skeleton import Head
from extract.inputs.eval_tokens import EVAL_TOKENS, eval_set_hash
from extract.lake.atomic_writes import replaced_atomically
from extract.lake.tables import PARTITION, LakeTable
from extract.measures.base import Measure, SeedModel, SuiteContext
from extract.measures.token_distributions import kl_both_ways
from extract.sources.suites import Suite

TRAJECTORY_KL_SCHEMA = pa.schema(
    [
        ("seed", pa.int32()),
        ("from_step", pa.int32()),
        ("position", pa.int32()),
        ("kl_later_earlier", pa.float32()),
        ("kl_earlier_later", pa.float32()),
    ]
)
TRAJECTORY_KL = LakeTable(
    "trajectory_kl",
    TRAJECTORY_KL_SCHEMA,
    PARTITION,
    "Per seed, earlier step and token: exact KL(p_t || p_from) and KL(p_from || p_t) of the seed's own checkpoints.",
)


@dataclass
class SeedState:
    """What is kept of one checkpoint of one seed: enough to recompute its distributions exactly."""

    hidden: torch.Tensor  # [N, H] what the output embedding is applied to, at the evaluation tokens
    head: Head  # fp32 output embedding (and bias)


# At most this many tokens per chunk (on a CPU, more only spill the cache: measured 3.0 s at 1,024
# rows against 3.7 s at 256 and 4.4 s at 5,000, for 5 comparisons of 5,000 tokens at V = 2,048);
# fewer where `chunk_bytes` says so: five float64 vocabulary-sized rows per token are alive at once.
KL_ROWS = 1024
_ROWS_ALIVE = 5


def kl_rows(vocab: int, chunk_bytes: int) -> int:
    return max(1, min(KL_ROWS, chunk_bytes // (_ROWS_ALIVE * vocab * 8)))


def directed_kls(
    later: SeedState,
    earlier: list[SeedState],
    rows: int = KL_ROWS,
    both_ways: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = kl_both_ways,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per earlier state: (KL(p_later || p_earlier), KL(p_earlier || p_later)) per token, exact.

    Each distribution is the softmax of its fp32 logits; the log-probabilities are taken in
    float64, where sum p (log p - log q) keeps its digits at the smallest KLs between neighbouring
    checkpoints (in fp32 the terms of size |log p| would cancel to noise). The later checkpoint's
    log-probabilities are computed once per chunk for every earlier state (measured faster than
    the engine's reference-distribution pair KL, `pairwise_kl`, which pays for S x S pairs when
    only S - 1 are wanted). `both_ways` is `kl_both_ways` or its compiled form (the engine's
    kernels); every chunk has `rows` rows (the last one padded with zeros and dropped), so a
    compiled form is compiled once.
    """
    n, vocab = later.hidden.shape[0], later.head.vocab
    for state in earlier:
        if state.hidden.shape[0] != n or state.head.vocab != vocab:
            raise ValueError(
                f"states of different shapes: {n} tokens x {vocab} ids against "
                f"{state.hidden.shape[0]} x {state.head.vocab}"
            )
    out = [(np.empty(n), np.empty(n)) for _ in earlier]
    rows = min(rows, n)
    with torch.inference_mode():
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            log_p = torch.log_softmax(later.head.logits(_padded(later.hidden[start:stop], rows)).double(), dim=-1)
            for state, (forward, backward) in zip(earlier, out, strict=True):
                logits_q = state.head.logits(_padded(state.hidden[start:stop], rows))
                ahead, behind = both_ways(log_p, logits_q)
                forward[start:stop] = ahead[: stop - start].cpu().numpy()
                backward[start:stop] = behind[: stop - start].cpu().numpy()
    return [(forward.astype(np.float32), backward.astype(np.float32)) for forward, backward in out]


def _padded(hidden: torch.Tensor, rows: int) -> torch.Tensor:
    """`hidden` with zero rows appended up to `rows`."""
    if hidden.shape[0] == rows:
        return hidden
    return torch.cat([hidden, hidden.new_zeros(rows - hidden.shape[0], *hidden.shape[1:])])


class StateStore:
    """Seed states on disk: <root>/size=<size>/seed=<seed>/step=<step>.safetensors."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, size: str, seed: int, step: int) -> Path:
        return self.root / f"size={size}" / f"seed={seed}" / f"step={step}.safetensors"

    def load(self, size: str, seed: int, step: int, device: torch.device) -> SeedState | None:
        try:
            tensors = load_file(self.path(size, seed, step), device=str(device))
        except FileNotFoundError:  # never stored, or pruned by a worker extracting a later range
            return None
        return SeedState(tensors["hidden"], Head(tensors["weight"], tensors.get("bias")))

    def save(self, size: str, seed: int, step: int, state: SeedState) -> None:
        tensors = {"hidden": state.hidden.float(), "weight": state.head.weight}
        if state.head.bias is not None:
            tensors["bias"] = state.head.bias
        path = self.path(size, seed, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path) as staging:
            save_file({name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()}, staging)

    def steps(self, size: str, seed: int) -> list[int]:
        folder = self.path(size, seed, 0).parent
        return sorted(int(path.stem.removeprefix("step=")) for path in folder.glob("step=*.safetensors"))

    def prune(self, size: str, seed: int, keep: set[int], before: int) -> None:
        """Deletes the seed's states of steps below `before` that are not in `keep`."""
        for step in self.steps(size, seed):
            if step < before and step not in keep:
                self.path(size, seed, step).unlink(missing_ok=True)


def earlier_steps(seed_steps: list[int], step: int, anchors: tuple[int, ...]) -> list[int]:
    """The steps a checkpoint is compared with: the seed's one before it and its anchors before it."""
    before = [s for s in seed_steps if s < step]
    chosen = {before[-1]} if before else set()
    chosen |= {anchor for anchor in anchors if anchor < step and anchor in seed_steps}
    return sorted(chosen)


@dataclass
class SeedTrajectory:
    positions: np.ndarray
    kls: dict[int, tuple[np.ndarray, np.ndarray]]  # earlier step -> (KL(t || e), KL(e || t)) per token


class Trajectory(Measure):
    """Each seed's exact KL to its previous checkpoint and to its anchor checkpoints."""

    tables = (TRAJECTORY_KL,)
    phase = "trajectory"

    def __init__(self, suite: Suite, anchors: tuple[int, ...], store: StateStore, chunk_bytes: int):
        self.suite = suite
        self.anchors = anchors
        self.store = store
        self.chunk_bytes = chunk_bytes

    @classmethod
    def for_suite(cls, context: SuiteContext) -> Trajectory:
        eval_hash = eval_set_hash(context.read(EVAL_TOKENS))[:16]
        root = context.settings.paths.cache / "trajectory_states" / f"suite={context.suite.name}" / eval_hash
        settings = context.settings
        return cls(context.suite, settings.trajectory.anchors, StateStore(root), settings.extraction.chunk_bytes)

    def measure_seed(self, model: SeedModel) -> SeedTrajectory:
        checkpoint = model.checkpoint
        size, seed, step = checkpoint.size, checkpoint.seed, checkpoint.step
        own = SeedState(model.eval_hidden, model.head)
        seed_steps = self.suite.seed_steps(size, seed)
        earlier = earlier_steps(seed_steps, step, self.anchors)
        # The own state first: loading an earlier checkpoint below refills the skeleton, not `own`.
        self.store.save(size, seed, step, own)
        states = [self.store.load(size, seed, e, model.device) or self._recompute(model, e) for e in earlier]
        kls = {}
        rows = kl_rows(own.head.vocab, self.chunk_bytes)
        kls_of = directed_kls(own, states, rows, model.kernels.kl_both_ways)
        for from_step, (later_earlier, earlier_later) in zip(earlier, kls_of, strict=True):
            # A diverged earlier checkpoint (quarantined when its own partition ran) has no
            # distribution to compare with: no rows for it, and this checkpoint is stored as usual.
            if np.isfinite(later_earlier).all() and np.isfinite(earlier_later).all():
                kls[from_step] = (later_earlier, earlier_later)
        self.store.prune(size, seed, keep={*self.anchors, step}, before=step)
        return SeedTrajectory(model.positions, kls)

    def _recompute(self, model: SeedModel, step: int) -> SeedState:
        """The seed's state at `step` from its checkpoint, run again; stored for next time."""
        checkpoint = self.suite.checkpoint(model.checkpoint.size, model.checkpoint.seed, step)
        weights = self.suite.read_weights(checkpoint)
        head = model.skeleton.load(weights)
        with torch.inference_mode():
            state = SeedState(model.eval_states(None), head)
            finite = bool(torch.isfinite(state.hidden).all()) and head.is_finite()
        if finite:
            self.store.save(checkpoint.size, checkpoint.seed, step, state)
        return state

    def partition_tables(self, per_seed: dict[int, SeedTrajectory]) -> dict[str, pa.Table]:
        columns: dict[str, list[np.ndarray]] = {name: [] for name in TRAJECTORY_KL_SCHEMA.names}
        for seed, trajectory in per_seed.items():
            positions = trajectory.positions.astype(np.int32)
            for from_step, (later_earlier, earlier_later) in sorted(trajectory.kls.items()):
                columns["seed"].append(np.full(len(positions), seed, dtype=np.int32))
                columns["from_step"].append(np.full(len(positions), from_step, dtype=np.int32))
                columns["position"].append(positions)
                columns["kl_later_earlier"].append(later_earlier)
                columns["kl_earlier_later"].append(earlier_later)
        if not columns["seed"]:
            return {TRAJECTORY_KL.name: TRAJECTORY_KL.empty()}
        table = {name: np.concatenate(parts) for name, parts in columns.items()}
        return {TRAJECTORY_KL.name: pa.table(table, schema=TRAJECTORY_KL_SCHEMA)}

    def identity(self) -> dict:
        return {"trajectory_anchors": list(self.anchors)}
