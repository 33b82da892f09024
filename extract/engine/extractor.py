"""Extraction partitions: every seed of a (suite, size, step) on the evaluation tokens.

A partition runs in two phases, so that only one model's activations and one chunk of
vocabulary-sized tensors are ever on the device:

1. Per seed, in turn: the checkpoint (read ahead on a background thread while the previous seed
   computes) is copied into a model skeleton kept on the device, the transformer body runs over
   every evaluation window, and its last hidden states [N, H] are kept. Each measure of
   extract/measures/ (the ICL score, the activation fingerprint, the log-likelihood vector, the
   BLiMP sentence scores, the weight statistics, the logit lens, the trajectory KL) takes what it
   keeps of the seed here, given those states and `Extractor.eval_states` to run the evaluation
   pass again (through the logit lens, or on other weights). A seed whose
   weights hash equals an earlier seed's reuses that seed's model outputs. A masked LM runs every
   target's masked copy of its window instead (extract/inputs/eval_tokens.py, `MaskedEvalBatches`)
   and keeps the hidden state at the masked position; only the measures whose tables a masked
   suite has are run on it.
2. Per chunk of tokens: every seed's fp32 logits are computed from its hidden states and its fp32
   output embedding, and the per-token statistics and the exact pairwise KLs are taken from them
   on the device. The chunk's rows are sized so that vocabulary-sized tensors stay under
   `chunk_bytes`, whatever the number of seeds, the vocabulary or the number of tokens.

Only scalars and the top-k leave the device. `Extractor.extract_many` runs a sequence of
partitions with one reader and one set of skeletons, so loading overlaps computing across
partition boundaries too.

A partition compares the seeds that have a checkpoint at its step (`Suite.seeds_at`); a seed
missing there (a revision never published) is left out and named in the `Extraction`, as is one
the Hub turns out not to have when it is read (`CheckpointMissing`). Fewer than two seeds left is
an `ExtractionError` naming the partition and the missing seeds; a seed that has neither the
checkpoint nor a later one (a run still training) is a `SuiteUnavailable` naming its checkpoint,
since the partition must wait for it.

A seed whose model gives NaN or infinite numbers (output-embedding weights, activations, logits,
or the probes' scores) makes its partition a `Quarantine` instead of an `Extraction`: the reasons,
seed by seed, and nothing to write. A diverged training run is a fact about the checkpoint, not a
fault of the run, so the partitions after it in a range are extracted as usual.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from extract.config import EvalConfig, ExtractionConfig
from extract.engine.prefetch import Prefetcher
from extract.engine.skeleton import Head, Skeleton, architecture_key, forward_precision
from extract.inputs.eval_tokens import EvalBatches, EvalSetError, MaskedEvalBatches
from extract.measures.base import ExtractionError, Measure, NonFiniteOutputs, SeedModel
from extract.measures.token_distributions import (
    PAIR_KL,
    SCALAR_STATISTICS,
    TOKEN_STATS,
    StatisticsKernels,
    pair_divergences,
    pair_kl_table,
    token_stats_table,
    unigram_log_probs,
)
from extract.sources.checkpoint_reader import CheckpointWeights
from extract.sources.suites import MIN_SEEDS, Checkpoint, CheckpointMissing, Suite, SuiteUnavailable, objective_of

__all__ = [
    "Extraction",
    "ExtractionError",
    "Extractor",
    "NonFiniteOutputs",
    "Quarantine",
    "chunk_shape",
    "default_device",
]

# fp32 vocabulary-sized rows alive at once: per seed, its block of logits; per seed and kernel
# row, the logits and the two reference terms (extract/measures/token_distributions.py); per
# kernel row, the reference's logits and probabilities and one temporary.
_KERNEL_ROWS_PER_SEED, _KERNEL_ROWS_EXTRA = 3, 3
# The phases every manifest's timings_s has, besides each measure's.
_ENGINE_PHASES = ("read_wait", "load", "forward", "statistics", "read")


@dataclass(frozen=True)
class Quarantine:
    """A partition that is not written because some seed's model gives NaN or infinite outputs."""

    suite: str
    size: str
    step: int
    reasons: dict[int, str]  # seed -> what is not finite, naming its checkpoint
    checkpoints: list[dict]  # seed, source, weights digest, bytes read

    def describe(self) -> str:
        return f"{self.suite}|{self.size}|step{self.step} is quarantined: " + "; ".join(
            f"seed {seed}: {reason}" for seed, reason in sorted(self.reasons.items())
        )


@dataclass
class Extraction:
    """One partition's tables, by lake table name, and what the manifest records of its run."""

    suite: str
    size: str
    step: int
    tables: dict[str, pa.Table]  # token_stats, pair_kl and each measure's tables
    n_params: int
    checkpoints: list[dict]  # seed, source, weights digest, bytes read
    timings_s: dict[str, float]
    forward_dtype: str
    n_tokens: int
    checkpoint_bytes: int
    objective: str
    seeds: list[int] = field(default_factory=list)  # the seeds compared, in order
    missing: dict[int, str] = field(default_factory=dict)  # seed -> why it has no checkpoint here
    # (ordered pair, token) KLs recomputed by the exact per-pair path (pair_divergences)
    exact_pair_kl: int = 0

    @property
    def n_pairs(self) -> int:
        """Ordered pairs of distinct seeds, the rows of pair_kl per token."""
        return len(self.seeds) * (len(self.seeds) - 1)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def chunk_shape(n_seeds: int, vocab: int, chunk_bytes: int, kernel_bytes: int) -> tuple[int, int]:
    """(block, kernel) token rows: the logits of `block` tokens per seed are computed at once, and
    the statistics kernels take `kernel` of them at a time; `block` is a multiple of `kernel`.

    Everything vocabulary-sized fits `chunk_bytes`, and a kernel's working set `kernel_bytes`.
    """
    row = vocab * 4
    kernel_row = (_KERNEL_ROWS_PER_SEED * n_seeds + _KERNEL_ROWS_EXTRA) * row
    kernel = max(1, min(chunk_bytes, kernel_bytes) // kernel_row)
    # The block's logits beyond the kernel's own rows, in what the kernel leaves of the budget.
    spare = chunk_bytes - kernel * kernel_row
    block = kernel + max(0, spare // (n_seeds * row)) // kernel * kernel
    return block, kernel


def _kernel_budget(device: torch.device, chunk_bytes: int) -> int:
    """Bytes one statistics kernel call may use: on a GPU the whole chunk; on a CPU the last-level
    cache, so that the kernels' passes over their rows read the cache instead of memory (measured
    on a 32 MiB cache with 5 seeds: 9 rows per call beat 4 and 18)."""
    if device.type != "cpu":
        return chunk_bytes
    return last_level_cache_bytes()


def last_level_cache_bytes() -> int:
    """The CPU's largest cache, from sysfs (Linux); 32 MiB where it cannot be read."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes, default=32 << 20)


@dataclass
class _SeedResult:
    """Phase 1's output for one seed: on the device, and what each model measure kept."""

    hidden: torch.Tensor  # [N, H] what the output embedding is applied to, forward dtype
    head: Head  # fp32 output embedding
    measured: dict[type[Measure], object]


class Extractor:
    """Extracts partitions of one suite on one evaluation set, keeping skeletons and reading ahead.

    Built from the settings (`extract.pipeline.build_extractor` reads the suite's inputs from the
    lake): `eval` says how many tokens go through the body at once and how many top-k ids are
    kept, `extraction` how the device is used.
    """

    def __init__(
        self,
        suite: Suite,
        batches: EvalBatches | MaskedEvalBatches,
        unigram_counts: pa.Table,
        measures: Sequence[Measure],
        tokenizer_vocab: int,
        eval: EvalConfig,
        extraction: ExtractionConfig,
        device: torch.device,
    ):
        if int(batches.targets.max()) >= tokenizer_vocab:
            raise EvalSetError("evaluation tokens hold ids outside the tokenizer's vocabulary: rebuild eval_tokens")
        self.suite = suite
        self.objective = suite.objective
        self.masked = isinstance(batches, MaskedEvalBatches)
        if self.masked != (self.objective == "masked"):
            raise EvalSetError(f"suite {suite.name!r} is a {self.objective} LM; its evaluation batches are not")
        for measure in measures:
            if not measure.applies_to(self.objective):
                raise ExtractionError(f"{type(measure).__name__} does not apply to {self.objective} LMs")
        self.batches = batches
        self.measures = list(measures)
        self.tokenizer_vocab = tokenizer_vocab
        self.top_k = eval.top_k
        self.windows_per_batch = eval.batch_masked if self.masked else eval.batch_windows
        self.device = device
        self.precision = forward_precision(extraction.dtype)
        self.chunk_bytes = extraction.chunk_bytes
        self.prefetch = extraction.prefetch
        self.compile = extraction.compile
        self.kernels = StatisticsKernels(extraction.compile)
        self._skeletons: dict[str, Skeleton] = {}
        self._unigram_counts = unigram_counts

        if self.masked:
            self.positions = batches.positions  # masked copies come in position order
            self._targets = batches.targets
            return
        keep = batches.position.reshape(-1) >= 0
        self._keep = keep
        position = batches.position.reshape(-1)[keep].numpy()
        # Rows go out sorted by position; `_order` maps that order onto the flattened windows.
        self._order = np.argsort(position, kind="stable")
        self.positions = position[self._order].astype(np.int32)
        self._targets = batches.targets.reshape(-1)[keep][torch.from_numpy(self._order)]

    # -- public ---------------------------------------------------------------------------------

    def extract(self, size: str, step: int) -> Extraction:
        """One partition; NonFiniteOutputs if a seed's model gives NaN or infinite outputs."""
        result = next(iter(self.extract_many([(size, step)])))
        if isinstance(result, Quarantine):
            raise NonFiniteOutputs(result.describe())
        return result

    def extract_many(self, partitions: Iterable[tuple[str, int]]) -> Iterator[Extraction | Quarantine]:
        """Extracts each (size, step) in turn; the reader runs ahead across partition boundaries.

        A partition where some seed's model gives NaN or infinite outputs comes out as a
        Quarantine, and the next partition follows as usual."""
        plans = {}
        for size, step in partitions:
            seeds, missing = self.suite.seeds_at(size, step), self.suite.missing_at(size, step)
            self._check_complete(size, step, seeds, missing)
            self._check_enough_seeds(size, step, seeds, missing)
            plans[size, step] = seeds, missing
        checkpoints = [
            self.suite.checkpoint(size, seed, step) for (size, step), (seeds, _) in plans.items() for seed in seeds
        ]
        reads = iter(Prefetcher(checkpoints, self._read, depth=self.prefetch))
        for (size, step), (seeds, missing) in plans.items():
            yield self._extract_partition(size, step, seeds, dict(missing), reads)

    def _read(self, checkpoint: Checkpoint) -> CheckpointWeights | CheckpointMissing:
        """The checkpoint's weights, or the reason it does not exist: a missing seed leaves the
        partition to the others, so it is a value here, not an error that would end the reader."""
        try:
            return self.suite.read_weights(checkpoint)
        except CheckpointMissing as missing:
            return missing

    def _check_complete(self, size: str, step: int, seeds: list[int], missing: dict[int, str]) -> None:
        """A seed with neither this checkpoint nor a later one may still be writing it: the
        partition waits for it rather than being stored without it."""
        waiting = [seed for seed in self.suite.seeds(size) if seed not in seeds and seed not in missing]
        if waiting:
            sources = ", ".join(self.suite.checkpoint(size, seed, step).source for seed in waiting)
            raise SuiteUnavailable(
                f"{sources} is missing, and the run has no later checkpoint (still training?): "
                f"{self.suite.name}|{size}|step{step} is extracted once every seed has the step or has gone past it"
            )

    def _check_enough_seeds(self, size: str, step: int, seeds: list[int], missing: dict[int, str]) -> None:
        if len(seeds) >= MIN_SEEDS:
            return
        have = f"only seed {seeds[0]} has" if seeds else "no seed has"
        reasons = "; ".join(f"seed {seed}: {reason}" for seed, reason in sorted(missing.items()))
        raise ExtractionError(
            f"{self.suite.name}|{size}|step{step}: {have} a checkpoint, and comparing seeds needs {MIN_SEEDS}"
            + (f" (missing: {reasons})" if reasons else "")
        )

    # -- phase 1: one seed at a time ------------------------------------------------------------

    def _extract_partition(
        self,
        size: str,
        step: int,
        planned: list[int],
        missing: dict[int, str],
        reads: Iterator[CheckpointWeights | CheckpointMissing],
    ) -> Extraction | Quarantine:
        timings = dict.fromkeys(_ENGINE_PHASES, 0.0)
        timings.update(dict.fromkeys((measure.phase for measure in self.measures), 0.0))
        seeds = []  # those that have their checkpoint, as they are read
        results: dict[int, _SeedResult] = {}
        from_weights: dict[int, dict[type[Measure], object]] = {}  # seed -> what the weights measures kept
        problems: dict[int, str] = {}  # seed -> what its model gives that is not finite
        by_digest: dict[str, int] = {}
        provenance, n_bytes, skeleton = [], 0, None
        for seed in planned:
            checkpoint = self.suite.checkpoint(size, seed, step)
            tick = time.perf_counter()
            weights = next(reads)
            timings["read_wait"] += time.perf_counter() - tick
            if isinstance(weights, CheckpointMissing):
                missing[seed] = str(weights)
                continue
            seeds.append(seed)
            timings["read"] += weights.read_s
            assert weights.source == checkpoint.source, "the reader's order must follow the partitions'"
            provenance.append(
                {"seed": seed, "source": checkpoint.source, "weights": weights.digest, "bytes": weights.n_bytes}
            )
            n_bytes += weights.n_bytes
            unloaded = SeedModel(
                checkpoint, weights, None, None, self.device, self.masked, self.kernels, self.chunk_bytes
            )
            from_weights[seed] = {
                type(measure): self._timed(measure, unloaded, timings)
                for measure in self.measures
                if not measure.needs_model
            }
            if weights.digest in by_digest:
                # Identical weights give identical distributions: computed once.
                results[seed] = results[by_digest[weights.digest]]
                continue
            if objective_of(weights.config) != self.objective:
                raise ExtractionError(
                    f"{checkpoint.source}: a {objective_of(weights.config)} LM in suite {self.suite.name!r}, "
                    f"whose models are {self.objective} LMs"
                )
            skeleton = self._skeleton(weights)
            try:
                results[seed] = self._run_seed(skeleton, weights, checkpoint, timings)
            except NonFiniteOutputs as error:
                # The other seeds still run: the quarantine names every seed that is not finite,
                # and the reader's queue stays in step with the partitions.
                problems[seed] = str(error)
                continue
            by_digest[weights.digest] = seed
            del weights
        if problems:
            return Quarantine(self.suite.name, size, step, problems, provenance)
        self._check_enough_seeds(size, step, seeds, missing)
        vocab = self._check_vocabularies(results, size, step)

        token_stats, pair_kl, not_finite, exact_pair_kl = self._statistics(seeds, results, vocab, timings)
        if not_finite:
            n = len(self.positions)
            reasons = {
                seed: f"{self.suite.checkpoint(size, seed, step).source}: NaN or infinite logits at {count} of {n} "
                "evaluation tokens"
                for seed, count in not_finite.items()
            }
            return Quarantine(self.suite.name, size, step, reasons, provenance)
        tables = {TOKEN_STATS.name: token_stats, PAIR_KL.name: pair_kl}
        for measure in self.measures:
            kept = from_weights if not measure.needs_model else {s: results[s].measured for s in seeds}
            # A measure's tables count in its phase: the logit lens's cross-seed KLs are computed here.
            tick = time.perf_counter()
            tables.update(measure.partition_tables({seed: kept[seed][type(measure)] for seed in seeds}))
            timings[measure.phase] += time.perf_counter() - tick
        return Extraction(
            suite=self.suite.name,
            size=size,
            step=step,
            tables=tables,
            n_params=sum(p.numel() for p in skeleton.model.parameters()) if skeleton else 0,
            checkpoints=provenance,
            timings_s=timings,
            forward_dtype=self.precision.name,
            n_tokens=len(self.positions),
            checkpoint_bytes=n_bytes,
            objective=self.objective,
            seeds=seeds,
            missing=dict(sorted(missing.items())),
            exact_pair_kl=exact_pair_kl,
        )

    def _timed(self, measure: Measure, model: SeedModel, timings: dict[str, float]) -> object:
        tick = time.perf_counter()
        try:
            return measure.measure_seed(model)
        finally:
            self._sync()
            timings[measure.phase] += time.perf_counter() - tick

    def _skeleton(self, weights: CheckpointWeights) -> Skeleton:
        key = architecture_key(weights.config)
        if key not in self._skeletons:
            self._check_context(weights)
            self._skeletons[key] = Skeleton(
                weights.config, self.device, self.precision, compile=self.compile, objective=self.objective
            )
        return self._skeletons[key]

    def _check_context(self, weights: CheckpointWeights) -> None:
        """An evaluation window must fit the model's positions (BOS or [CLS] and [SEP] included)."""
        config = weights.config
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        length = (self.batches.windows if self.masked else self.batches.input_ids).shape[1]
        if limit and length > limit:
            raise EvalSetError(
                f"the evaluation windows are {length} tokens long but {weights.source} reads at most {limit}: "
                f"lower eval.{'masked_window' if self.masked else 'window'} and rebuild the eval set"
            )

    def _run_seed(
        self, skeleton: Skeleton, weights: CheckpointWeights, checkpoint, timings: dict[str, float]
    ) -> _SeedResult:
        tick = time.perf_counter()
        head = skeleton.load(weights)
        if not head.is_finite():
            raise NonFiniteOutputs(f"{checkpoint.source}: the output embedding holds NaN or infinite weights")
        self._sync()
        timings["load"] += time.perf_counter() - tick

        tick = time.perf_counter()
        with torch.inference_mode():
            hidden = self.eval_states(skeleton)
            finite = bool(torch.isfinite(hidden).all())
        self._sync()
        timings["forward"] += time.perf_counter() - tick
        if not finite:
            raise NonFiniteOutputs(f"{checkpoint.source}: the model gives NaN or infinite activations")
        model = SeedModel(
            checkpoint,
            weights,
            skeleton,
            head,
            self.device,
            self.masked,
            self.kernels,
            self.chunk_bytes,
            positions=self.positions,
            eval_hidden=hidden,
            eval_states=partial(self.eval_states, skeleton),
        )
        measured = {
            type(measure): self._timed(measure, model, timings) for measure in self.measures if measure.needs_model
        }
        return _SeedResult(hidden=hidden, head=head, measured=measured)

    def eval_states(self, skeleton: Skeleton, layers: tuple[int, ...] | None = None) -> torch.Tensor:
        """The loaded model's states at every evaluation token, in position order: [N, H], what the
        output embedding is applied to; or, for `layers`, the logit lens's [len(layers), N, H]."""
        if self.masked:
            return self._masked_hidden(skeleton, layers)
        return self._causal_hidden(skeleton, layers)

    def _causal_hidden(self, skeleton: Skeleton, layers: tuple[int, ...] | None = None) -> torch.Tensor:
        """[..., N, H] in position order: every window once, a prediction at every position."""
        hidden = None
        for windows, input_ids, _, _ in self.batches.batches(self.windows_per_batch):
            ids = input_ids.to(self.device)
            states = skeleton.hidden_states(ids) if layers is None else skeleton.lens_states(ids, None, layers)
            if hidden is None:  # [..., windows, width, H]; a batch cut short leaves its padding zero
                hidden = states.new_zeros((*states.shape[:-3], *self.batches.input_ids.shape, states.shape[-1]))
            hidden[..., windows.to(self.device), : states.shape[-2], :] = states
        flat = hidden.reshape(*hidden.shape[:-3], -1, hidden.shape[-1])[..., self._keep.to(self.device), :]
        return flat[..., torch.from_numpy(self._order).to(self.device), :]

    def _masked_hidden(self, skeleton: Skeleton, layers: tuple[int, ...] | None = None) -> torch.Tensor:
        """[..., N, H] in position order: each target's masked copy, read at the masked position."""
        parts = []
        for input_ids, attention, columns in self.batches.batches(self.windows_per_batch):
            ids, mask = input_ids.to(self.device), attention.to(self.device)
            hidden = skeleton.hidden_states(ids, mask) if layers is None else skeleton.lens_states(ids, mask, layers)
            at_mask = hidden[..., torch.arange(len(columns), device=self.device), columns.to(self.device), :]
            parts.append(skeleton.head_input(at_mask))
        return torch.cat(parts, dim=-2)

    def _check_vocabularies(self, results: dict[int, _SeedResult], size: str, step: int) -> int:
        sizes = {seed: result.head.vocab for seed, result in results.items()}
        if len(set(sizes.values())) != 1:
            raise ExtractionError(
                f"seeds have different vocabulary sizes, so their distributions cannot be compared: {sizes}"
            )
        vocab = next(iter(sizes.values()))
        if vocab < self.tokenizer_vocab:
            source = self.suite.checkpoint(size, next(iter(results)), step).source
            raise ExtractionError(
                f"{source}: the model's vocabulary ({vocab}) is smaller than its tokenizer's ({self.tokenizer_vocab})"
            )
        return vocab

    # -- phase 2: all seeds, one chunk of tokens at a time --------------------------------------

    def _statistics(
        self, seeds: list[int], results: dict[int, _SeedResult], vocab: int, timings: dict[str, float]
    ) -> tuple[pa.Table, pa.Table, dict[int, int], int]:
        """(token_stats, pair_kl, {seed: tokens whose logits hold a NaN or an infinity}, the
        (pair, token) KLs the exact path recomputed).

        Blocks of `block` tokens: every seed's fp32 logits, written by the unembedding into one
        reused buffer; then the statistics kernels over `kernel` rows of it at a time, a shape
        that stays the same to the last block (whose spare rows are computed and dropped), so a
        compiled kernel is compiled once.
        """
        n, k, n_seeds = len(self.positions), self.top_k, len(seeds)
        not_finite = torch.zeros(n_seeds, dtype=torch.int64, device=self.device)
        scalars = {name: np.empty((n_seeds, n), dtype=np.float32) for name in SCALAR_STATISTICS}
        topk_ids = np.empty((n_seeds, n, k), dtype=np.int32)
        topk_logprobs = np.empty((n_seeds, n, k), dtype=np.float32)
        kl = np.empty((n_seeds, n_seeds, n), dtype=np.float32)
        unigram_logp = self._unigram_log_probs(vocab)
        block, kernel = chunk_shape(n_seeds, vocab, self.chunk_bytes, _kernel_budget(self.device, self.chunk_bytes))
        block = min(block, -(-n // kernel) * kernel)  # no more rows than the tokens need
        targets = torch.zeros(-(-n // block) * block, dtype=torch.int64, device=self.device)
        targets[:n] = self._targets.to(self.device)
        logits = self.kernels.buffer(n_seeds, block, vocab, device=self.device)
        exact_pair_kl = 0
        with torch.inference_mode():
            for start in range(0, n, block):
                stop = min(start + block, n)
                tick = time.perf_counter()
                for index, seed in enumerate(seeds):
                    # The unembedding in fp32: hidden states [C, H] times the fp32 output embedding.
                    results[seed].head.logits(results[seed].hidden[start:stop], out=logits[index, : stop - start])
                # Finite hidden states and weights can still overflow in the unembedding. A row's
                # sum is NaN or infinite exactly when one of its logits is (or when the sum itself
                # overflows, past 3e38: no working model's logits come near), and costs one
                # reduction instead of a vocabulary-sized mask.
                not_finite += (~torch.isfinite(logits[:, : stop - start].sum(dim=-1))).sum(dim=-1)
                self._sync()
                timings["forward"] += time.perf_counter() - tick

                tick = time.perf_counter()
                for offset in range(0, stop - start, kernel):
                    rows = slice(start + offset, min(start + offset + kernel, stop))
                    valid = rows.stop - rows.start
                    chunk = logits[:, offset : offset + kernel]
                    stats = self.kernels.token_statistics(chunk, targets[start + offset :][:kernel], unigram_logp, k)
                    pairs = pair_divergences(chunk, stats.log_normaliser, self.kernels.reference_terms, valid)
                    exact_pair_kl += pairs.exact
                    for name in SCALAR_STATISTICS:
                        scalars[name][:, rows] = getattr(stats, name)[:, :valid].cpu().numpy()
                    topk_ids[:, rows] = stats.topk_ids[:, :valid].cpu().numpy()
                    topk_logprobs[:, rows] = stats.topk_logprobs[:, :valid].cpu().numpy()
                    kl[:, :, rows] = pairs.kl[:, :, :valid].cpu().numpy()
                self._sync()
                timings["statistics"] += time.perf_counter() - tick
        return (
            token_stats_table(np.array(seeds), self.positions, scalars, topk_ids, topk_logprobs),
            pair_kl_table(np.array(seeds), self.positions, kl),
            {seed: int(count) for seed, count in zip(seeds, not_finite.tolist(), strict=True) if count},
            exact_pair_kl,
        )

    def _unigram_log_probs(self, vocab: int) -> torch.Tensor:
        counts = torch.zeros(vocab, dtype=torch.float64)
        ids = self._unigram_counts.column("token_id").to_numpy().astype(np.int64)
        values = self._unigram_counts.column("count").to_numpy().astype(np.float64)
        counts[torch.from_numpy(ids)] = torch.from_numpy(values)
        return unigram_log_probs(counts).to(self.device)

    def _sync(self) -> None:
        # Phase timings need the device's queue drained; CPU work is synchronous already.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
